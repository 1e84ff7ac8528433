package sluice

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/stages"
)

// Main is the command line of a binary that links jobs in: cmd/sluice calls
// it with the bundled examples registered, and a user's own binary calls it
// from its main function with its jobs registered at init:
//
//	package main
//
//	import (
//		"github.com/sluice-data/sluice"
//		_ "example.com/myjobs" // calls stages.Register at init
//	)
//
//	func main() { sluice.Main() }
//
// The commands are run (a job in this process), plan, jobs and help; see
// `sluice help`. Main exits with status 0 on success, 1 when a job fails or
// is interrupted, and 2 on a usage error or when a job cannot start (an
// unknown job, a bad argument, a source that cannot list its splits). The
// first SIGINT or SIGTERM cancels a running job; a second one kills the
// process.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // the next signal takes the default action
	}()
	c := &cli{name: filepath.Base(os.Args[0]), stdout: os.Stdout, stderr: os.Stderr, tty: isTerminal(os.Stderr)}
	code := c.main(ctx, os.Args[1:])
	stop()
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
	exitOK     = 0
	exitFailed = 1 // the job failed or was interrupted
	// exitUsage: a bad command line, or a job that cannot start: unknown,
	// bad arguments, an invalid plan, a source that cannot list its splits.
	exitUsage = 2
)

// cli is one invocation of the command line.
type cli struct {
	name           string // the program's name in messages
	stdout, stderr io.Writer
	tty            bool // whether stderr is a terminal: progress bars are drawn there
}

// main runs the command line args (without the program name) and returns
// the exit status.
func (c *cli) main(ctx context.Context, args []string) int {
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
	case "help", "-h", "-help", "--help":
		return c.help(rest)
	default:
		c.errorf("unknown command %q", cmd)
		c.usage(c.stderr)
		return exitUsage
	}
}

func (c *cli) errorf(format string, args ...any) {
	fmt.Fprintf(c.stderr, "%s: %s\n", c.name, fmt.Sprintf(format, args...))
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintf(w, `%[1]s runs dataflow jobs that are linked into this binary.

Usage:
  %[1]s run JOB [--arg key=value]... [--parallelism N] [--quiet] [--plan]
  %[1]s plan JOB [--arg key=value]... [--parallelism N]
  %[1]s jobs
  %[1]s help [COMMAND]

Commands:
  run    runs a job in this process and prints a summary of its stages
  plan   prints a job's physical plan without running it
  jobs   lists the registered jobs
  help   shows this text, or a command's flags
`, c.name)
}

func (c *cli) help(args []string) int {
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
	case "help":
		c.usage(c.stdout)
		return exitOK
	default:
		c.errorf("unknown command %q", args[0])
		c.usage(c.stderr)
		return exitUsage
	}
	fs.SetOutput(c.stdout)
	fs.Usage()
	return exitOK
}

// jobFlags are the flags of the commands that build a job.
type jobFlags struct {
	args        argsFlag
	parallelism int
	// run only
	quiet, plan bool
}

func (c *cli) newFlagSet(cmd, doc string) (*flag.FlagSet, *jobFlags) {
	f := &jobFlags{args: argsFlag{}}
	fs := flag.NewFlagSet(c.name+" "+cmd, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s %s JOB [flags]\n\n%s\n\nFlags:\n", c.name, cmd, doc)
		fs.PrintDefaults()
	}
	fs.Var(f.args, "arg", "a job argument `key=value`; repeat it for each argument")
	fs.IntVar(&f.parallelism, "parallelism", 0, "instances of each stage that sets none (0: the number of CPUs)")
	return fs, f
}

func (c *cli) runFlags() (*flag.FlagSet, *jobFlags) {
	fs, f := c.newFlagSet("run", "Runs a registered job in this process, showing its progress on standard error\n"+
		"when that is a terminal, then prints a summary of its stages to standard output.")
	fs.BoolVar(&f.quiet, "quiet", false, "draw no progress bars")
	fs.BoolVar(&f.plan, "plan", false, "print the physical plan before the summary")
	return fs, f
}

func (c *cli) planFlags() (*flag.FlagSet, *jobFlags) {
	return c.newFlagSet("plan", "Prints a registered job's physical plan without running it.")
}

// parseJob parses a command line of the form JOB [flags], accepting flags
// before JOB too. It returns the job's name, or an exit status >= 0 when
// the command should end.
func (c *cli) parseJob(fs *flag.FlagSet, args []string) (string, int) {
	cmd := strings.TrimPrefix(fs.Name(), c.name+" ")
	if err := fs.Parse(args); err != nil {
		return "", parseStatus(err)
	}
	if fs.NArg() == 0 {
		c.errorf("%s: missing JOB (`%s jobs` lists them)", cmd, c.name)
		fs.Usage()
		return "", exitUsage
	}
	job := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", parseStatus(err)
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

func parseStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage // the flag package has printed the error and the usage
}

// build looks the job up and builds its pipeline, or reports why it cannot.
// pipeline parses a job's command line and builds its pipeline; a code of
// 0 or more means stop with it.
func (c *cli) pipeline(fs *flag.FlagSet, f *jobFlags, args []string) (*stages.Pipeline, int) {
	name, code := c.parseJob(fs, args)
	if code >= 0 {
		return nil, code
	}
	return c.build(name, f)
}

func (c *cli) build(name string, f *jobFlags) (*stages.Pipeline, int) {
	if f.parallelism < 0 {
		c.errorf("--parallelism %d must not be negative", f.parallelism)
		return nil, exitUsage
	}
	job, ok := stages.Lookup(name)
	if !ok {
		jobs := stages.Jobs()
		if len(jobs) == 0 {
			c.errorf("unknown job %q: this binary registers no jobs (import a package that calls stages.Register)", name)
			return nil, exitUsage
		}
		c.errorf("unknown job %q; the registered jobs are:", name)
		c.listJobs(c.stderr, jobs)
		return nil, exitUsage
	}
	p, err := job.Build(f.args)
	if err != nil {
		c.errorf("job %q: %v", name, err)
		return nil, exitUsage
	}
	return p, -1
}

func (c *cli) jobs(args []string) int {
	if len(args) > 0 {
		c.errorf("jobs takes no arguments")
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

func (c *cli) listJobs(w io.Writer, jobs []*stages.Job) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, j := range jobs {
		fmt.Fprintf(tw, "  %s\t%s\n", j.Name, j.Doc)
	}
	tw.Flush()
}

func (c *cli) plan(ctx context.Context, args []string) int {
	fs, f := c.planFlags()
	p, code := c.pipeline(fs, f, args)
	if code >= 0 {
		return code
	}
	phys, err := Plan(ctx, p, Options{Parallelism: f.parallelism})
	if err != nil {
		c.errorf("%v", err)
		return exitUsage
	}
	fmt.Fprint(c.stdout, phys)
	return exitOK
}

// pollInterval is how often progress is refreshed.
const pollInterval = 150 * time.Millisecond

func (c *cli) run(ctx context.Context, args []string) int {
	fs, f := c.runFlags()
	p, code := c.pipeline(fs, f, args)
	if code >= 0 {
		return code
	}
	x, err := Start(ctx, p, Options{Parallelism: f.parallelism})
	if err != nil {
		c.errorf("%v", err)
		return exitUsage
	}
	if !f.quiet && c.tty {
		c.watch(ctx, x)
	}
	// Sinks commit inside Wait, and a job may print when it commits: the
	// bars are gone by then.
	res, err := x.Wait()
	if f.plan {
		fmt.Fprint(c.stdout, res.Plan)
		fmt.Fprintln(c.stdout)
	}
	writeSummary(c.stdout, res)
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			c.errorf("job %q interrupted", p.Name())
		} else {
			c.errorf("%v", err)
		}
		return exitFailed
	}
	return exitOK
}

// watch draws progress bars on stderr until the job ends or ctx is done.
func (c *cli) watch(ctx context.Context, x *actors.Execution) {
	bars := newProgress(c.stderr, x.Snapshot())
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			bars.update(x.Snapshot(), false)
		case <-x.Done():
			snap := x.Snapshot()
			bars.finish(snap, finished(snap))
			return
		case <-ctx.Done():
			bars.finish(x.Snapshot(), false)
			return
		}
	}
}

// finished reports whether every instance of the job has finished.
func finished(res *Result) bool {
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

func newProgress(w io.Writer, snap *Result) *progress {
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
func (pr *progress) update(snap *Result, final bool) {
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
func (pr *progress) finish(snap *Result, ok bool) {
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
func writeSummary(w io.Writer, res *Result) {
	secs := res.Elapsed.Seconds()
	par := map[int]int{}
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
	fmt.Fprintf(w, "\nelapsed %s\n", round(res.Elapsed))
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
