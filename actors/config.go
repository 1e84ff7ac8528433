// Package actors runs a physical plan: every operator instance is a
// protoactor actor under one job supervisor actor, records move in batches
// between them under credit-based flow control, and a panicking user
// function is retried by restarting its actor around the same core.Operator.
//
// The actor owns nothing that must survive it: an instance's operator state,
// its credit ledgers, its queued input and its readers and writers live in a
// host that outlives restarts. Sources, sinks and timers (on the injected
// clock) are driven from here; package core sees only events.
package actors

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sluice-data/sluice/backpressure"
	"github.com/sluice-data/sluice/internal/clock"
)

// RestartPolicy decides whether a failed instance is restarted: at most
// MaxRestarts failures of one instance within Window, each restart after a
// backoff that doubles from Backoff up to MaxBackoff. It runs on the
// injected clock (protoactor's own strategies read the wall clock).
type RestartPolicy struct {
	MaxRestarts int
	Window      time.Duration
	Backoff     time.Duration
	MaxBackoff  time.Duration
}

// Config configures a job's runtime.
type Config struct {
	Clock  clock.Clock
	Logger *slog.Logger
	// BatchRecords and BatchBytes bound one batch.
	BatchRecords int
	BatchBytes   int64
	// Linger is how long a partly filled batch may wait before it is sent.
	Linger time.Duration
	// Credits is the number of batches each channel may have in flight.
	Credits int
	Restart RestartPolicy
}

// DefaultConfig returns the defaults: batches of 1024 records or 256 KiB,
// 10 ms linger, 4 credits per channel, 3 restarts a minute from 10 ms backoff.
func DefaultConfig() Config {
	return Config{
		Clock:        clock.Real(),
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		BatchRecords: 1024,
		BatchBytes:   256 << 10,
		Linger:       10 * time.Millisecond,
		Credits:      4,
		Restart:      RestartPolicy{MaxRestarts: 3, Window: time.Minute, Backoff: 10 * time.Millisecond, MaxBackoff: time.Second},
	}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Clock == nil {
		errs = append(errs, errors.New("actors: Clock is nil"))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("actors: Logger is nil"))
	}
	if c.Linger <= 0 {
		errs = append(errs, fmt.Errorf("actors: Linger %v must be positive", c.Linger))
	}
	if c.Restart.MaxRestarts < 0 {
		errs = append(errs, fmt.Errorf("actors: Restart.MaxRestarts %d must not be negative", c.Restart.MaxRestarts))
	}
	if c.Restart.Backoff < 0 || c.Restart.MaxBackoff < c.Restart.Backoff {
		errs = append(errs, fmt.Errorf("actors: Restart backoff %v..%v is not a range", c.Restart.Backoff, c.Restart.MaxBackoff))
	}
	errs = append(errs, c.budget().Validate())
	return errors.Join(errs...)
}

func (c Config) budget() backpressure.Budget {
	return backpressure.Budget{Credits: c.Credits, BatchRecords: c.BatchRecords, Bytes: int64(c.Credits) * c.BatchBytes}
}

func (p RestartPolicy) backoff(failures int) time.Duration {
	d := p.Backoff
	for i := 1; i < failures && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}
