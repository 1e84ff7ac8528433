package redis

import (
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sluice-data/sluice/window"
)

// DefaultPrefix is the key prefix when Prefix is not given.
const DefaultPrefix = "sluice"

// batchSize is the most commands sent in one round trip.
const batchSize = 1024

// Option configures a sink.
type Option func(*config)

type config struct {
	prefix    string
	ttl       time.Duration
	mode      window.AccumulationMode
	merging   bool   // the strategy For names merges windows
	strategy  string // the strategy For names, for errors
	encode    any    // func(V) ([]byte, error)
	keyString any    // func(K) string
	client    []func(*goredis.Options)
	errs      []error
}

func defaultConfig() config { return config{prefix: DefaultPrefix} }

// Prefix starts every key with p and a colon (DefaultPrefix). Give each
// feature its own, with a version (spend-v1), so that a changed job does
// not mix its values with an old one's.
func Prefix(p string) Option {
	return func(c *config) {
		if p == "" || strings.ContainsAny(p, " \t\r\n") {
			c.errs = append(c.errs, fmt.Errorf("redis: Prefix(%q): must be non-empty, without white space", p))
		}
		c.prefix = p
	}
}

// TTL makes every written key expire d after its latest write.
func TTL(d time.Duration) Option {
	return func(c *config) {
		if d < time.Millisecond {
			c.errs = append(c.errs, fmt.Errorf("redis: TTL(%v): must be at least a millisecond", d))
		}
		c.ttl = d
	}
}

// Mode says whether the panes Features writes are accumulating or
// discarding (see the package documentation); it must be the mode of the
// strategy that produced them. The default is window.Discarding.
func Mode(m window.AccumulationMode) Option {
	return func(c *config) {
		if m != window.Discarding && m != window.Accumulating {
			c.errs = append(c.errs, fmt.Errorf("redis: Mode(%v): unknown mode", m))
		}
		c.mode = m
	}
}

// For takes the accumulation mode from w, the strategy that produced the
// panes, and rejects discarding panes of merging windows, which cannot be
// stored per pane index.
func For(w window.Window) Option {
	return func(c *config) {
		if w == nil {
			c.errs = append(c.errs, errors.New("redis: For(nil)"))
			return
		}
		s := w.Strategy()
		c.mode, c.merging, c.strategy = s.Spec().Mode, s.IsMerging(), s.String()
	}
}

// Encode encodes values with f instead of encoding/json: the panes' values
// (V) for Features, the records (T) for Sink. Another type panics when the
// sink is built.
func Encode[V any](f func(V) ([]byte, error)) Option {
	return func(c *config) {
		if f == nil {
			c.errs = append(c.errs, errors.New("redis: Encode(nil)"))
			return
		}
		c.encode = f
	}
}

// KeyString renders the keys of Features' panes with f instead of
// fmt.Sprint. K must be the panes' key type: another panics when the sink
// is built.
func KeyString[K comparable](f func(K) string) Option {
	return func(c *config) {
		if f == nil {
			c.errs = append(c.errs, errors.New("redis: KeyString(nil)"))
			return
		}
		c.keyString = f
	}
}

// ClientOptions lets f adjust the go-redis client options (password,
// database, TLS, timeouts, pool size) after Addr is set.
func ClientOptions(f func(*goredis.Options)) Option {
	return func(c *config) {
		if f == nil {
			c.errs = append(c.errs, errors.New("redis: ClientOptions(nil)"))
			return
		}
		c.client = append(c.client, f)
	}
}

func (c *config) validate(addr string) error {
	errs := append([]error(nil), c.errs...)
	if addr == "" {
		errs = append(errs, errors.New("redis: no server address"))
	}
	if c.merging && c.mode == window.Discarding {
		errs = append(errs, fmt.Errorf("redis: %s: discarding panes of merging windows cannot be stored per pane "+
			"index (a merged window numbers its panes from 0 again); make the strategy accumulating", c.strategy))
	}
	return errors.Join(errs...)
}

// typed returns f as a G, nil when f is nil, and panics naming opt when f
// is of another type.
func typed[G any](opt string, f any, what string) G {
	var zero G
	if f == nil {
		return zero
	}
	g, ok := f.(G)
	if !ok {
		panic(fmt.Sprintf("redis: %s gives %T but the sink needs %T (%s)", opt, f, zero, what))
	}
	return g
}
