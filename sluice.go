// Package sluice is the façade of the Sluice dataflow engine: Run runs a
// pipeline built with package stages in this process, and Start starts one.
// The command line of a binary that links jobs in is package cli
// (cli.Main; see cmd/sluice), which this package does not link.
package sluice

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/clock"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
)

// Options configure a run.
type Options struct {
	// Runtime configures batching, credits, restarts, the clock and logging;
	// the zero value takes actors.DefaultConfig().
	Runtime *actors.Config
	// Clock is the clock the job runs on: its processing-time triggers,
	// linger, idleness, backoff and elapsed times. Nil takes Runtime's
	// (the wall clock by default). A test passes a clock.Manual here and
	// to stages.NewTestStream, whose script then moves processing time.
	Clock clock.Clock
	// Seed is the job's seed, its runtime's one source of randomness: the
	// run ID, which names the run's output files, is derived from the
	// job's name and the seed, so a run started again with the seed of
	// another writes files of the same names. Zero takes Runtime's seed,
	// or when that is zero too a random one; the seed a run used is in its
	// Result (Result.Seed, beside Result.Run), to start it again with.
	// Replay into another output, never into the one the run wrote: files
	// of the same names replace that snapshot's in place (in Append mode
	// its rows are lost), and the sinks do not refuse it yet.
	Seed uint64
	// Parallelism is the default number of instances of a stage; zero takes
	// the number of CPUs, or MaxParallelism if that is less.
	Parallelism int
	// MaxParallelism is the number of key groups, the most instances a
	// stage can have; zero takes DefaultMaxParallelism.
	MaxParallelism int
	// Executor runs the job's instances. Nil takes Runtime's: by default
	// actors.Actors(), every instance an actor. actors.Sim{} runs them all
	// on one goroutine in an order chosen by the job's seed, on virtual
	// time: a run is reproducible from its Seed, to replay a failure.
	Executor actors.Executor
	// Checkpoints, when set, turns checkpoints on, into the store at this
	// URL (checkpoints.Open: a directory, file://, s3://, mem://), every
	// CheckpointEvery (0: every second): a job that fails then recovers
	// from its latest one (actors.CheckpointConfig; Runtime.Checkpoints,
	// when set, wins). Off by default: a bounded job that fails runs again
	// from its start, as fast as it can.
	Checkpoints     string
	CheckpointEvery time.Duration
	// Restore starts the job from a checkpoint in Checkpoints that an
	// earlier process of it took: "latest" or a checkpoint's ID
	// (actors.CheckpointConfig.Restore).
	Restore string
	// Chaos, when set, kills instances of the running job at seeded
	// moments (actors.ChaosConfig); it needs checkpoints.
	Chaos *actors.ChaosConfig
	// Cluster, when set, runs the job's instances on the nodes of a
	// cluster (actors.Cluster); sluice node sets it.
	Cluster *actors.Cluster
	// Labels are the user's labels of the job (actors.Config.Labels):
	// carried into its Result and its metrics.
	Labels map[string]string
}

// ErrOptions is wrapped by the error of Options that cannot be planned.
var ErrOptions = errors.New("invalid options")

// DefaultMaxParallelism is the number of key groups when Options sets none,
// as in Flink.
const DefaultMaxParallelism = 128

// Result is what a run reports: the plan and per-stage statistics.
type Result = actors.Result

// Plan builds p's physical plan (actors.Prepare): it gathers the sources'
// splits and samples shuffle joins for hot keys first.
func Plan(ctx context.Context, p *stages.Pipeline, opts Options) (*plan.Physical, error) {
	if err := p.Err(); err != nil {
		return nil, err
	}
	cfg := plan.Config{DefaultParallelism: opts.Parallelism, MaxParallelism: opts.MaxParallelism}
	if cfg.MaxParallelism == 0 {
		cfg.MaxParallelism = DefaultMaxParallelism
	}
	if cfg.DefaultParallelism == 0 {
		cfg.DefaultParallelism = max(1, min(runtime.GOMAXPROCS(0), cfg.MaxParallelism))
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("job %q: %w: %w", p.Name(), ErrOptions, err)
	}
	return actors.Prepare(ctx, p.Graph(), cfg, opts.seeded().runtime())
}

func (o Options) runtime() actors.Config {
	cfg := actors.DefaultConfig()
	if o.Runtime != nil {
		cfg = *o.Runtime
	}
	if o.Clock != nil {
		cfg.Clock = o.Clock
	}
	if o.Seed != 0 {
		cfg.Seed = o.Seed
	}
	if o.Executor != nil {
		cfg.Executor = o.Executor
	}
	return cfg
}

// seeded returns o with its seed chosen: Seed, Runtime's, or a random one.
func (o Options) seeded() Options {
	if o.Seed == 0 && o.Runtime != nil {
		o.Seed = o.Runtime.Seed
	}
	for o.Seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		o.Seed = binary.LittleEndian.Uint64(b[:])
	}
	return o
}

// Start plans p and starts running it in this process. A pipeline runs
// once: starting it again, after a run or during one, is an error
// (stages.ErrRanAlready); one whose planning failed may be started again.
func Start(ctx context.Context, p *stages.Pipeline, opts Options) (*actors.Execution, error) {
	opts = opts.seeded()
	phys, err := Plan(ctx, p, opts)
	if err != nil {
		return nil, err
	}
	cfg := opts.runtime()
	if opts.Checkpoints != "" && cfg.Checkpoints == nil {
		store, err := checkpoints.Open(ctx, opts.Checkpoints)
		if err != nil {
			return nil, fmt.Errorf("job %q: %w: checkpoints: %w", p.Name(), ErrOptions, err)
		}
		every := opts.CheckpointEvery
		if every == 0 {
			every = time.Second
		}
		cfg.Checkpoints = &actors.CheckpointConfig{Store: store, Every: every, Timeout: 10 * time.Minute}
	}
	if opts.Restore != "" {
		if cfg.Checkpoints == nil {
			return nil, fmt.Errorf("job %q: %w: Restore %q needs Checkpoints, the store to restore from", p.Name(), ErrOptions, opts.Restore)
		}
		cfg.Checkpoints.Restore = opts.Restore
	}
	if opts.Chaos != nil {
		cfg.Chaos = opts.Chaos
	}
	if opts.Cluster != nil {
		cfg.Cluster = opts.Cluster
	}
	if opts.Labels != nil {
		cfg.Labels = opts.Labels
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("job %q: %w: %w", p.Name(), ErrOptions, err)
	}
	if err := p.BeginRun(); err != nil {
		return nil, err
	}
	return actors.Start(ctx, phys, cfg)
}

// Run runs p in this process until it completes, fails or ctx is cancelled.
func Run(ctx context.Context, p *stages.Pipeline, opts Options) (*Result, error) {
	x, err := Start(ctx, p, opts)
	if err != nil {
		return nil, err
	}
	return x.Wait()
}
