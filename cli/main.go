// Package cli is the command line of a binary that links jobs in: the
// commands run, plan, jobs and help, progress bars, the summary of a run,
// signal handling and exit statuses. cmd/sluice calls Main with the bundled
// examples registered, and a user's own binary calls it from its main
// function with its jobs registered at init:
//
//	package main
//
//	import (
//		"github.com/sluice-data/sluice/cli"
//		_ "example.com/myjobs" // calls stages.Register at init
//	)
//
//	func main() { cli.Main() }
//
// A program that runs a pipeline itself calls sluice.Run and links none of
// this package.
package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
)

// Main runs the command line of os.Args and exits; it does not return. The
// commands are run (a job in this process), plan, jobs and help; see
// `sluice help`. Messages name the program as the base name of os.Args[0].
// Standard output carries only what a job prints itself; progress, the
// summary, warnings and errors go to standard error, each error line
// prefixed with the program's name. Main exits with status 0 on success, 1
// when the job fails (reading its input included), 2 on a usage or
// configuration error found before the job starts, and 128 plus the
// signal's number when SIGINT (130) or SIGTERM (143) stopped it. The first
// such signal stops the job and says what the stop waits for; a second one
// exits at once.
func Main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	c := &invocation{name: filepath.Base(os.Args[0]), stdout: os.Stdout, stderr: os.Stderr, tty: isTerminal(os.Stderr),
		signals: sigs, exit: os.Exit}
	code := c.main(context.Background(), os.Args[1:])
	signal.Stop(sigs)
	os.Exit(code)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Exit statuses.
const (
	exitOK = 0
	// exitFailed: the job failed, or reading its input did, listing its
	// splits and sampling its keys included.
	exitFailed = 1
	// exitUsage: a bad command line, flag or job argument, an unknown job,
	// an invalid graph or plan: all found before the job starts.
	exitUsage = 2
	// exitStopped (EX_TEMPFAIL): a job that checkpoints stopped at a final
	// checkpoint on SIGTERM or SIGINT; run it again with --restore latest.
	exitStopped = 75

	// exitSignal plus the signal's number: 130 for SIGINT, 143 for SIGTERM.
	exitSignal = 128
)

// Defaults of the run command's flags.
const (
	defaultStuckAfter = 30 * time.Second
	// stopReportAfter is how long a stop may take before the command says
	// what it waits for; a call older than blockedHint when the signal
	// comes is reported at once.
	stopReportAfter = time.Second
	blockedHint     = 100 * time.Millisecond
)

// invocation is one run of the command line.
type invocation struct {
	name           string // the program's name in messages
	stdout, stderr io.Writer
	tty            bool // whether stderr is a terminal: progress bars are drawn there
	// signals delivers SIGINT and SIGTERM (nil: none); exit ends the
	// process at once, on a second signal.
	signals <-chan os.Signal
	exit    func(code int)

	mu     sync.Mutex
	lines  io.Writer         // where stderr lines go: stderr, or above the progress bars
	job    *actors.Execution // the job running, for the report of a stop
	signal os.Signal         // the first signal received
	// stopTimeout is how long a job that checkpoints has, after the first
	// signal, to stop at a final checkpoint before it is cancelled.
	stopTimeout time.Duration
	// started, if set, is told of the job once it has started (a node
	// keeps it for its status and metrics).
	started func(*actors.Execution)
	// spread, if set, may make run's options place the job across a
	// cluster's nodes (a node's job); done is called when the job ends.
	spread func(ctx context.Context, args []string, opts sluice.Options) (_ sluice.Options, started func(*actors.Execution), done func(), _ error)
	// rescaleTo is the parallelism a rescale asked the running job for
	// (0: none); rescaling is set from then until the next execution has
	// started (a signal meanwhile stops the job at the rescale's
	// checkpoint). Under mu.
	rescaleTo int
	rescaling bool
	// slotsNow, if set, says how many task slots the cluster has for the
	// job now (a node's job): a rescale goes on at no more.
	slotsNow func() int
}

// main runs the command line args (without the program name) and returns
// the exit status.
func (c *invocation) main(ctx context.Context, args []string) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c.signals != nil {
		done := make(chan struct{})
		defer close(done)
		go c.handleSignals(cancel, done)
	}
	if len(args) == 0 {
		c.usage(c.stderr)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		return c.run(ctx, rest)
	case "plan":
		return c.plan(ctx, rest)
	case "jobs":
		return c.jobs(rest)
	case "checkpoints":
		return c.checkpoints(ctx, rest)
	case "savepoint":
		return c.savepoint(ctx, rest)
	case "node":
		return c.node(ctx, rest)
	case "submit":
		return c.submit(ctx, rest)
	case "nodes":
		return c.nodes(ctx, rest)
	case "status", "stop", "cancel":
		return c.jobCommand(ctx, cmd, rest)
	case "rescale":
		return c.rescaleCommand(ctx, rest)
	case "help", "-h", "-help", "--help":
		return c.help(rest)
	default:
		c.errorf("unknown command %q (run '%s help')", cmd, c.name)
		return exitUsage
	}
}

// errorf prints an error on stderr, every line of it prefixed with the
// program's name.
func (c *invocation) errorf(format string, args ...any) {
	c.printf("", format, args...)
}

// warnf prints a warning on stderr.
func (c *invocation) warnf(format string, args ...any) {
	c.printf("warning: ", format, args...)
}

func (c *invocation) printf(kind, format string, args ...any) {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(fmt.Sprintf(format, args...), "\n"), "\n") {
		fmt.Fprintf(&b, "%s: %s%s\n", c.name, kind, line)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.lines
	if w == nil {
		w = c.stderr
	}
	if _, err := io.WriteString(w, b.String()); err != nil && w != c.stderr {
		io.WriteString(c.stderr, b.String()) // the bars have stopped
	}
}

// setLines makes w, or stderr when nil, where stderr lines go.
func (c *invocation) setLines(w io.Writer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = w
}

func (c *invocation) setJob(x *actors.Execution) {
	c.mu.Lock()
	c.job = x
	started := c.started
	c.mu.Unlock()
	if x != nil && started != nil {
		started(x)
	}
}

// interrupted returns the first signal received, or nil.
func (c *invocation) interrupted() os.Signal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.signal
}

// handleSignals cancels the command at the first signal and says what the
// stop waits for; it exits at once at the second.
func (c *invocation) handleSignals(cancel context.CancelFunc, done <-chan struct{}) {
	var report <-chan time.Time
	for {
		select {
		case <-done:
			return
		case <-report:
			report = nil
			c.reportStop(true)
		case s := <-c.signals:
			c.mu.Lock()
			first := c.signal
			if first == nil {
				c.signal = s
			}
			c.mu.Unlock()
			if first != nil {
				c.errorf("%s again: exiting now", signalName(s))
				c.exit(exitSignal + signalNumber(s))
				return
			}
			if c.stopAtCheckpoint(s, cancel) {
				continue
			}
			cancel()
			if !c.reportStop(false) {
				report = time.After(stopReportAfter)
			}
		}
	}
}

// stopAtCheckpoint stops a job that checkpoints at a final checkpoint,
// cancelling it if that takes longer than the stop timeout; it reports
// whether the job can stop so.
func (c *invocation) stopAtCheckpoint(s os.Signal, cancel context.CancelFunc) bool {
	c.mu.Lock()
	x, timeout, rescaling := c.job, c.stopTimeout, c.rescaling
	c.mu.Unlock()
	if rescaling { // the job stops at the rescale's checkpoint and goes no further
		c.errorf("%s: stopping at the rescale's checkpoint (%s again to exit now)", signalName(s), signalName(s))
		if x != nil {
			_ = x.Stop()
		}
		return true
	}
	if x == nil || x.Stop() != nil {
		return false
	}
	c.errorf("%s: stopping at a final checkpoint (within %v; %s again to exit now)", signalName(s), timeout, signalName(s))
	time.AfterFunc(timeout, func() {
		select {
		case <-x.Done():
		default:
			c.errorf("no checkpoint completed within %v (--stop-timeout): cancelling the job", timeout)
			cancel()
		}
	})
	return true
}

// reportStop says what stopping the command waits for: the calls it is
// blocked in, or, when always is set, that it is still stopping. It
// reports whether it said anything.
func (c *invocation) reportStop(always bool) bool {
	c.mu.Lock()
	x, sig := c.job, c.signal
	c.mu.Unlock()
	again := fmt.Sprintf("send %s again to exit now", signalName(sig))
	if sig == os.Interrupt {
		again = "press Ctrl-C again to exit now"
	}
	var stuck []actors.Call
	if x != nil {
		for _, call := range x.Calls() {
			if call.For >= blockedHint {
				stuck = append(stuck, call)
			}
		}
	}
	switch {
	case len(stuck) > 0:
		what := describeCall(x, stuck[0], ", blocked")
		if len(stuck) > 1 {
			what += fmt.Sprintf(" (and %d more)", len(stuck)-1)
		}
		c.errorf("stopping: waiting for %s; %s", what, again)
	case !always:
		return false
	case x != nil:
		c.errorf("stopping: waiting for job %q to stop; %s", x.Plan().Job, again)
	default:
		c.errorf("stopping; %s", again)
	}
	return true
}

// describeCall names the stage and instance of call and says what it has
// been doing, and for how long: `stage map "parse" (v2) instance 1/2` +
// verb + ` in a user function for 12s`.
func describeCall(x *actors.Execution, call actors.Call, verb string) string {
	stage := fmt.Sprintf("v%d", call.Vertex)
	for _, v := range x.Plan().Vertices {
		if v.ID == call.Vertex {
			stage = fmt.Sprintf("%s (v%d)", v.Name(), v.ID)
		}
	}
	return fmt.Sprintf("stage %s instance %d/%d%s %s for %s", stage, call.Instance.Index+1, call.Instance.Parallelism,
		verb, call.What, roughly(call.For))
}

// roughly rounds d for a message: whole seconds from 10 s, tenths below.
func roughly(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

func signalName(s os.Signal) string {
	switch s {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return fmt.Sprint(s)
}

func signalNumber(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return int(n)
	}
	return 2
}

// status is the exit status of a command that err ended.
func (c *invocation) status(err error) int {
	switch {
	case c.interrupted() != nil:
		return exitSignal + signalNumber(c.interrupted())
	case errors.Is(err, stages.ErrBuild), errors.Is(err, stages.ErrConfig), errors.Is(err, plan.ErrInvalid), errors.Is(err, sluice.ErrOptions):
		return exitUsage
	default:
		return exitFailed
	}
}

func (c *invocation) usage(w io.Writer) {
	fmt.Fprintf(w, `%[1]s runs dataflow jobs that are linked into this binary.

Usage:
  %[1]s run JOB [--arg key=value]... [flags]
  %[1]s plan JOB [--arg key=value]... [flags]
  %[1]s jobs
  %[1]s checkpoints URL [ID]
  %[1]s savepoint take|list|show|delete URL [NAME]
  %[1]s savepoint take --to HOST:PORT JOB_ID NAME
  %[1]s node [--listen HOST:PORT] [--join GOSSIP_ADDR,...] [flags]
  %[1]s submit --to HOST:PORT JOB [--arg key=value]... [flags of run]
  %[1]s status|stop|cancel --to HOST:PORT [JOB_ID]
  %[1]s rescale --to HOST:PORT JOB_ID N
  %[1]s nodes --to HOST:PORT
  %[1]s help [COMMAND]

Commands:
  run          runs a job in this process
  plan         prints a job's physical plan without running it
  jobs         lists the registered jobs
  checkpoints  lists the checkpoints in a store, and which a recovery takes
  savepoint    takes a savepoint of a running job, lists, shows, deletes them
  node         runs a node of a cluster, a daemon that runs submitted jobs
  submit       runs a job on a node, showing its output and summary here
  status       lists a node's jobs, or shows one
  stop         stops a job on a node as SIGTERM stops run
  cancel       cancels a job on a node
  rescale      goes on with a job on a node at another parallelism
  nodes        lists the cluster's members as a node sees them
  help         shows this text, or a command's flags

Standard output carries only what a job prints itself. Progress (on a
terminal), the summary of a run, warnings and errors go to standard error;
every error line starts with "%[1]s:".

Exit status:
  0    the command succeeded
  1    the job failed: a user function, a source or a sink, or reading the
       input (listing its files included)
  2    a usage or configuration error, found before the job starts: a bad
       flag or job argument, an unknown job, an invalid graph or plan
  75   stopped at a final checkpoint (a job run with --checkpoints, on SIGTERM
       or SIGINT): run it again with --restore latest to go on
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM. The first signal
       stops the job, and says what the stop waits for when it takes long;
       a second one exits at once.
`, c.name)
}

func (c *invocation) help(args []string) int {
	if len(args) == 0 {
		c.usage(c.stdout)
		return exitOK
	}
	var fs *flag.FlagSet
	switch args[0] {
	case "run":
		fs, _ = c.runFlags()
	case "plan":
		fs, _ = c.planFlags()
	case "jobs":
		fmt.Fprintf(c.stdout, "usage: %s jobs\n\nLists the registered jobs with their descriptions.\n", c.name)
		return exitOK
	case "checkpoints":
		fmt.Fprintf(c.stdout, "usage: %s checkpoints URL\n\n%s\n", c.name, checkpointsDoc)
		return exitOK
	case "savepoint":
		fmt.Fprintf(c.stdout, "usage: %s savepoint take [--timeout D] URL NAME | take --to ADDR [--timeout D] JOB_ID NAME | list URL | show URL NAME | delete URL NAME\n\n%s\n", c.name, savepointDoc)
		return exitOK
	case "node":
		fs, _ = c.nodeFlagSet()
	case "submit", "status", "stop", "cancel", "rescale", "nodes":
		fmt.Fprintf(c.stdout, "%s\n", remoteDoc)
		return exitOK
	case "help":
		c.usage(c.stdout)
		return exitOK
	default:
		c.errorf("unknown command %q (run '%s help')", args[0], c.name)
		return exitUsage
	}
	fs.SetOutput(c.stdout)
	fs.Usage()
	return exitOK
}

// jobFlags are the flags of the commands that build a job.
type jobFlags struct {
	args           argsFlag
	parallelism    int
	maxParallelism int
	// run only
	quiet, plan bool
	stuckAfter  time.Duration
	seed        uint64
	executor    string
	checkpoints string
	every       time.Duration
	restore     string
	stopTimeout time.Duration
	chaos       chaosFlag
	http        string
	labels      labelsFlag
	reactive    time.Duration
}

func (f *jobFlags) options() sluice.Options {
	o := sluice.Options{Parallelism: f.parallelism, MaxParallelism: f.maxParallelism, Seed: f.seed,
		Checkpoints: f.checkpoints, CheckpointEvery: f.every, Restore: f.restore}
	if len(f.labels) > 0 {
		o.Labels = f.labels
	}
	if f.executor == "sim" {
		o.Executor = actors.Sim{}
	}
	return o
}

// runOptions are the options of sluice run: options, with the chaos
// flags' kills and store faults.
func (f *jobFlags) runOptions(ctx context.Context) (sluice.Options, error) {
	o := f.options()
	if !f.chaos.set {
		return o, nil
	}
	if f.checkpoints == "" {
		return o, errors.New("run: -chaos needs -checkpoints, to recover from")
	}
	if f.chaos.kills > 0 {
		o.Chaos = &actors.ChaosConfig{Kills: f.chaos.kills, Seed: f.seed} // 0: the job's seed
	}
	if f.chaos.faults > 0 {
		store, err := checkpoints.Open(ctx, f.checkpoints)
		if err != nil {
			return o, fmt.Errorf("run: -checkpoints: %w", err)
		}
		cfg := actors.DefaultConfig()
		faulty := &checkpoints.Faulty{Store: store, Inject: checkpoints.Random(f.seed, f.chaos.faults, []checkpoints.Op{checkpoints.OpPut},
			[]checkpoints.Fault{checkpoints.FailBefore, checkpoints.FailAfter, checkpoints.Torn, checkpoints.Slow})}
		if f.executor != "sim" { // the simulator's virtual time does not wait
			faulty.Delay = func(ctx context.Context) error {
				select {
				case <-time.After(50 * time.Millisecond):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		cfg.Checkpoints = &actors.CheckpointConfig{Store: faulty, Every: f.every, Timeout: 10 * time.Minute, TolerableFailures: 3,
			Restore: f.restore}
		o.Runtime = &cfg
	}
	return o, nil
}

// chaosFlag is --chaos: kill-actors=N (crash=K is the same on the
// simulator), store-faults=P.
type chaosFlag struct {
	kills  int
	faults float64
	set    bool
}

func (c *chaosFlag) String() string {
	if !c.set {
		return ""
	}
	return fmt.Sprintf("kill-actors=%d,store-faults=%g", c.kills, c.faults)
}

func (c *chaosFlag) Set(s string) error {
	c.set = true
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%q is not key=value (kill-actors=N, crash=N, store-faults=P)", part)
		}
		switch k {
		case "kill-actors", "crash":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("%s=%s: want a count of at least 0", k, v)
			}
			c.kills = n
		case "store-faults":
			p, err := strconv.ParseFloat(v, 64)
			if err != nil || p < 0 || p > 1 {
				return fmt.Errorf("store-faults=%s: want a probability from 0 to 1", v)
			}
			c.faults = p
		default:
			return fmt.Errorf("unknown chaos %q (kill-actors=N, crash=N, store-faults=P)", k)
		}
	}
	return nil
}

func (c *invocation) newFlagSet(cmd, doc string) (*flag.FlagSet, *jobFlags) {
	f := &jobFlags{args: argsFlag{}, labels: labelsFlag{}}
	fs := flag.NewFlagSet(c.name+" "+cmd, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s %s JOB [flags]\n\n%s\n\nFlags:\n", c.name, cmd, doc)
		fs.PrintDefaults()
	}
	fs.Var(f.args, "arg", "a job argument `key=value`; repeat it for each argument")
	fs.IntVar(&f.parallelism, "parallelism", 0, "instances of each stage that sets none (0: the number of CPUs, at most -max-parallelism)")
	fs.IntVar(&f.maxParallelism, "max-parallelism", sluice.DefaultMaxParallelism,
		"the number of key groups: the most instances a stage can have, fixed for the life of a job's state (1 to 32768)")
	return fs, f
}

func (c *invocation) runFlags() (*flag.FlagSet, *jobFlags) {
	fs, f := c.newFlagSet("run", "Runs a registered job in this process, showing its progress on standard error\n"+
		"when that is a terminal, then printing a summary of its stages there.")
	fs.BoolVar(&f.quiet, "quiet", false, "draw no progress bars and print no summary (warnings and errors still)")
	fs.BoolVar(&f.plan, "plan", false, "print the physical plan before the summary")
	fs.DurationVar(&f.stuckAfter, "stuck-after", defaultStuckAfter,
		"warn when an instance has been in one call (a user function, a read, a write) this long (0: never)")
	fs.Uint64Var(&f.seed, "seed", 0,
		"the job's seed: its run ID, which names its output files, derives from it (0: a random one; the summary prints the seed used)")
	fs.StringVar(&f.executor, "executor", "actors",
		"what runs the instances: actors (one actor each, in parallel) or sim (one goroutine, an order chosen by -seed, on virtual time: a run replays from its seed)")
	fs.StringVar(&f.checkpoints, "checkpoints", "",
		"checkpoint the job into this store (a directory, file://, s3://BUCKET/PREFIX, mem://), and recover from its latest checkpoint when it fails (off when empty)")
	fs.DurationVar(&f.every, "checkpoint-every", time.Second, "the interval between checkpoints, with -checkpoints")
	fs.StringVar(&f.restore, "restore", "",
		"start from a checkpoint in -checkpoints that an earlier run of the job took (stopped, killed, or failed for good): latest, a checkpoint's ID or a savepoint's name; at any -parallelism")
	fs.DurationVar(&f.stopTimeout, "stop-timeout", 30*time.Second,
		"with -checkpoints, how long the first SIGTERM or SIGINT waits for a final checkpoint before it cancels the job (exit 75 when it stopped there)")
	fs.StringVar(&f.http, "http", "",
		"serve the job's page and statistics on this address while it runs (127.0.0.1:4040; :4040 is 127.0.0.1:4040, 0.0.0.0:4040 every interface): / (the page), /v1/job (JSON), /metrics (Prometheus), /debug/pprof/")
	fs.Var(f.labels, "label",
		"labels of the job, `KEY=VALUE[,KEY=VALUE]` (team=search,cost_center=42), repeatable: added to each of its metrics' series, its JSON and its summary; a key is a Prometheus label name")
	fs.DurationVar(&f.reactive, "reactive", 0,
		"on a cluster (submit), follow the task slots the live nodes have for the job: rescale it up to them once they have been free for `D` (up to -max-parallelism), and off a node that drains; needs -checkpoints")
	fs.Var(&f.chaos, "chaos",
		"test recovery: kill-actors=N kills N instances at moments chosen by -seed (crash=N on -executor sim); store-faults=P fails, tears or slows a checkpoint write with probability P. Needs -checkpoints")
	return fs, f
}

func (c *invocation) planFlags() (*flag.FlagSet, *jobFlags) {
	return c.newFlagSet("plan", "Prints a registered job's physical plan without running it.")
}

// parseJob parses a command line of the form JOB [flags], accepting flags
// before JOB too. It returns the job's name, or an exit status >= 0 when
// the command should end.
func (c *invocation) parseJob(fs *flag.FlagSet, args []string) (string, int) {
	cmd := strings.TrimPrefix(fs.Name(), c.name+" ")
	fs.SetOutput(io.Discard) // errors are ours to print, on one line
	if err := fs.Parse(args); err != nil {
		return "", c.flagError(fs, cmd, err)
	}
	if fs.NArg() == 0 {
		c.errorf("%s: missing JOB (run '%s jobs' to list them, '%s help %s' for the flags)", cmd, c.name, c.name, cmd)
		return "", exitUsage
	}
	job := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", c.flagError(fs, cmd, err)
	}
	if fs.NArg() > 0 {
		extra := fs.Arg(0)
		hint := ""
		if strings.Contains(extra, "=") {
			hint = fmt.Sprintf(" (job arguments go in --arg %s)", extra)
		}
		c.errorf("%s: unexpected argument %q%s", cmd, extra, hint)
		return "", exitUsage
	}
	return job, -1
}

// flagError reports a flag that does not parse in one line and where to
// read the usage, or prints the usage when asked (-h).
func (c *invocation) flagError(fs *flag.FlagSet, cmd string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(c.stdout)
		fs.Usage()
		return exitOK
	}
	c.errorf("%s: %v (run '%s help %s')", cmd, err, c.name, cmd)
	return exitUsage
}

// pipeline parses a job's command line and builds its pipeline; a code of
// 0 or more means stop with it.
func (c *invocation) pipeline(fs *flag.FlagSet, f *jobFlags, args []string) (*stages.Pipeline, int) {
	name, code := c.parseJob(fs, args)
	if code >= 0 {
		return nil, code
	}
	return c.build(name, f)
}

// build checks the flags, looks the job up and builds its pipeline, or
// reports why it cannot.
func (c *invocation) build(name string, f *jobFlags) (*stages.Pipeline, int) {
	bad := false
	if f.parallelism < 0 {
		c.errorf("--parallelism %d must not be negative", f.parallelism)
		bad = true
	}
	if f.maxParallelism < 1 || f.maxParallelism > 1<<15 {
		c.errorf("--max-parallelism %d must be from 1 to 32768", f.maxParallelism)
		bad = true
	}
	if f.executor != "" && f.executor != "actors" && f.executor != "sim" {
		c.errorf("--executor %q: want actors or sim", f.executor)
		bad = true
	}
	if f.stuckAfter < 0 {
		c.errorf("--stuck-after %v must not be negative", f.stuckAfter)
		bad = true
	}
	if bad {
		return nil, exitUsage
	}
	job, ok := stages.Lookup(name)
	if !ok {
		jobs := stages.Jobs()
		if len(jobs) == 0 {
			c.errorf("unknown job %q: this binary registers no jobs (import a package that calls stages.Register)", name)
			return nil, exitUsage
		}
		names := make([]string, len(jobs))
		for i, j := range jobs {
			names[i] = j.Name
		}
		c.errorf("unknown job %q; the registered jobs are %s (run '%s jobs' for what they do)", name, strings.Join(names, ", "), c.name)
		return nil, exitUsage
	}
	p, err := job.Build(f.args)
	if err != nil {
		c.errorf("job %q: %v", name, err)
		return nil, c.status(err)
	}
	return p, -1
}

func (c *invocation) jobs(args []string) int {
	if len(args) > 0 {
		c.errorf("jobs takes no arguments (run '%s help jobs')", c.name)
		return exitUsage
	}
	jobs := stages.Jobs()
	if len(jobs) == 0 {
		fmt.Fprintln(c.stdout, "no jobs are registered in this binary")
		return exitOK
	}
	c.listJobs(c.stdout, jobs)
	return exitOK
}

func (c *invocation) listJobs(w io.Writer, jobs []*stages.Job) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, j := range jobs {
		fmt.Fprintf(tw, "  %s\t%s\n", j.Name, j.Doc)
	}
	tw.Flush()
}

func (c *invocation) plan(ctx context.Context, args []string) int {
	fs, f := c.planFlags()
	p, code := c.pipeline(fs, f, args)
	if code >= 0 {
		return code
	}
	phys, err := sluice.Plan(ctx, p, f.options())
	if err != nil {
		c.errorf("%v", err)
		return c.status(err)
	}
	fmt.Fprint(c.stdout, phys)
	return exitOK
}

const checkpointsDoc = `Lists the checkpoints in the store at URL (a directory, file://, s3://BUCKET/PREFIX):
each complete and valid one with its job, run, time and size, then the one a
recovery would restore (the newest complete and valid) and every newer one
it would skip, with the reason: no manifest (torn: the writer died or failed
before it), a manifest or a chunk that does not check out (corrupt).

With an ID, shows that checkpoint: its job, run and time, the plan's key
groups, each stage's instances and the size of its state, and where each
source instance was in each of its splits.`

// checkpoints lists a store's checkpoints, or shows one.
func (c *invocation) checkpoints(ctx context.Context, args []string) int {
	if len(args) < 1 || len(args) > 2 || strings.HasPrefix(args[0], "-") {
		c.errorf("checkpoints: want a URL and maybe a checkpoint's ID (run '%s help checkpoints')", c.name)
		return exitUsage
	}
	store, err := checkpoints.Open(ctx, args[0])
	if err != nil {
		c.errorf("checkpoints: %v", err)
		return exitUsage
	}
	d := checkpoints.New(store)
	if len(args) == 2 {
		id, err := strconv.ParseUint(args[1], 10, 64)
		if err != nil {
			c.errorf("checkpoints: %q is not a checkpoint's ID", args[1])
			return exitUsage
		}
		return c.showCheckpoint(ctx, d, id)
	}
	latest, skipped, err := d.Latest(ctx)
	if err != nil {
		c.errorf("checkpoints: %v", err)
		return exitFailed
	}
	ids, err := d.Complete(ctx)
	if err != nil {
		c.errorf("checkpoints: %v", err)
		return exitFailed
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tJOB\tRUN\tATTEMPT\tTIME\tCHUNKS\tSIZE\tSAVEPOINT")
	for _, id := range ids {
		r, err := d.Read(ctx, id)
		if err != nil {
			continue // not valid: Latest says why, when it is newer than the one it takes
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", r.ID, r.Job, r.Run, r.Epoch,
			time.UnixMilli(r.Time).UTC().Format(time.RFC3339Nano), len(r.Chunks), plan.FormatBytes(r.Size()), cmp.Or(r.Savepoint, "-"))
	}
	tw.Flush()
	if latest == nil {
		fmt.Fprintln(c.stdout, "\nno complete, valid checkpoint: a recovery starts from the beginning")
	} else {
		fmt.Fprintf(c.stdout, "\na recovery restores checkpoint %d, the newest complete and valid one\n", latest.ID)
	}
	for _, s := range skipped {
		fmt.Fprintf(c.stdout, "skipped %s\n", s)
	}
	return exitOK
}

// showCheckpoint prints one checkpoint: what took it and when, the
// plan's shape, the size of each stage's state and where each source was.
func (c *invocation) showCheckpoint(ctx context.Context, d *checkpoints.Dir, id uint64) int {
	r, err := d.Read(ctx, id)
	if err != nil {
		c.errorf("checkpoints: %v", err)
		if errors.Is(err, checkpoints.ErrInvalid) {
			return exitUsage
		}
		return exitFailed
	}
	w := c.stdout
	fmt.Fprintf(w, "checkpoint %d of job %q, run %s, attempt %d, taken %s; %d key groups\n", r.ID, r.Job, r.Run, r.Epoch,
		time.UnixMilli(r.Time).UTC().Format(time.RFC3339Nano), r.MaxParallelism)
	if r.Savepoint != "" {
		fmt.Fprintf(w, "savepoint %q, kept until deleted\n", r.Savepoint)
	}
	if r.Graph != "" {
		fmt.Fprintf(w, "graph %s\n", r.Graph)
	}
	sizes, instances := map[string]int64{}, map[string]map[int]bool{}
	for _, ch := range r.Chunks {
		sizes[ch.Stage] += ch.Size
	}
	for _, st := range r.States {
		sizes[st.Stage] += int64(len(st.Data))
		if instances[st.Stage] == nil {
			instances[st.Stage] = map[int]bool{}
		}
		instances[st.Stage][st.Instance] = true
	}
	stages := slices.Sorted(maps.Keys(sizes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSTAGE\tINSTANCES\tSIZE")
	for _, st := range stages {
		par := "-"
		if p, ok := r.Parallelism[st]; ok {
			par = strconv.Itoa(p)
		} else if n := len(instances[st]); n > 0 {
			par = strconv.Itoa(n)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", st, par, plan.FormatBytes(sizes[st]))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nSOURCE POSITIONS")
	for _, st := range r.States {
		if st.Kind != "source" {
			continue
		}
		var p core.SourcePosition
		if err := json.Unmarshal(st.Data, &p); err != nil {
			fmt.Fprintf(w, "%s instance %d: %v\n", st.Stage, st.Instance, err)
			continue
		}
		for _, sp := range p.Splits {
			where := fmt.Sprintf("%d records read", sp.Records)
			if sp.Done {
				where = "done"
			} else if sp.Pos != nil {
				where += " (at " + string(sp.Pos) + ")"
			}
			fmt.Fprintf(w, "%s instance %d: %s: %s\n", st.Stage, st.Instance, sp.Desc, where)
		}
	}
	return exitOK
}

// pollInterval is how often progress is refreshed and calls are checked.
const pollInterval = 150 * time.Millisecond

func (c *invocation) run(ctx context.Context, args []string) int {
	fs, f := c.runFlags()
	p, code := c.pipeline(fs, f, args)
	if code >= 0 {
		return code
	}
	opts, err := f.runOptions(ctx)
	if err != nil {
		c.errorf("%v", err)
		return exitUsage
	}
	switch {
	case f.reactive < 0:
		c.errorf("run: --reactive %v: want a positive duration", f.reactive)
		return exitUsage
	case f.reactive > 0 && c.spread == nil:
		c.errorf("run: --reactive follows a cluster's task slots: submit the job to a node (%s submit --to ADDR %s ... --reactive %v)", c.name, c.jobName(args), f.reactive)
		return exitUsage
	case f.reactive > 0 && f.checkpoints == "":
		c.errorf("run: --reactive needs --checkpoints: a rescale carries the job's state through a checkpoint")
		return exitUsage
	}
	var ln net.Listener
	if f.http != "" {
		if ln, err = net.Listen("tcp", loopbackDefault(f.http)); err != nil {
			c.errorf("--http: %v", err)
			return exitUsage
		}
	}
	var js *jobServer
	if ln != nil {
		js = c.serveJob(ln)
		defer js.stop()
	}
	// A rescale stops the job at a checkpoint and starts it again from
	// there at the new parallelism, as Flink's adaptive scheduler does:
	// each execution is a segment of the job, with its own summary.
	var res *sluice.Result
	var rescaledAt uint64 // the checkpoint the last rescale stopped at
	for {
		res, err = c.runSegment(ctx, p, args, f, &opts, js)
		if res == nil && rescaledAt != 0 { // runSegment said why
			c.errorf("job %q stopped at checkpoint %d to rescale, and its next execution did not start: run it again with --restore %d to go on",
				p.Name(), rescaledAt, rescaledAt)
			return exitStopped
		}
		if res == nil {
			return c.status(err)
		}
		var atCheckpoint *actors.StoppedError
		if !errors.As(err, &atCheckpoint) {
			break
		}
		n := c.takeRescale()
		if n == 0 || c.interrupted() != nil {
			c.errorf("job %q stopped at checkpoint %d: run it again with --restore latest (or %d) to go on", p.Name(), atCheckpoint.Checkpoint, atCheckpoint.Checkpoint)
			return exitStopped
		}
		if c.slotsNow != nil { // a node may have drained or left meanwhile
			if have := max(1, c.slotsNow()); have < n {
				c.warnf("the cluster has %d task slots for the job now, not the %d the rescale asked: going on at %d", have, n, have)
				n = have
			}
		}
		rescaledAt = atCheckpoint.Checkpoint
		fmt.Fprintf(c.stderr, "job %q rescaled: stopped at checkpoint %d at parallelism %d, going on from it at parallelism %d\n",
			p.Name(), atCheckpoint.Checkpoint, opts.Parallelism, n)
		opts.Restore, opts.Parallelism = strconv.FormatUint(atCheckpoint.Checkpoint, 10), n
		fs, again := c.runFlags()
		if p, code = c.pipeline(fs, again, args); code >= 0 { // a pipeline runs once
			return code
		}
	}
	if err != nil {
		sig := c.interrupted()
		switch {
		case sig != nil && errors.Is(err, context.Canceled):
			c.errorf("job %q interrupted by %s", p.Name(), signalName(sig))
			if errors.Is(err, actors.ErrJobFailed) { // more went wrong than the stop
				c.errorf("%v", err)
			}
		case errors.Is(err, context.Canceled) && ctx.Err() != nil:
			c.errorf("job %q cancelled", p.Name())
		default:
			c.errorf("%v", err)
		}
		return c.status(err)
	}
	return exitOK
}

// runSegment starts the job of p with opts (on the cluster, when the node
// spreads it; opts then keeps the seed and parallelism chosen) and waits
// for it, serving it on js when set, and writes its summary. A nil result:
// it did not start (the error is reported).
func (c *invocation) runSegment(ctx context.Context, p *stages.Pipeline, args []string, f *jobFlags, opts *sluice.Options, js *jobServer) (*sluice.Result, error) {
	run := *opts
	spreadStarted := func(*actors.Execution) {}
	if c.spread != nil {
		var done func()
		var err error
		if run, spreadStarted, done, err = c.spread(ctx, args, run); err != nil {
			c.errorf("%v", err)
			return nil, err
		}
		defer done()
		opts.Seed, opts.Parallelism = run.Seed, run.Parallelism
	}
	x, err := sluice.Start(ctx, p, run)
	if err != nil {
		c.errorf("%v", err)
		return nil, err
	}
	spreadStarted(x)
	c.mu.Lock()
	c.stopTimeout = f.stopTimeout
	c.mu.Unlock()
	if js != nil { // before the job is set: who sees it can ask the page
		js.set(x)
		defer js.set(nil)
	}
	c.setJob(x)
	c.mu.Lock()
	sig := c.signal
	c.rescaling = false
	c.mu.Unlock()
	if sig != nil { // it came while the job rescaled: stop at a checkpoint now
		_ = x.Stop()
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go c.monitor(x, f, stop, stopped)
	if store := x.CheckpointStore(); store != nil {
		served := make(chan struct{})
		defer func() { <-served }()
		go func() {
			defer close(served)
			c.serveSavepoints(ctx, x, checkpoints.New(store), f.every, stop)
		}()
	}
	// Sinks commit inside Wait, and a job may print when it commits: the
	// bars are gone by then.
	res, err := x.Wait()
	close(stop)
	<-stopped
	c.setJob(nil)
	if !f.quiet {
		if f.plan {
			fmt.Fprint(c.stderr, res.Plan)
			fmt.Fprintln(c.stderr)
		}
		writeSummary(c.stderr, res)
	}
	c.warnSetAside(res)
	return res, err
}

// rescale asks the running job to go on at parallelism n: it stops at a
// checkpoint taken now, and run starts it again from that checkpoint.
func (c *invocation) rescale(n int) error {
	c.mu.Lock()
	x := c.job
	switch {
	case x == nil:
		c.mu.Unlock()
		return errors.New("the job is not running (it is starting, rescaling or ending)")
	case c.signal != nil:
		c.mu.Unlock()
		return errors.New("the job is stopping")
	case c.rescaleTo != 0:
		c.mu.Unlock()
		return fmt.Errorf("a rescale to parallelism %d is under way", c.rescaleTo)
	}
	c.rescaleTo, c.rescaling = n, true
	c.mu.Unlock()
	if err := x.Stop(); err != nil {
		c.mu.Lock()
		c.rescaleTo, c.rescaling = 0, false
		c.mu.Unlock()
		return err
	}
	return nil
}

// takeRescale returns the parallelism a rescale asked for (0: none) and
// clears it.
func (c *invocation) takeRescale() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.rescaleTo
	c.rescaleTo = 0
	return n
}

// monitor draws progress bars on a terminal until the job ends, and warns
// of an instance in one call for longer than --stuck-after, until stop.
func (c *invocation) monitor(x *actors.Execution, f *jobFlags, stop <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	var bars *progress
	if !f.quiet && c.tty {
		bars = newProgress(c.stderr, x.Snapshot())
		c.setLines(bars.p)
	}
	finish := func() {
		if bars != nil {
			c.setLines(nil)
			snap := x.Snapshot()
			bars.finish(snap, finished(snap))
			bars = nil
		}
	}
	defer finish()
	stuck := stuckReports{}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	done := x.Done()
	for {
		select {
		case <-tick.C:
			if bars != nil {
				bars.update(x.Snapshot(), false)
			}
			if f.stuckAfter > 0 {
				c.reportStuck(x, f.stuckAfter, stuck)
			}
		case <-done:
			done = nil
			finish()
		case <-stop:
			return
		}
	}
}

// stuckReports holds, for each call reported as stuck, how long it must
// last to be reported again.
type stuckReports map[stuckCall]time.Duration

type stuckCall struct {
	vertex, instance int
	since            time.Time
}

// reportStuck warns of every call older than after, again each time its
// age doubles.
func (c *invocation) reportStuck(x *actors.Execution, after time.Duration, reported stuckReports) {
	for _, call := range x.Calls() {
		if call.For < after {
			break // longest first
		}
		k := stuckCall{call.Vertex, call.Instance.Index, call.Since}
		next, ok := reported[k]
		if !ok {
			next = after
		}
		if call.For >= next {
			c.warnf("%s", describeCall(x, call, " has been"))
			reported[k] = 2 * call.For
		}
	}
}

// warnSetAside warns of the records that stages dropped as late or set
// aside on side outputs (dead letters, late records).
func (c *invocation) warnSetAside(res *sluice.Result) {
	for _, s := range res.Stages {
		where := fmt.Sprintf("stage %s (v%d, %s)", s.Name, s.Vertex, s.Loc)
		if s.DroppedLate > 0 {
			c.warnf("%s dropped %d records as late: behind the watermark by more than the allowed lateness", where, s.DroppedLate)
		}
		if s.DroppedClosed > 0 {
			c.warnf("%s dropped %d records of windows whose trigger had finished", where, s.DroppedClosed)
		}
		for i, n := range s.Side {
			if n > 0 {
				name := ""
				if i < len(s.SideNames) {
					name = " (" + s.SideNames[i] + ")"
				}
				c.warnf("%s set aside %d records on side output %d%s", where, n, i+1, name)
			}
		}
	}
	for _, v := range res.Vertices {
		if v.Retries > 0 {
			c.warnf("v%d %s retried %d transient source errors", v.ID, v.Name, v.Retries)
		}
	}
}

// finished reports whether every instance of the job has finished.
func finished(res *sluice.Result) bool {
	for _, v := range res.Vertices {
		if v.Finished < v.Parallelism {
			return false
		}
	}
	return true
}

// progress draws a line per stage: a bar for a source whose total is known,
// a spinner and a counter for any other stage.
type progress struct {
	p     *mpb.Progress
	lines []*progressLine
}

type progressLine struct {
	bar  *mpb.Bar
	rate rateMeter
	text atomic.Pointer[string] // after the bar; read by mpb's goroutines
}

const barWidth = 24

func newProgress(w io.Writer, snap *sluice.Result) *progress {
	// The caller has decided that w is a terminal; mpb checks only *os.File.
	pr := &progress{p: mpb.New(mpb.WithOutput(w), mpb.ForceTTY(), mpb.WithAutoRefresh(),
		mpb.WithWidth(100), mpb.WithRefreshRate(pollInterval))}
	for _, s := range snap.Stages {
		l := &progressLine{}
		empty := ""
		l.text.Store(&empty)
		opts := []mpb.BarOption{
			mpb.BarWidth(barWidth),
			mpb.PrependDecorators(decor.Name(fmt.Sprintf("v%d %s", s.Vertex, s.Name), decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return *l.text.Load() }, decor.WCSyncSpaceR)),
		}
		if s.Total > 0 {
			l.bar = pr.p.AddBar(s.Total, opts...)
		} else {
			pad := strings.Repeat(" ", barWidth-1)
			opts = append(opts, mpb.BarFillerOnComplete("✓"+pad), mpb.BarFillerOnAbort("✗"+pad))
			l.bar = pr.p.New(0, mpb.SpinnerStyle().PositionLeft(), opts...)
		}
		pr.lines = append(pr.lines, l)
	}
	pr.update(snap, false)
	return pr
}

// update shows snap: rates over the last second, or over the whole run when
// final.
func (pr *progress) update(snap *sluice.Result, final bool) {
	for i, s := range snap.Stages {
		if i >= len(pr.lines) {
			break
		}
		l := pr.lines[i]
		rate := l.rate.add(snap.Elapsed, s.Records)
		if final && snap.Elapsed > 0 {
			rate = float64(s.Records) / snap.Elapsed.Seconds()
		}
		var text string
		if s.Total > 0 {
			text = fmt.Sprintf("%3d%%  %s/%s  %s rec/s", 100*s.Records/s.Total, human(float64(s.Records)),
				human(float64(s.Total)), human(rate))
		} else {
			text = fmt.Sprintf("%s  %s rec/s", human(float64(s.Records)), human(rate))
		}
		l.text.Store(&text)
		l.bar.SetCurrent(s.Records)
	}
}

// finish draws the last state and stops drawing: bars complete when the
// job succeeded and stay where they stopped otherwise.
func (pr *progress) finish(snap *sluice.Result, ok bool) {
	pr.update(snap, true)
	for _, l := range pr.lines {
		if ok {
			l.bar.SetTotal(-1, true)
		} else {
			l.bar.Abort(false)
		}
	}
	pr.p.Wait()
}

// rateMeter is a rate over the last second or so of samples.
type rateMeter struct {
	at   []time.Duration
	recs []int64
}

const rateWindow = time.Second

func (m *rateMeter) add(at time.Duration, records int64) float64 {
	m.at = append(m.at, at)
	m.recs = append(m.recs, records)
	for len(m.at) > 2 && at-m.at[1] >= rateWindow {
		m.at, m.recs = m.at[1:], m.recs[1:]
	}
	dt := at - m.at[0]
	if dt <= 0 {
		return 0
	}
	return float64(records-m.recs[0]) / dt.Seconds()
}

// human renders n with a metric suffix: 950, 12.3k, 4.56M, 7.89G.
func human(n float64) string {
	switch {
	case n < 1e3:
		return fmt.Sprintf("%.0f", n)
	case n < 1e6:
		return fmt.Sprintf("%.1fk", n/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.2fM", n/1e6)
	default:
		return fmt.Sprintf("%.2fG", n/1e9)
	}
}

// writeSummary prints a table of the stages, a table of the vertices and
// the elapsed time.
func writeSummary(w io.Writer, res *sluice.Result) {
	secs := res.Elapsed.Seconds()
	par := map[int]int{}
	if len(res.Labels) > 0 {
		fmt.Fprintf(w, "job %s, labels %s\n\n", res.Job, formatLabels(res.Labels))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tVERTEX\tPARALLELISM\tRECORDS\tRECORDS/S\tSET ASIDE\tDEFINED AT")
	for _, v := range res.Vertices {
		par[v.ID] = v.Parallelism
	}
	for _, s := range res.Stages {
		rate := "-"
		if secs > 0 {
			rate = human(float64(s.Records) / secs)
		}
		fmt.Fprintf(tw, "%s\tv%d\t%d\t%d\t%s\t%s\t%s\n", s.Name, s.Vertex, par[s.Vertex], s.Records, rate, setAside(s), s.Loc)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "VERTEX\tPARALLELISM\tRECORDS IN\tBUSY\tBLOCKED ON CREDIT\tRESTARTS\tPEAK IN-FLIGHT\tWATERMARK (LAG)\tCHAIN")
	for _, v := range res.Vertices {
		wm := "-"
		if v.HasWatermark {
			wm = fmt.Sprintf("%s (%s)", time.Unix(0, v.Watermark).UTC().Format("15:04:05.000"), round(v.Lag))
		}
		fmt.Fprintf(tw, "v%d\t%d\t%d\t%s\t%s\t%d\t%d\t%s\t%s\n", v.ID, v.Parallelism, v.RecordsIn,
			share(v.Busy, res.Elapsed, v.Parallelism), share(v.Blocked, res.Elapsed, v.Parallelism),
			v.Restarts, v.PeakInFlight, wm, v.Name)
	}
	tw.Flush()
	for _, v := range res.Vertices {
		if v.Note != "" {
			fmt.Fprintf(w, "v%d: %s\n", v.ID, v.Note)
		}
	}
	writeAsides(w, res)
	writeNodes(w, res)
	writeExceptions(w, res)
	writeRecovery(w, res)
	fmt.Fprintf(w, "\nelapsed %s\nseed %d (run %s)\n", round(res.Elapsed), res.Seed, res.Run)
}

// maxCheckpointLines is how many checkpoints the summary lists, the last.
const maxCheckpointLines = 10

// writeRecovery prints the job's checkpoints, what chaos killed and the
// recoveries, if any.
func writeRecovery(w io.Writer, res *sluice.Result) {
	if len(res.Checkpoints) > 0 {
		done, abandoned := 0, 0
		var slowest time.Duration
		for _, s := range res.Checkpoints {
			if !s.Completed {
				abandoned++
				continue
			}
			done++
			slowest = max(slowest, time.Duration(s.End-s.Start))
		}
		fmt.Fprintf(w, "\ncheckpoints: %d completed, %d abandoned; the slowest took %s\n", done, abandoned, round(slowest))
		shown := res.Checkpoints
		if len(shown) > maxCheckpointLines {
			fmt.Fprintf(w, "  (the last %d of %d)\n", maxCheckpointLines, len(shown))
			shown = shown[len(shown)-maxCheckpointLines:]
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CHECKPOINT\tTOOK\tALIGNMENT\tSIZE\tBY STAGE")
		for _, s := range shown {
			if !s.Completed {
				fmt.Fprintf(tw, "%d\tabandoned: %s\t\t\t\n", s.ID, s.Reason)
				continue
			}
			var stages []string
			for st, n := range s.ByStage {
				stages = append(stages, fmt.Sprintf("%s %s", st, plan.FormatBytes(n)))
			}
			slices.Sort(stages)
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", s.ID, round(time.Duration(s.End-s.Start)), round(s.Alignment),
				plan.FormatBytes(s.Bytes), strings.Join(stages, ", "))
		}
		tw.Flush()
	}
	for _, k := range res.Kills {
		fmt.Fprintf(w, "chaos: kill %d at %s, at record %d of the input: %s\n", k.N, k.At.UTC().Format("15:04:05.000"), k.Records, k.Instance)
	}
	for _, r := range res.Recoveries {
		from := "from the start (no checkpoint had completed)"
		if r.Checkpoint != 0 {
			from = fmt.Sprintf("from checkpoint %d", r.Checkpoint)
		}
		again := ""
		if r.Replayed > 0 {
			again = fmt.Sprintf(", %d records read again", r.Replayed)
		}
		fmt.Fprintf(w, "recovery: attempt %d %s, reading again %s after the failure%s: %s\n", r.Attempt, from, round(r.Restored), again, r.Cause)
		for _, s := range r.Skipped {
			fmt.Fprintf(w, "  skipped %s\n", s)
		}
	}
}

// writeAsides prints explain-why: per stage that set records aside, how
// many for each reason and the examples it kept, each with its rule.
func writeAsides(w io.Writer, res *sluice.Result) {
	header := false
	for _, s := range res.Stages {
		counts := asideCounts(s)
		if len(counts) == 0 {
			continue
		}
		if !header {
			fmt.Fprintf(w, "\nset aside / dropped (the first %d examples of each reason per stage):\n", plan.MaxAsides)
			header = true
		}
		fmt.Fprintf(w, "  %s (v%d, %s): %s\n", s.Name, s.Vertex, s.Loc, strings.Join(counts, ", "))
		for _, a := range s.Asides {
			to := ""
			if a.Port > 0 && a.Reason != plan.AsideDeadLetter {
				to = fmt.Sprintf(" (sent to side output %d)", a.Port)
			}
			fmt.Fprintf(w, "    %s: %s: %s%s\n", a.Reason, a.Record, a.Rule, to)
		}
	}
}

// asideCounts names a stage's counts of the records it set aside, by
// reason, as explain-why has them; none when it set none aside.
func asideCounts(s actors.StageStats) []string {
	var out []string
	for _, c := range []struct {
		n    int64
		what plan.AsideReason
	}{{s.Late, plan.AsideLate}, {s.DroppedLate, plan.AsideTooLate}, {s.DroppedClosed, plan.AsideClosed}, {s.DeadLetters, plan.AsideDeadLetter}} {
		if c.n > 0 {
			out = append(out, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return out
}

// maxExceptionLines bounds the failures the summary lists.
const maxExceptionLines = 5

// writeExceptions lists the instances' failures, the last few.
func writeExceptions(w io.Writer, res *sluice.Result) {
	ex := res.Exceptions
	if len(ex) == 0 {
		return
	}
	fmt.Fprintf(w, "\nexceptions: %d", len(ex))
	if len(ex) > maxExceptionLines {
		fmt.Fprintf(w, " (the last %d)", maxExceptionLines)
		ex = ex[len(ex)-maxExceptionLines:]
	}
	fmt.Fprintln(w)
	for _, e := range ex {
		what := "restarted"
		if !e.Restarted {
			what = "gave up"
		}
		on := ""
		if e.Node != "" {
			on = " on " + e.Node
		}
		fmt.Fprintf(w, "  %s %s%s (%s): %s\n", e.At.UTC().Format("15:04:05.000"), e.Stage, on, what, e.Error)
	}
}

// setAside says what a stage did not pass on: side outputs (dead letters,
// late records) and records a window dropped.
func setAside(s actors.StageStats) string {
	var parts []string
	for i, n := range s.Side {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("side %d: %d", i+1, n))
		}
	}
	if s.DroppedLate > 0 {
		parts = append(parts, fmt.Sprintf("late: %d", s.DroppedLate))
	}
	if s.DroppedClosed > 0 {
		parts = append(parts, fmt.Sprintf("closed window: %d", s.DroppedClosed))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// share renders d, a time summed over n instances, with its share of their
// time in all.
func share(d, elapsed time.Duration, n int) string {
	if elapsed <= 0 || n <= 0 {
		return round(d).String()
	}
	return fmt.Sprintf("%s (%.0f%%)", round(d), 100*d.Seconds()/(elapsed.Seconds()*float64(n)))
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond)
	default:
		return d.Round(10 * time.Microsecond)
	}
}

// argsFlag gathers repeated --arg key=value flags.
type argsFlag map[string]string

func (a argsFlag) String() string {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + a[k]
	}
	return strings.Join(keys, " ")
}

func (a argsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, not %q", s)
	}
	if _, dup := a[k]; dup {
		return fmt.Errorf("argument %s is given twice", k)
	}
	a[k] = v
	return nil
}
