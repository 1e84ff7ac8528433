package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sluice-data/sluice/internal/sinkstate"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// Hash fields of an accumulating window (see the package documentation).
const (
	FieldValue  = "value"
	FieldEnd    = "end"
	FieldPane   = "pane"
	FieldTiming = "timing"
	// FieldAttempt is the attempt of the job that wrote the pane
	// (plan.Instance.Attempt): a later attempt's pane replaces any of an
	// earlier one.
	FieldAttempt = "attempt"
)

// PaneField returns the hash field of a discarding pane: pane:<index>.
func PaneField(index int64) string { return "pane:" + strconv.FormatInt(index, 10) }

// WindowKey returns the name of the hash of key's window w under prefix:
// prefix:key:startMillis, or prefix:key:global for the global window.
func WindowKey(prefix, key string, w window.Interval) string {
	if w.IsGlobal() {
		return prefix + ":" + key + ":global"
	}
	return prefix + ":" + key + ":" + strconv.FormatInt(millis(w.Start), 10)
}

// millis converts t to unix milliseconds, rounding down.
func millis(t window.Time) int64 {
	ms := int64(t) / 1e6
	if int64(t)%1e6 < 0 {
		ms--
	}
	return ms
}

// ErrState is wrapped by the error of a Writer method called out of the
// sink lifecycle's order (Write after Prepare, Commit before Prepare, ...).
var ErrState = errors.New("redis: writer used out of order")

// accumulate stores an accumulating pane unless the stored one is newer:
// KEYS[1] the window's hash; ARGV end ms, pane index, value, timing, TTL ms
// (0: none), the job's attempt. A pane of a later attempt is newer than any
// of an earlier one: after a recovery from a checkpoint, the panes the
// failed attempt wrote after it are not the job's, and the replay's
// replace them. It returns 1 when it wrote, 0 when the stored pane is
// newer.
var accumulate = goredis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'end', 'pane', 'attempt')
if cur[1] then
  local e, p, a = tonumber(cur[1]), tonumber(cur[2]) or -1, tonumber(cur[3]) or 0
  local ne, np, na = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[6])
  if na < a or (na == a and (ne < e or (ne == e and np < p))) then
    return 0
  end
end
redis.call('HSET', KEYS[1], 'value', ARGV[3], 'end', ARGV[1], 'pane', ARGV[2], 'timing', ARGV[4], 'attempt', ARGV[6])
if ARGV[5] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return 1
`)

// Features returns a sink that writes the panes of a windowed aggregation
// to the Redis server at addr (host:port), one hash per key and window; see
// the package documentation for the layout and for choosing the mode.
// Options of the wrong types (KeyString of another K, Encode of another V)
// panic here.
func Features[K comparable, V any](addr string, opts ...Option) stages.Sink[stages.Windowed[K, V]] {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	keyString := typed[func(K) string]("KeyString", cfg.keyString, "the panes' key type")
	if keyString == nil {
		keyString = defaultKeyString[K]
	}
	encode := typed[func(V) ([]byte, error)]("Encode", cfg.encode, "the panes' value type")
	if encode == nil {
		encode = encodeJSON[V]
	}
	f := &features[K, V]{sink: sink{addr: addr, cfg: cfg}, keyString: keyString, encode: encode}
	if cfg.mode == window.Accumulating {
		return recoverable[K, V]{f}
	}
	return f
}

// recoverable is an accumulating Features sink: a job that checkpoints
// recovers and stops with it (stages.Reopener), since the panes written
// again after a recovery replace, attempt over attempt, those the failed
// attempt wrote (see accumulate). A discarding sink is no Reopener: the
// fields pane:<index> that a failed attempt wrote after the checkpoint
// would stay beside the replay's, and a reader summing them would count
// records twice, so a job with one fails rather than recover.
type recoverable[K comparable, V any] struct{ *features[K, V] }

// Reopen implements stages.Reopener: the writer opens afresh (it holds
// nothing to take back) and writes under the new attempt.
func (r recoverable[K, V]) Reopen(ctx context.Context, inst stages.Instance, _ []byte) (stages.Writer[stages.Windowed[K, V]], error) {
	return r.Open(ctx, inst)
}

func defaultKeyString[K comparable](k K) string {
	switch k := any(k).(type) {
	case string:
		return k
	case fmt.Stringer:
		return k.String()
	}
	return fmt.Sprint(k)
}

func encodeJSON[V any](v V) ([]byte, error) { return json.Marshal(v) }

// sink holds what every sink of the package has.
type sink struct {
	addr string
	cfg  config
}

// open connects to the server and returns a writer that queues each
// record's commands with queue.
func open[T any](ctx context.Context, s *sink, script *goredis.Script,
	queue func(ctx context.Context, p goredis.Pipeliner, rec *T, keys *[]string) error) (*writer[T], error) {
	if err := s.cfg.validate(s.addr); err != nil {
		return nil, err
	}
	opts := &goredis.Options{Addr: s.addr}
	for _, f := range s.cfg.client {
		f(opts)
	}
	opts.Addr = s.addr
	client := goredis.NewClient(opts)
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redis: connecting to %s: %w", s.addr, err)
	}
	w := &writer[T]{ctx: ctx, addr: s.addr, client: client, script: script, queue: queue}
	if script != nil {
		if err := script.Load(ctx, client).Err(); err != nil {
			_ = client.Close()
			return nil, fmt.Errorf("redis: loading the accumulating script on %s: %w", s.addr, err)
		}
	}
	return w, nil
}

type features[K comparable, V any] struct {
	sink
	keyString func(K) string
	encode    func(V) ([]byte, error)
}

func (f *features[K, V]) Open(ctx context.Context, inst stages.Instance) (stages.Writer[stages.Windowed[K, V]], error) {
	ttl := strconv.FormatInt(f.cfg.ttl.Milliseconds(), 10)
	attempt := strconv.FormatUint(inst.Attempt, 10)
	if f.cfg.mode == window.Accumulating {
		return open(ctx, &f.sink, accumulate, func(ctx context.Context, p goredis.Pipeliner, pane *stages.Windowed[K, V], keys *[]string) error {
			key, val, err := f.prepare(pane)
			if err != nil {
				return err
			}
			p.EvalSha(ctx, accumulate.Hash(), []string{key}, millis(pane.Window.End), pane.Pane.Index, val,
				pane.Pane.Timing.String(), ttl, attempt)
			*keys = append(*keys, key)
			return nil
		})
	}
	return open(ctx, &f.sink, nil, func(ctx context.Context, p goredis.Pipeliner, pane *stages.Windowed[K, V], keys *[]string) error {
		key, val, err := f.prepare(pane)
		if err != nil {
			return err
		}
		p.HSet(ctx, key, PaneField(pane.Pane.Index), val)
		*keys = append(*keys, key)
		if f.cfg.ttl > 0 {
			p.PExpire(ctx, key, f.cfg.ttl)
			*keys = append(*keys, key)
		}
		return nil
	})
}

// prepare names pane's hash and encodes its value.
func (f *features[K, V]) prepare(pane *stages.Windowed[K, V]) (key string, val []byte, err error) {
	key = WindowKey(f.cfg.prefix, f.keyString(pane.Key), pane.Window)
	if val, err = f.encode(pane.Value); err != nil {
		return key, nil, fmt.Errorf("encoding the value of %s pane %d: %w", key, pane.Pane.Index, err)
	}
	return key, val, nil
}

// Sink returns a sink that writes each record, encoded (encoding/json
// unless Encode says otherwise), as a string value under prefix:key(record)
// with SET: the last write of a key wins, so a replay of the same records
// leaves the same values. Options of the wrong type (Encode of another T)
// panic here.
func Sink[T any](addr string, key func(T) string, opts ...Option) stages.Sink[T] {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if key == nil {
		cfg.errs = append(cfg.errs, errors.New("redis: Sink: nil key function"))
	}
	encode := typed[func(T) ([]byte, error)]("Encode", cfg.encode, "the record type")
	if encode == nil {
		encode = encodeJSON[T]
	}
	return &values[T]{sink: sink{addr: addr, cfg: cfg}, key: key, encode: encode}
}

type values[T any] struct {
	sink
	key    func(T) string
	encode func(T) ([]byte, error)
}

func (v *values[T]) Open(ctx context.Context, _ stages.Instance) (stages.Writer[T], error) {
	return open(ctx, &v.sink, nil, func(ctx context.Context, p goredis.Pipeliner, rec *T, keys *[]string) error {
		k := v.key(*rec)
		if k == "" {
			return errors.New("empty key")
		}
		key := v.cfg.prefix + ":" + k
		val, err := v.encode(*rec)
		if err != nil {
			return fmt.Errorf("encoding the value of %s: %w", key, err)
		}
		p.Set(ctx, key, val, v.cfg.ttl)
		*keys = append(*keys, key)
		return nil
	})
}

// writer sends each Write's records as pipelined commands.
type writer[T any] struct {
	ctx     context.Context
	addr    string
	client  *goredis.Client
	script  *goredis.Script // loaded again when the server has lost it
	queue   func(ctx context.Context, p goredis.Pipeliner, rec *T, keys *[]string) error
	keys    []string // the key of each queued command
	recs    []int    // the record (index in the batch) of each queued command
	records int64
	state   sinkstate.State
}

func (w *writer[T]) outOfOrder(op string) error {
	return w.wrapState(op, sinkstate.OutOfOrder(w.state, op, ErrState))
}

func (w *writer[T]) wrapState(_ string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("redis: %s: %w", w.addr, err)
}

func (w *writer[T]) Write(recs []T) error {
	if w.state != sinkstate.Writing {
		return w.outOfOrder("writing")
	}
	for lo := 0; lo < len(recs); lo += batchSize {
		chunk := recs[lo:min(lo+batchSize, len(recs))]
		if err := w.send(chunk); err != nil {
			return err
		}
		w.records += int64(len(chunk))
	}
	return nil
}

// send writes chunk in one round trip; when the server has lost the
// script (restarted, SCRIPT FLUSH) it loads it and sends the chunk again,
// which the writes being idempotent allows.
func (w *writer[T]) send(chunk []T) error {
	for attempt := 0; ; attempt++ {
		pipe := w.client.Pipeline()
		w.keys, w.recs = w.keys[:0], w.recs[:0]
		for i := range chunk {
			if err := w.queue(w.ctx, pipe, &chunk[i], &w.keys); err != nil {
				return fmt.Errorf("redis: record %d: %w", w.records+int64(i), err)
			}
			for len(w.recs) < len(w.keys) {
				w.recs = append(w.recs, i)
			}
		}
		cmds, err := pipe.Exec(w.ctx)
		if err == nil {
			return nil
		}
		if attempt == 0 && w.script != nil && noScript(cmds) {
			if lerr := w.script.Load(w.ctx, w.client).Err(); lerr != nil {
				return fmt.Errorf("redis: loading the accumulating script on %s: %w", w.addr, lerr)
			}
			continue
		}
		for i, c := range cmds {
			if cerr := c.Err(); cerr != nil && i < len(w.keys) {
				return fmt.Errorf("redis: writing %s (record %d) on %s: %w", w.keys[i], w.records+int64(w.recs[i]), w.addr, cerr)
			}
		}
		return fmt.Errorf("redis: writing on %s: %w", w.addr, err)
	}
}

func noScript(cmds []goredis.Cmder) bool {
	for _, c := range cmds {
		if goredis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			return true
		}
	}
	return false
}

// Prepare has nothing to flush: every Write waited for its replies.
func (w *writer[T]) Prepare() error {
	if w.state != sinkstate.Writing {
		return w.outOfOrder("preparing")
	}
	w.state = sinkstate.Prepared
	return nil
}

// Commit closes the connection: what was written is visible already.
func (w *writer[T]) Commit() error {
	if work, err := w.state.Committing(ErrState); !work {
		return w.wrapState("committing", err)
	}
	w.state = sinkstate.Committed
	return w.close()
}

// Abort closes the connection; what was written stays.
func (w *writer[T]) Abort() error {
	if !w.state.Aborting() {
		return nil
	}
	w.state = sinkstate.Aborted
	return w.close()
}

func (w *writer[T]) close() error {
	if w.client == nil {
		return nil
	}
	err := w.client.Close()
	w.client = nil
	if err != nil {
		return fmt.Errorf("redis: closing the connection to %s: %w", w.addr, err)
	}
	return nil
}
