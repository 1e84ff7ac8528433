package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/connectors/generator"
	"github.com/sluice-data/sluice/connectors/redis"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// server returns the address of the Redis server at SLUICE_REDIS_ADDR
// (scripts/test.sh starts one there), a client of it, and a key prefix of
// the test's own, whose keys are deleted when the test ends.
func server(t *testing.T) (addr string, c *goredis.Client, prefix string) {
	t.Helper()
	addr = os.Getenv("SLUICE_REDIS_ADDR")
	if addr == "" {
		testenv.Need(t, "SLUICE_REDIS_ADDR is not set: no Redis server to test against (scripts/test.sh starts redis-server and sets it)")
	}
	c = goredis.NewClient(&goredis.Options{Addr: addr})
	if err := c.Ping(ctxT(t)).Err(); err != nil {
		t.Fatalf("Redis at %s (SLUICE_REDIS_ADDR): %v", addr, err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	prefix = "test:" + strings.ReplaceAll(t.Name(), "/", ".") + ":" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if keys := scan(t, ctx, c, prefix); len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("deleting the test's keys: %v", err)
			}
		}
		_ = c.Close()
	})
	return addr, c, prefix
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func scan(t testing.TB, ctx context.Context, c *goredis.Client, prefix string) []string {
	t.Helper()
	var keys []string
	iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// dump reads every key under prefix: a hash's fields, or a string's value
// under the field "".
func dump(t testing.TB, c *goredis.Client, prefix string) map[string]map[string]string {
	t.Helper()
	ctx := ctxT(t)
	out := map[string]map[string]string{}
	for _, k := range scan(t, ctx, c, prefix) {
		typ, err := c.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "hash":
			if out[k], err = c.HGetAll(ctx, k).Result(); err != nil {
				t.Fatal(err)
			}
		case "string":
			v, err := c.Get(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			out[k] = map[string]string{"": v}
		default:
			t.Fatalf("key %s is a %s", k, typ)
		}
	}
	return out
}

// purchase is one input record of the aggregation the panes come from.
type purchase struct {
	user   string
	time   window.Time
	amount int64
}

// panes computes, per user and one-minute window, the panes of a sum fired
// early, on time and late: accumulating panes hold the sum so far,
// discarding ones the sum since the previous pane. It also returns each
// window's total.
func panes(n int64) (acc, disc []stages.Windowed[string, int64], totals map[string]int64) {
	g, err := generator.New(generator.Config{Seed: 11, Rows: n, Keys: 25, Zipf: 1.2, Start: 1_704_067_200_000})
	if err != nil {
		panic(err)
	}
	type group struct {
		user string
		w    window.Interval
	}
	groups := map[group][]purchase{}
	var order []group
	for i := range n {
		r := g.Row(i)
		t := window.Time(r.Time * 1e6 * 37) // spread the rows over a few hours
		p := purchase{user: fmt.Sprintf("u%d", r.Key), time: t, amount: r.Value % 1000}
		start := t - t%window.Time(time.Minute)
		k := group{p.user, window.Interval{Start: start, End: start + window.Time(time.Minute)}}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], p)
	}
	totals = map[string]int64{}
	for _, k := range order {
		ps := groups[k]
		cuts := []int{len(ps) / 3, 2 * len(ps) / 3, len(ps)}
		timings := []window.Timing{window.Early, window.OnTime, window.Late}
		var sum, prev int64
		lo, index := 0, int64(0)
		for c, hi := range cuts {
			if hi == lo && timings[c] != window.OnTime {
				continue // no records for this firing
			}
			for _, p := range ps[lo:hi] {
				sum += p.amount
			}
			info := window.PaneInfo{Index: index, NonSpeculativeIndex: -1, Timing: timings[c], IsFirst: index == 0,
				IsLast: hi == len(ps)}
			if timings[c] != window.Early {
				info.NonSpeculativeIndex = int64(c - 1)
			}
			base := stages.Windowed[string, int64]{Key: k.user, Window: k.w, Timestamp: k.w.MaxTimestamp(), Pane: info}
			a, d := base, base
			a.Value, d.Value = sum, sum-prev
			acc, disc = append(acc, a), append(disc, d)
			prev, lo = sum, hi
			index++
		}
		totals[redis.WindowKey("", k.user, k.w)] = sum
	}
	return acc, disc, totals
}

func noRestarts() *actors.Config {
	cfg := actors.DefaultConfig()
	cfg.Restart.MaxRestarts = 0
	return &cfg
}

// writePanes runs a job that writes xs through Features, two instances.
func writePanes(t *testing.T, addr string, xs []stages.Windowed[string, int64], opts ...redis.Option) {
	t.Helper()
	p := stages.NewPipeline("features")
	stages.Write(stages.FromSlice(p, xs), redis.Features[string, int64](addr, opts...), stages.Parallelism(2))
	if _, err := sluice.Run(ctxT(t), p, sluice.Options{Parallelism: 2, Runtime: noRestarts()}); err != nil {
		t.Fatal(err)
	}
}

func msString(t window.Time) string { return strconv.FormatInt(int64(t)/1e6, 10) }

func TestFeaturesReplayLeavesSameKeys(t *testing.T) {
	n := int64(20000)
	if testenv.Race() {
		n = 5000
	}
	acc, disc, _ := panes(n)
	for _, tc := range []struct {
		mode  window.AccumulationMode
		panes []stages.Windowed[string, int64]
		want  func(prefix string) map[string]map[string]string
	}{
		{window.Accumulating, acc, func(prefix string) map[string]map[string]string {
			want := map[string]map[string]string{}
			for _, p := range acc { // the last pane of each window wins
				want[redis.WindowKey(prefix, p.Key, p.Window)] = map[string]string{
					redis.FieldValue: strconv.FormatInt(p.Value, 10), redis.FieldEnd: msString(p.Window.End),
					redis.FieldPane: strconv.FormatInt(p.Pane.Index, 10), redis.FieldTiming: p.Pane.Timing.String(),
					redis.FieldAttempt: "1"}
			}
			return want
		}},
		{window.Discarding, disc, func(prefix string) map[string]map[string]string {
			want := map[string]map[string]string{}
			for _, p := range disc {
				k := redis.WindowKey(prefix, p.Key, p.Window)
				if want[k] == nil {
					want[k] = map[string]string{}
				}
				want[k][redis.PaneField(p.Pane.Index)] = strconv.FormatInt(p.Value, 10)
			}
			return want
		}},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			addr, c, prefix := server(t)
			opts := []redis.Option{redis.Prefix(prefix), redis.Mode(tc.mode)}
			writePanes(t, addr, tc.panes, opts...)
			first := dump(t, c, prefix)
			if want := tc.want(prefix); !reflect.DeepEqual(first, want) {
				t.Fatalf("after one run: %d keys, want %d (%s)", len(first), len(want), diff(first, want))
			}
			writePanes(t, addr, tc.panes, opts...) // a replay
			if second := dump(t, c, prefix); !reflect.DeepEqual(second, first) {
				t.Fatalf("a replay changed the keys: %s", diff(second, first))
			}
			// A replay in reverse order: late panes before early ones.
			rev := slices.Clone(tc.panes)
			slices.Reverse(rev)
			writePanes(t, addr, rev, opts...)
			if third := dump(t, c, prefix); !reflect.DeepEqual(third, first) {
				t.Fatalf("a replay in reverse order changed the keys: %s", diff(third, first))
			}
		})
	}
}

// diff describes the first difference between two dumps.
func diff(got, want map[string]map[string]string) string {
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	for _, k := range sorted {
		if !reflect.DeepEqual(got[k], want[k]) {
			return fmt.Sprintf("key %s: got %v, want %v", k, got[k], want[k])
		}
	}
	return "none"
}

func TestModesAgreeOnWindowTotals(t *testing.T) {
	acc, disc, totals := panes(3000)
	addr, c, prefix := server(t)
	writePanes(t, addr, acc, redis.Prefix(prefix+":acc"), redis.For(window.Fixed(time.Minute).Accumulating()))
	writePanes(t, addr, disc, redis.Prefix(prefix+":disc"), redis.For(window.Fixed(time.Minute)))
	accDump, discDump := dump(t, c, prefix+":acc"), dump(t, c, prefix+":disc")
	if len(accDump) != len(totals) || len(discDump) != len(totals) {
		t.Fatalf("%d accumulating and %d discarding windows, want %d", len(accDump), len(discDump), len(totals))
	}
	for k, total := range totals {
		a := accDump[prefix+":acc"+k]
		if a[redis.FieldValue] != strconv.FormatInt(total, 10) {
			t.Errorf("accumulating %s: value %q, want %d", k, a[redis.FieldValue], total)
		}
		var sum int64
		for field, v := range discDump[prefix+":disc"+k] {
			if !strings.HasPrefix(field, "pane:") {
				t.Errorf("discarding %s: field %s", k, field)
			}
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			sum += x
		}
		if sum != total {
			t.Errorf("discarding %s: panes sum to %d, want %d", k, sum, total)
		}
	}
}

func TestAccumulatingKeepsNewestPane(t *testing.T) {
	addr, c, prefix := server(t)
	w := window.Interval{Start: window.Time(time.Hour), End: window.Time(time.Hour + time.Minute)}
	pane := func(index, value int64, end window.Time, timing window.Timing) stages.Windowed[string, int64] {
		iv := w
		iv.End = end
		return stages.Windowed[string, int64]{Key: "k", Value: value, Window: iv, Pane: window.PaneInfo{Index: index, Timing: timing}}
	}
	snk := redis.Features[string, int64](addr, redis.Prefix(prefix), redis.Mode(window.Accumulating))
	wr, err := snk.Open(ctxT(t), stages.Instance{Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Abort()
	key := redis.WindowKey(prefix, "k", w)
	for _, step := range []struct {
		pane      stages.Windowed[string, int64]
		wantValue string
	}{
		{pane(1, 10, w.End, window.OnTime), "10"},
		{pane(0, 5, w.End, window.Early), "10"},   // older: kept out
		{pane(1, 10, w.End, window.OnTime), "10"}, // the same again
		{pane(2, 12, w.End, window.Late), "12"},
		{pane(0, 30, w.End+window.Time(time.Minute), window.OnTime), "30"}, // a merged session: longer, index 0
		{pane(5, 1, w.End, window.Late), "30"},                             // the shorter session's: kept out
	} {
		if err := wr.Write([]stages.Windowed[string, int64]{step.pane}); err != nil {
			t.Fatal(err)
		}
		if got := c.HGet(ctxT(t), key, redis.FieldValue).Val(); got != step.wantValue {
			t.Fatalf("after pane %d (end %v): value %q, want %q", step.pane.Pane.Index, step.pane.Window.End, got, step.wantValue)
		}
	}
	// The server loses its scripts: the writer loads it again.
	if err := c.ScriptFlush(ctxT(t)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := wr.Write([]stages.Windowed[string, int64]{pane(1, 40, w.End+window.Time(time.Minute), window.Late)}); err != nil {
		t.Fatalf("after SCRIPT FLUSH: %v", err)
	}
	if got := c.HGet(ctxT(t), key, redis.FieldValue).Val(); got != "40" {
		t.Fatalf("after SCRIPT FLUSH: value %q, want 40", got)
	}
	if err := wr.Prepare(); err != nil {
		t.Fatal(err)
	}
	if err := wr.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	for _, mode := range []window.AccumulationMode{window.Accumulating, window.Discarding} {
		t.Run(mode.String(), func(t *testing.T) {
			addr, c, prefix := server(t)
			w := window.Interval{Start: window.Time(90 * time.Second), End: window.Time(150 * time.Second)}
			key := redis.WindowKey(prefix, "u1", w)
			if key != prefix+":u1:90000" {
				t.Fatalf("WindowKey = %s", key)
			}
			// Something else took the key: a string, where the sink writes a hash.
			if err := c.Set(ctxT(t), key, "not a hash", 0).Err(); err != nil {
				t.Fatal(err)
			}
			wr, err := redis.Features[string, int64](addr, redis.Prefix(prefix), redis.Mode(mode)).Open(ctxT(t), stages.Instance{})
			if err != nil {
				t.Fatal(err)
			}
			defer wr.Abort()
			ok := stages.Windowed[string, int64]{Key: "u0", Value: 1, Window: w}
			bad := stages.Windowed[string, int64]{Key: "u1", Value: 2, Window: w}
			err = wr.Write([]stages.Windowed[string, int64]{ok, ok, bad})
			if err == nil || !strings.Contains(err.Error(), "writing "+key+" (record 2)") || !strings.Contains(err.Error(), "WRONGTYPE") {
				t.Fatalf("got %v, want an error naming %s, record 2 and WRONGTYPE", err, key)
			}
		})
	}
	t.Run("encoding", func(t *testing.T) {
		addr, _, prefix := server(t)
		enc := redis.Encode(func(v int64) ([]byte, error) { return nil, fmt.Errorf("cannot encode %d", v) })
		wr, err := redis.Features[string, int64](addr, redis.Prefix(prefix), enc).Open(ctxT(t), stages.Instance{})
		if err != nil {
			t.Fatal(err)
		}
		defer wr.Abort()
		err = wr.Write([]stages.Windowed[string, int64]{{Key: "u7", Value: 3, Window: window.GlobalInterval()}})
		if err == nil || !strings.Contains(err.Error(), "record 0: encoding the value of "+prefix+":u7:global") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("no server", func(t *testing.T) {
		fast := redis.ClientOptions(func(o *goredis.Options) { o.MaxRetries, o.DialerRetries = -1, 1 })
		_, err := redis.Features[string, int64]("127.0.0.1:1", fast).Open(ctxT(t), stages.Instance{})
		if err == nil || !strings.Contains(err.Error(), "redis: connecting to 127.0.0.1:1") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestTTLAndKeyString(t *testing.T) {
	addr, c, prefix := server(t)
	type user struct{ Org, Name string }
	ks := redis.KeyString(func(u user) string { return u.Org + "/" + u.Name })
	for _, mode := range []window.AccumulationMode{window.Accumulating, window.Discarding} {
		p := prefix + ":" + mode.String()
		wr, err := redis.Features[user, float64](addr, redis.Prefix(p), redis.Mode(mode), redis.TTL(time.Hour), ks).
			Open(ctxT(t), stages.Instance{})
		if err != nil {
			t.Fatal(err)
		}
		w := window.Interval{Start: -window.Time(time.Millisecond / 2), End: window.Time(time.Minute)}
		err = wr.Write([]stages.Windowed[user, float64]{{Key: user{"acme", "ann"}, Value: 2.5, Window: w}})
		if err != nil {
			t.Fatal(err)
		}
		if err := wr.Prepare(); err != nil {
			t.Fatal(err)
		}
		if err := wr.Commit(); err != nil {
			t.Fatal(err)
		}
		key := p + ":acme/ann:-1" // the start rounds down to a millisecond
		ttl, err := c.PTTL(ctxT(t), key).Result()
		if err != nil || ttl <= 0 || ttl > time.Hour {
			t.Errorf("%s: PTTL %v, %v; want in (0, 1h]", key, ttl, err)
		}
		field := redis.FieldValue
		if mode == window.Discarding {
			field = redis.PaneField(0)
		}
		if got := c.HGet(ctxT(t), key, field).Val(); got != "2.5" {
			t.Errorf("%s %s = %q, want 2.5", key, field, got)
		}
	}
}

func TestSinkOfValues(t *testing.T) {
	addr, c, prefix := server(t)
	type feature struct {
		User  string `json:"user"`
		Score int64  `json:"score"`
	}
	var xs []feature
	for i := range 3000 {
		xs = append(xs, feature{User: fmt.Sprintf("u%d", i), Score: int64(i * 7)})
	}
	run := func() {
		p := stages.NewPipeline("values")
		stages.Write(stages.FromSlice(p, xs), redis.Sink(addr, func(f feature) string { return f.User },
			redis.Prefix(prefix), redis.TTL(time.Hour)), stages.Parallelism(2))
		if _, err := sluice.Run(ctxT(t), p, sluice.Options{Parallelism: 2}); err != nil {
			t.Fatal(err)
		}
	}
	run()
	first := dump(t, c, prefix)
	if len(first) != len(xs) || first[prefix+":u3"][""] != `{"user":"u3","score":21}` {
		t.Fatalf("%d keys, u3 = %v", len(first), first[prefix+":u3"])
	}
	run()
	if second := dump(t, c, prefix); !reflect.DeepEqual(second, first) {
		t.Fatalf("a replay changed the keys: %s", diff(second, first))
	}
	wr, err := redis.Sink(addr, func(f feature) string { return "" }, redis.Prefix(prefix)).Open(ctxT(t), stages.Instance{})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Abort()
	if err := wr.Write(xs[:1]); err == nil || !strings.Contains(err.Error(), "record 0: empty key") {
		t.Fatalf("empty key: %v", err)
	}
}

func TestWriterLifecycle(t *testing.T) {
	addr, _, prefix := server(t)
	wr, err := redis.Features[string, int64](addr, redis.Prefix(prefix)).Open(ctxT(t), stages.Instance{})
	if err != nil {
		t.Fatal(err)
	}
	if err := wr.Commit(); !errors.Is(err, redis.ErrState) {
		t.Errorf("Commit before Prepare: %v, want ErrState", err)
	}
	if err := wr.Prepare(); err != nil {
		t.Fatal(err)
	}
	if err := wr.Write(nil); !errors.Is(err, redis.ErrState) {
		t.Errorf("Write after Prepare: %v, want ErrState", err)
	}
	if err := wr.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := wr.Commit(); err != nil {
		t.Errorf("second Commit: %v", err)
	}
	if err := wr.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := redis.Features[string, int64]("", redis.Prefix(""), redis.TTL(time.Microsecond),
		redis.For(window.Session(time.Minute))).Open(context.Background(), stages.Instance{})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"no server address", `Prefix("")`, "TTL(1µs)", "discarding panes of merging windows"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "KeyString gives") {
			t.Errorf("KeyString of another type: recovered %v, want a panic naming KeyString", r)
		}
	}()
	redis.Features[string, int64]("x", redis.KeyString(func(int) string { return "" }))
}

// TestLaterAttemptReplacesPanes: after a recovery the job's next attempt
// writes a window's panes again from its checkpoint: its pane replaces
// the failed attempt's newer one, and a write of the failed attempt that
// lands after it is kept out.
func TestLaterAttemptReplacesPanes(t *testing.T) {
	addr, c, prefix := server(t)
	w := window.Interval{Start: window.Time(time.Hour), End: window.Time(time.Hour + time.Minute)}
	snk := redis.Features[string, int64](addr, redis.Prefix(prefix), redis.Mode(window.Accumulating))
	writer := func(attempt uint64) stages.Writer[stages.Windowed[string, int64]] {
		wr, err := snk.(stages.Reopener[stages.Windowed[string, int64]]).Reopen(ctxT(t), stages.Instance{Parallelism: 1, Attempt: attempt}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { wr.Abort() })
		return wr
	}
	failed, next := writer(1), writer(2)
	key := redis.WindowKey(prefix, "k", w)
	for _, step := range []struct {
		w         stages.Writer[stages.Windowed[string, int64]]
		index     int64
		value     int64
		wantValue string
	}{
		{failed, 3, 30, "30"},
		{next, 1, 12, "12"}, // the replay from the checkpoint: the failed attempt's pane 3 is not the job's
		{failed, 4, 40, "12"},
		{next, 3, 33, "33"},
	} {
		p := stages.Windowed[string, int64]{Key: "k", Value: step.value, Window: w, Pane: window.PaneInfo{Index: step.index, Timing: window.Early}}
		if err := step.w.Write([]stages.Windowed[string, int64]{p}); err != nil {
			t.Fatal(err)
		}
		if got := c.HGet(ctxT(t), key, redis.FieldValue).Val(); got != step.wantValue {
			t.Fatalf("after pane %d of value %d: value %q, want %q", step.index, step.value, got, step.wantValue)
		}
	}
	if _, ok := redis.Features[string, int64](addr, redis.Mode(window.Discarding)).(stages.Reopener[stages.Windowed[string, int64]]); ok {
		t.Error("a discarding sink can reopen: a failed attempt's pane fields would stay beside the replay's")
	}
}
