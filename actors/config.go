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
	"slices"
	"time"

	"github.com/sluice-data/sluice/backpressure"
	"github.com/sluice-data/sluice/clock"
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

// RetryPolicy decides how a source's transient errors are retried: a split
// whose Open or Read fails with an error its connector declares transient
// (stages.TransientErrors) is tried again after a backoff that doubles from
// Backoff up to MaxBackoff, on the injected clock, at most Attempts times in
// a row; a read that succeeds starts the count again. Zero Attempts fails at
// the first transient error, as at any other.
type RetryPolicy struct {
	Attempts   int
	Backoff    time.Duration
	MaxBackoff time.Duration
}

// Config configures a job's runtime.
type Config struct {
	Clock  clock.Clock
	Logger *slog.Logger
	// Seed is the runtime's one source of randomness: the run ID (which names
	// the run's output files) is derived from the job's name and Seed, so
	// two runs of a job with one seed write files of the same names. Start
	// takes it as given, 0 included; sluice.Start picks one when its
	// Options leave it 0.
	Seed uint64
	// BatchRecords and BatchBytes bound one batch.
	BatchRecords int
	BatchBytes   int64
	// Linger is how long a partly filled batch may wait before it is sent.
	Linger time.Duration
	// Poll is how long an unbounded source waits before it reads again
	// when none of its splits had data; 0 is Linger.
	Poll time.Duration
	// Credits is the number of batches each channel may have in flight.
	Credits int
	Restart RestartPolicy
	Retry   RetryPolicy
	// Executor runs the job's tasks; nil is Actors().
	Executor Executor
	// Checkpoints, when not nil, turns checkpoints on.
	Checkpoints *CheckpointConfig
	// Chaos, when not nil, kills instances of the running job; it needs
	// Checkpoints, to recover.
	Chaos *ChaosConfig
	// Cluster, when not nil, runs the job's instances on several nodes.
	Cluster *Cluster
	// Labels are what the user attached to the job (sluice run --label
	// team=search): its Result carries them, its metrics series add them
	// (package metrics), for cost attribution. The runtime reads nothing
	// else into them.
	Labels map[string]string
}

func (c Config) executor() Executor {
	if c.Executor == nil {
		return Actors()
	}
	return c.Executor
}

// DefaultConfig returns the defaults: batches of 1024 records or 256 KiB,
// 10 ms linger, 4 credits per channel, 3 restarts a minute from 10 ms backoff,
// 5 retries of a source's transient errors from 200 ms backoff up to 5 s
// (6.2 s in all).
func DefaultConfig() Config {
	return Config{
		Clock:        clock.Real(),
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		BatchRecords: 1024,
		BatchBytes:   256 << 10,
		Linger:       10 * time.Millisecond,
		Credits:      4,
		Restart:      RestartPolicy{MaxRestarts: 3, Window: time.Minute, Backoff: 10 * time.Millisecond, MaxBackoff: time.Second},
		Retry:        RetryPolicy{Attempts: 5, Backoff: 200 * time.Millisecond, MaxBackoff: 5 * time.Second},
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
	if c.Poll < 0 {
		errs = append(errs, fmt.Errorf("actors: Poll %v must not be negative", c.Poll))
	}
	if c.Restart.MaxRestarts < 0 {
		errs = append(errs, fmt.Errorf("actors: Restart.MaxRestarts %d must not be negative", c.Restart.MaxRestarts))
	}
	if c.Restart.Backoff < 0 || c.Restart.MaxBackoff < c.Restart.Backoff {
		errs = append(errs, fmt.Errorf("actors: Restart backoff %v..%v is not a range", c.Restart.Backoff, c.Restart.MaxBackoff))
	}
	if c.Retry.Attempts < 0 {
		errs = append(errs, fmt.Errorf("actors: Retry.Attempts %d must not be negative", c.Retry.Attempts))
	}
	if c.Retry.Backoff < 0 || c.Retry.MaxBackoff < c.Retry.Backoff {
		errs = append(errs, fmt.Errorf("actors: Retry backoff %v..%v is not a range", c.Retry.Backoff, c.Retry.MaxBackoff))
	}
	if c.Checkpoints != nil {
		errs = append(errs, c.Checkpoints.validate())
	}
	if c.Cluster != nil {
		errs = append(errs, c.Cluster.validate(&c))
	}
	if c.Chaos != nil && (c.Chaos.Kills < 0 || c.Chaos.Kills > 0 && (c.Checkpoints == nil || c.Checkpoints.NoRecovery)) {
		errs = append(errs, fmt.Errorf("actors: Chaos: %d kills need checkpoints with recovery on", c.Chaos.Kills))
	}
	if c.Chaos != nil && (c.Chaos.StopAt < 0 || c.Chaos.StopAt > 0 && c.Checkpoints == nil) {
		errs = append(errs, fmt.Errorf("actors: Chaos: stopping at record %d needs checkpoints", c.Chaos.StopAt))
	}
	errs = append(errs, c.budget().Validate())
	return errors.Join(errs...)
}

func (c Config) budget() backpressure.Budget {
	return backpressure.Budget{Credits: c.Credits, BatchRecords: c.BatchRecords, Bytes: int64(c.Credits) * c.BatchBytes}
}

func (p RestartPolicy) backoff(failures int) time.Duration {
	return doubling(p.Backoff, p.MaxBackoff, failures)
}

// note adds a failure at now to the earlier ones, keeping those within the
// window, and returns them: when there are more than MaxRestarts, the
// policy has run out.
func (p RestartPolicy) note(earlier []time.Time, now time.Time) []time.Time {
	recent := slices.DeleteFunc(earlier, func(t time.Time) bool { return now.Sub(t) >= p.Window })
	return append(recent, now)
}

func (p RetryPolicy) backoff(failures int) time.Duration {
	return doubling(p.Backoff, p.MaxBackoff, failures)
}

// doubling is from after n failures: from doubled n-1 times, up to most.
func doubling(from, most time.Duration, n int) time.Duration {
	d := from
	for i := 1; i < n && d < most; i++ {
		d *= 2
	}
	return min(d, most)
}
