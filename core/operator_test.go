package core_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// The -rewrite flag regenerates the expected logs in testdata/*.txt. It is
// registered in init, after every package-level flag, so that another test
// file of this binary may register it too.
func init() {
	if flag.Lookup("rewrite") == nil {
		flag.Bool("rewrite", false, "rewrite the expected logs in testdata")
	}
}

func rewriting() bool {
	f := flag.Lookup("rewrite")
	return f != nil && f.Value.String() == "true"
}

// ---- fixtures ----

// testSource is a source of n empty splits: tests feed the operator batches
// by hand, but the planner sizes the source by its splits.
type testSource[T any] struct{ splits int }

func (s testSource[T]) Splits(context.Context) ([]plan.Split, error) {
	out := make([]plan.Split, s.splits)
	for i := range out {
		out[i] = plan.Split{Index: i, Records: 0, Bytes: 0, Desc: fmt.Sprintf("split %d", i)}
	}
	return out, nil
}

func (s testSource[T]) Open(context.Context, plan.Instance, plan.Split) (stages.Reader[T], error) {
	return emptyReader[T]{}, nil
}

type emptyReader[T any] struct{}

func (emptyReader[T]) Read([]T) (int, error) { return 0, io.EOF }
func (emptyReader[T]) Close() error          { return nil }

func source(p *stages.Pipeline, opts ...stages.SourceOption) stages.Stream[int64] {
	return stages.Read[int64](p, testSource[int64]{splits: 4}, opts...)
}

// scriptTrap is the trap of the "trapped" fixture, armed by the arm command.
var scriptTrap = &trap[int64]{}

// identityHash puts key k in key group k mod max-parallelism, so that the
// scripts' routing can be read off the keys.
func identityHash(k int64) uint64 { return uint64(k) }

func ident(x int64) int64 { return x }

// fixtures are the graphs the scripts instantiate with `new graph=NAME`.
var fixtures = map[string]func(p *stages.Pipeline){
	// One vertex: source → map → collect; the sink gets the map's batches.
	"chain": func(p *stages.Pipeline) {
		stages.Collect(stages.Map(source(p), func(x int64) int64 { return 10 * x }))
	},
	// The map has two consumers, so it ends its vertex with two forward edges.
	"fanout": func(p *stages.Pipeline) {
		a := stages.Map(source(p), func(x int64) int64 { return 10 * x }, stages.Name("a"))
		stages.Collect(stages.Filter(a, func(x int64) bool { return x%20 == 0 }), stages.Name("evens"))
		stages.Collect(stages.Map(a, func(x int64) int64 { return x + 1 }, stages.Name("b")))
	},
	"rebalance": func(p *stages.Pipeline) {
		stages.Collect(stages.Map(stages.Rebalance(source(p)), ident, stages.Parallelism(3)))
	},
	"broadcast": func(p *stages.Pipeline) {
		stages.Collect(stages.Map(stages.Broadcast(source(p)), ident, stages.Parallelism(3)))
	},
	// Records are their own keys, hashed to key group key mod max-parallelism.
	"hash": func(p *stages.Pipeline) {
		k := stages.KeyBy(source(p), ident, stages.HashWith(identityHash))
		stages.Collect(stages.GroupByKey(k, stages.Parallelism(2)))
	},
	// Sums per key x mod 4: a combine before the shuffle, an aggregate after.
	"aggregate": func(p *stages.Pipeline) {
		k := stages.KeyBy(source(p), func(x int64) int64 { return x % 4 }, stages.HashWith(identityHash))
		stages.Collect(stages.Aggregate(k, window.Global(), stages.Sum(ident), stages.Parallelism(2)))
	},
	// The map panics once on the record that `arm at=N` chose.
	"trapped": func(p *stages.Pipeline) {
		m := stages.Map(source(p), func(x int64) int64 { scriptTrap.check(x); return x })
		stages.Collect(stages.Map(stages.Rebalance(m), ident, stages.Parallelism(3)))
	},
	// Two sources of different parallelism into one union.
	"union": func(p *stages.Pipeline) {
		a := source(p, stages.Name("a"))
		b := stages.Read[int64](p, testSource[int64]{splits: 1}, stages.Name("b"))
		stages.Collect(stages.Union(a, b))
	},
}

func buildPlan(t testing.TB, p *stages.Pipeline, par, maxPar int) *plan.Physical {
	t.Helper()
	phys, err := planOf(p, par, maxPar)
	if err != nil {
		t.Fatal(err)
	}
	return phys
}

// planOf plans p with facts gathered from its sources, as the runtime does.
func planOf(p *stages.Pipeline, par, maxPar int) (*plan.Physical, error) {
	if err := p.Err(); err != nil {
		return nil, err
	}
	facts := plan.Facts{Splits: map[int][]plan.Split{}}
	for _, n := range p.Graph().Nodes {
		if n.Kind == plan.KindSource {
			s, err := n.Source.Discover(context.Background())
			if err != nil {
				return nil, err
			}
			facts.Splits[n.ID] = s
		}
	}
	return plan.Build(p.Graph(), facts, plan.Config{DefaultParallelism: par, MaxParallelism: maxPar})
}

func instance(phys *plan.Physical, v *plan.Vertex, i int) plan.Instance {
	return plan.Instance{Job: phys.Job, Stage: v.Name(), Index: i, Parallelism: v.Parallelism}
}

// ---- rendering and parsing records ----

func formatBatch(b *plan.Batch) string {
	if b == nil || b.Data == nil {
		return "[]"
	}
	var recs []string
	switch xs := b.Data.(type) {
	case []int64:
		for _, x := range xs {
			recs = append(recs, strconv.FormatInt(x, 10))
		}
	case []stages.KV[int64, int64]:
		for _, x := range xs {
			recs = append(recs, fmt.Sprintf("%d=%d", x.Key, x.Value))
		}
	case []stages.KV[int64, []int64]:
		for _, x := range xs {
			recs = append(recs, fmt.Sprintf("%d=%v", x.Key, x.Value))
		}
	default:
		return fmt.Sprintf("%v", b.Data)
	}
	if b.Times != nil {
		if len(b.Times) != len(recs) {
			return fmt.Sprintf("[%s] with %d times %v (MISMATCH)", strings.Join(recs, " "), len(b.Times), b.Times)
		}
		for i := range recs {
			recs[i] += "@" + strconv.FormatInt(b.Times[i], 10)
		}
	}
	return "[" + strings.Join(recs, " ") + "]"
}

// parseBatch reads records of type t: integers, or key=value pairs for
// KV[int64, int64]; any record written x@time gives the batch event times
// (zero for records without one).
func parseBatch(t *plan.Type, toks []string) (*plan.Batch, error) {
	var times []int64
	timed := false
	parseTime := func(tok string) (string, int64, error) {
		rec, at, ok := strings.Cut(tok, "@")
		if !ok {
			return tok, 0, nil
		}
		timed = true
		ts, err := strconv.ParseInt(at, 10, 64)
		return rec, ts, err
	}
	b := &plan.Batch{}
	switch t.New(0).(type) {
	case []int64:
		xs := []int64{}
		for _, tok := range toks {
			rec, ts, err := parseTime(tok)
			if err != nil {
				return nil, err
			}
			x, err := strconv.ParseInt(rec, 10, 64)
			if err != nil {
				return nil, err
			}
			xs, times = append(xs, x), append(times, ts)
		}
		b.Data = xs
	case []stages.KV[int64, int64]:
		xs := []stages.KV[int64, int64]{}
		for _, tok := range toks {
			rec, ts, err := parseTime(tok)
			if err != nil {
				return nil, err
			}
			ks, vs, ok := strings.Cut(rec, "=")
			k, err1 := strconv.ParseInt(ks, 10, 64)
			v, err2 := strconv.ParseInt(vs, 10, 64)
			if !ok || err1 != nil || err2 != nil {
				return nil, fmt.Errorf("bad record %q, want key=value", tok)
			}
			xs, times = append(xs, stages.KV[int64, int64]{Key: k, Value: v}), append(times, ts)
		}
		b.Data = xs
	default:
		return nil, fmt.Errorf("no parser for records of type %s", t.Name)
	}
	if timed {
		b.Times = times
	}
	return b, nil
}

// ---- the script runner ----

// A script is a sequence of cases: one or more command lines, a line
// "----", and the expected log, which ends at a blank line. Lines starting
// with # and blank lines between cases are comments.
type scriptCase struct {
	line     int // of the first command
	cmds     []string
	expected string
}

type scriptPart struct {
	text string      // a comment or blank line, kept by -rewrite
	c    *scriptCase // or a case
}

func parseScript(path string) ([]scriptPart, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var parts []scriptPart
	var cur *scriptCase
	inExpected := false
	var exp []string
	sc := bufio.NewScanner(f)
	ln := 0
	for sc.Scan() {
		ln++
		line := sc.Text()
		switch {
		case inExpected && strings.TrimSpace(line) == "":
			cur.expected = strings.Join(exp, "\n")
			parts = append(parts, scriptPart{c: cur})
			parts = append(parts, scriptPart{text: line})
			cur, inExpected, exp = nil, false, nil
		case inExpected:
			exp = append(exp, line)
		case cur != nil && line == "----":
			inExpected = true
		case cur != nil:
			cur.cmds = append(cur.cmds, line)
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#"):
			parts = append(parts, scriptPart{text: line})
		default:
			cur = &scriptCase{line: ln, cmds: []string{line}}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	switch {
	case inExpected:
		cur.expected = strings.Join(exp, "\n")
		parts = append(parts, scriptPart{c: cur})
	case cur != nil:
		return nil, fmt.Errorf("%s:%d: command without ----", path, cur.line)
	}
	return parts, nil
}

func TestScripts(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no scripts in testdata")
	}
	for _, path := range paths {
		if isTaskScript(path) {
			continue // TestTaskScripts runs it
		}
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			env := &scriptEnv{}
			runScript(t, path, env.run)
		})
	}
}

// runScript runs the script at path, each command through run, and checks
// (or, with -rewrite, rewrites) its expected logs.
func runScript(t *testing.T, path string, run func(cmd string) string) {
	t.Helper()
	parts, err := parseScript(path)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, part := range parts {
		if part.c == nil {
			out.WriteString(part.text + "\n")
			continue
		}
		c := part.c
		var logs []string
		for _, cmd := range c.cmds {
			got := run(cmd)
			if len(c.cmds) > 1 {
				got = "> " + cmd + "\n" + got
			}
			logs = append(logs, got)
		}
		got := strings.Join(logs, "\n")
		if !rewriting() && got != c.expected {
			t.Errorf("%s:%d: %s\n--- got\n%s\n--- want\n%s", path, c.line, strings.Join(c.cmds, "; "), got, c.expected)
		}
		out.WriteString(strings.Join(c.cmds, "\n") + "\n----\n" + got + "\n")
	}
	if rewriting() {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// scriptEnv holds one script's operator.
type scriptEnv struct {
	phys *plan.Physical
	v    *plan.Vertex
	op   *core.Operator
}

// args splits name=value arguments from the other words of a command; a
// word is an argument when its name is not a number (key=value records are).
func args(words []string) (map[string]string, []string) {
	kv := map[string]string{}
	var rest []string
	for _, w := range words {
		name, val, ok := strings.Cut(w, "=")
		if _, err := strconv.ParseInt(name, 10, 64); ok && err != nil {
			kv[name] = val
			continue
		}
		rest = append(rest, w)
	}
	return kv, rest
}

func intArg(kv map[string]string, name string, def int) (int, error) {
	s, ok := kv[name]
	if !ok {
		return def, nil
	}
	delete(kv, name)
	return strconv.Atoi(s)
}

func (e *scriptEnv) run(line string) string {
	words := strings.Fields(line)
	kv, rest := args(words[1:])
	var out string
	var err error
	switch words[0] {
	case "new":
		out, err = e.new(kv)
	case "step":
		out, err = e.step(kv, rest)
	case "resume":
		out = e.try(e.op.Resume)
	case "ready":
		out = e.ready()
	case "advance":
		e.op.Advance()
		out = "ok"
	case "counters":
		out = e.counters()
	case "arm":
		at, err1 := intArg(kv, "at", 0)
		err = err1
		*scriptTrap = trap[int64]{at: int64(at), armed: true}
		out = "ok"
	default:
		err = fmt.Errorf("unknown command %q", words[0])
	}
	if err == nil && len(kv) > 0 {
		err = fmt.Errorf("unknown arguments %v", kv)
	}
	if err != nil {
		return "script error: " + err.Error()
	}
	return out
}

// new plans a fixture and makes an operator for one instance of one vertex.
func (e *scriptEnv) new(kv map[string]string) (string, error) {
	name := kv["graph"]
	delete(kv, "graph")
	mk, ok := fixtures[name]
	if !ok {
		return "", fmt.Errorf("no fixture %q", name)
	}
	par, err1 := intArg(kv, "par", 2)
	maxPar, err2 := intArg(kv, "maxpar", 8)
	vid, err3 := intArg(kv, "vertex", 1)
	inst, err4 := intArg(kv, "instance", 0)
	recs, err5 := intArg(kv, "records", 4)
	bytes, err6 := intArg(kv, "bytes", 1<<20)
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
		return "", err
	}
	p := stages.NewPipeline(name)
	mk(p)
	var sb strings.Builder
	phys, err := planOf(p, par, maxPar)
	if err != nil {
		return "", err
	}
	e.phys = phys
	if vid < 1 || vid > len(e.phys.Vertices) {
		return "", fmt.Errorf("no vertex %d", vid)
	}
	e.v = e.phys.Vertices[vid-1]
	if inst < 0 || inst >= e.v.Parallelism {
		return "", fmt.Errorf("no instance %d of v%d", inst, vid)
	}
	e.op = core.New(e.v, instance(e.phys, e.v, inst),
		core.Config{BatchRecords: recs, BatchBytes: int64(bytes), MaxParallelism: maxPar})
	sb.WriteString(e.phys.String())
	fmt.Fprintf(&sb, "operator v%d instance %d/%d: %s", e.v.ID, inst+1, e.v.Parallelism, e.v.Name())
	for i, in := range e.v.In {
		fmt.Fprintf(&sb, "\n  input %d: %s from v%d ×%d (%s)", i, in.Kind, in.From.ID, in.From.Parallelism, in.Type.Name)
	}
	for i, o := range e.v.Out {
		fmt.Fprintf(&sb, "\n  edge %d: %s to v%d ×%d (%s, %d bytes a record)", i, o.Kind, o.To.ID, o.To.Parallelism, o.Type.Name, o.Type.Size)
	}
	return sb.String(), nil
}

func (e *scriptEnv) step(kv map[string]string, rest []string) (string, error) {
	if e.op == nil {
		return "", errors.New("no operator: use new first")
	}
	if len(rest) == 0 {
		return "", errors.New("step data|end|tick")
	}
	input, err1 := intArg(kv, "input", 0)
	channel, err2 := intArg(kv, "channel", 0)
	if err := errors.Join(err1, err2); err != nil {
		return "", err
	}
	ev := core.Msg{Input: input, Channel: channel}
	switch rest[0] {
	case "data":
		t := e.v.Head().Out
		if e.v.Head().Kind != plan.KindSource {
			if input >= len(e.v.In) {
				return "", fmt.Errorf("no input %d", input)
			}
			t = e.v.In[input].Type
		}
		b, err := parseBatch(t, rest[1:])
		if err != nil {
			return "", err
		}
		ev.Kind, ev.Batch = core.Data, b
	case "end":
		ev.Kind = core.EndOfInput
	case "tick":
		ev.Kind = core.Tick
	default:
		return "", fmt.Errorf("step %q", rest[0])
	}
	return e.try(func() error { return e.op.Step(ev) }), nil
}

// try runs f and renders its outcome with the operator's flags.
func (e *scriptEnv) try(f func() error) (out string) {
	defer func() {
		if r := recover(); r != nil {
			var rp *stages.RecordPanic
			if err, ok := r.(error); ok && errors.As(err, &rp) {
				r = fmt.Sprintf("stage %s on record %s: %v", rp.Stage, rp.Record, rp.Value)
			}
			out = fmt.Sprintf("panic: %v%s", r, e.flags())
		}
	}()
	if err := f(); err != nil {
		return "error: " + err.Error() + e.flags()
	}
	return "ok" + e.flags()
}

func (e *scriptEnv) flags() string {
	var fs []string
	if e.op.Pending() {
		fs = append(fs, "pending")
	}
	if e.op.Buffered() {
		fs = append(fs, "buffered")
	}
	if e.op.Finished() {
		fs = append(fs, "finished")
	}
	if len(fs) == 0 {
		return ""
	}
	return " (" + strings.Join(fs, ", ") + ")"
}

func (e *scriptEnv) ready() string {
	rd := e.op.Ready()
	var lines []string
	for _, s := range rd.Sends {
		lines = append(lines, renderSend(e.v, s))
	}
	for _, b := range rd.Sink {
		lines = append(lines, "sink "+formatBatch(b))
	}
	if rd.Finished {
		lines = append(lines, "finished")
	}
	if len(lines) == 0 {
		return "(nothing)"
	}
	return strings.Join(lines, "\n")
}

// renderSend renders a send and flags any disagreement between its counts
// and its batch.
func renderSend(v *plan.Vertex, s core.Msg) string {
	if s.Edge < 0 || s.Edge >= len(v.Out) {
		return fmt.Sprintf("send to no edge %d", s.Edge)
	}
	e := v.Out[s.Edge]
	head := fmt.Sprintf("edge %d %s→v%d ch%d:", s.Edge, e.Kind, e.To.ID, s.Channel)
	if s.Kind == core.EndOfInput {
		if s.Batch != nil || s.Records != 0 {
			return head + " end WITH DATA " + formatBatch(s.Batch)
		}
		return head + " end"
	}
	line := fmt.Sprintf("%s %s (%d records, %d bytes)", head, formatBatch(s.Batch), s.Records, s.Bytes)
	if n := e.Type.Count(s.Batch); n != s.Records || s.Bytes != int64(n)*int64(e.Type.Size) || n == 0 {
		line += fmt.Sprintf(" MISMATCH: batch has %d records", n)
	}
	return line
}

func (e *scriptEnv) counters() string {
	var parts []string
	if len(e.v.In) > 0 {
		parts = append(parts, fmt.Sprintf("records in %d", e.op.RecordsIn))
	}
	for i, n := range e.v.Chain {
		parts = append(parts, fmt.Sprintf("%s %d", n, e.op.NodeRecords[i]))
	}
	return strings.Join(parts, "; ")
}

// ---- an in-memory runtime for whole-plan tests ----

// cluster runs every instance of a plan in one goroutine: a FIFO of events,
// each step's Ready routed to its receivers. A user panic is answered as the
// runtime answers it: Resume on the same operator.
type cluster struct {
	t    testing.TB
	phys *plan.Physical
	ops  map[*plan.Vertex][]*core.Operator
	fifo []delivery
	// log is every send and sink batch, in the order Ready gave them.
	log    []string
	sinks  map[*core.Operator][]*plan.Batch
	panics []any
	// tick, when set, sends a Tick to the operator after every n-th step.
	tick, steps int
}

type delivery struct {
	op *core.Operator
	ev core.Msg
}

func newCluster(t testing.TB, phys *plan.Physical, cfg core.Config) *cluster {
	c := &cluster{t: t, phys: phys, ops: map[*plan.Vertex][]*core.Operator{}, sinks: map[*core.Operator][]*plan.Batch{}}
	for _, v := range phys.Vertices {
		for i := range v.Parallelism {
			c.ops[v] = append(c.ops[v], core.New(v, instance(phys, v, i), cfg))
		}
	}
	return c
}

// feed queues data for the source vertices: batches of the given size go to
// the instances in turn, then every instance ends.
func feed[T any](c *cluster, data []T, size int) {
	for _, v := range c.phys.Vertices {
		if v.Head().Kind != plan.KindSource {
			continue
		}
		ops := c.ops[v]
		for i, k := 0, 0; i < len(data); i, k = i+size, k+1 {
			b := &plan.Batch{Data: slices.Clone(data[i:min(i+size, len(data))])}
			c.fifo = append(c.fifo, delivery{ops[k%len(ops)], core.Msg{Kind: core.Data, Batch: b}})
		}
		for _, op := range ops {
			c.fifo = append(c.fifo, delivery{op, core.Msg{Kind: core.EndOfInput}})
		}
	}
}

// run delivers events until none is left, and returns the first error.
func (c *cluster) run() error {
	for len(c.fifo) > 0 {
		d := c.fifo[0]
		c.fifo = c.fifo[1:]
		if err := c.step(d.op, d.ev); err != nil {
			return err
		}
		c.steps++
		if c.tick > 0 && c.steps%c.tick == 0 && !d.op.Finished() {
			if err := c.step(d.op, core.Msg{Kind: core.Tick}); err != nil {
				return err
			}
		}
	}
	for v, ops := range c.ops {
		for _, op := range ops {
			if !op.Finished() {
				return fmt.Errorf("%s: v%d instance %d not finished", v.Name(), v.ID, op.Instance().Index)
			}
		}
	}
	return nil
}

func (c *cluster) step(op *core.Operator, ev core.Msg) error {
	err, p := catch(func() error { return op.Step(ev) })
	if p != nil {
		c.panics = append(c.panics, p)
		if !op.Pending() {
			c.t.Fatalf("%s panicked with no pending work: %v", op.Instance(), p)
		}
		var p2 any
		err, p2 = catch(op.Resume)
		if p2 != nil {
			c.t.Fatalf("%s: Resume panicked again: %v", op.Instance(), p2)
		}
		if err == nil && op.Pending() {
			c.t.Fatalf("%s: Resume left work pending", op.Instance())
		}
	}
	if err != nil {
		return err
	}
	v := op.Vertex()
	me := op.Instance().Index
	rd := op.Ready()
	for _, s := range rd.Sends {
		c.log = append(c.log, fmt.Sprintf("v%d/%d %s", v.ID, me, renderSend(v, s)))
		e := v.Out[s.Edge]
		next := core.Msg{Kind: core.Data, Input: e.Input, Channel: me, Batch: s.Batch}
		if s.Kind == core.EndOfInput {
			next.Kind = core.EndOfInput
		}
		c.fifo = append(c.fifo, delivery{c.ops[e.To][s.Channel], next})
	}
	for _, b := range rd.Sink {
		c.log = append(c.log, fmt.Sprintf("v%d/%d sink %s", v.ID, me, formatBatch(b)))
		c.sinks[op] = append(c.sinks[op], b)
	}
	op.Advance()
	return nil
}

func catch(f func() error) (err error, p any) {
	defer func() { p = recover() }()
	return f(), nil
}

// counts renders every operator's counters.
func (c *cluster) counts() []string {
	var out []string
	for _, v := range c.phys.Vertices {
		for _, op := range c.ops[v] {
			out = append(out, fmt.Sprintf("v%d/%d in %d nodes %v", v.ID, op.Instance().Index, op.RecordsIn, op.NodeRecords))
		}
	}
	return out
}

// sinkRecords returns every record written by the sinks of vertex v, by
// instance.
func sinkRecords[T any](c *cluster, v *plan.Vertex) [][]T {
	out := make([][]T, len(c.ops[v]))
	for i, op := range c.ops[v] {
		for _, b := range c.sinks[op] {
			out[i] = append(out[i], b.Data.([]T)...)
		}
	}
	return out
}

// ---- restart semantics ----

// trap panics once, on the first call with its chosen value.
type trap[T comparable] struct {
	at     T
	armed  bool
	sprung int
}

func (tr *trap[T]) check(x T) {
	if tr.armed && x == tr.at {
		tr.armed = false
		tr.sprung++
		panic(fmt.Sprintf("trap on %v", x))
	}
}

func seq(n int) []int64 {
	xs := make([]int64, n)
	for i := range xs {
		xs[i] = int64(i)
	}
	return xs
}

func restartCfg() core.Config {
	return core.Config{BatchRecords: 5, BatchBytes: 1 << 20, MaxParallelism: 8}
}

// TestRestartGivesTheSameOutput runs pipelines twice, once clean and once
// with a user function panicking on a chosen record on its first attempt.
// After Resume the run must produce the very same sends and sink batches,
// and count each record once.
func TestRestartGivesTheSameOutput(t *testing.T) {
	mod5 := func(x int64) int64 { return x % 5 }
	tests := []struct {
		name  string
		trap  int64 // the record (or key) to panic on
		build func(p *stages.Pipeline, tr *trap[int64])
	}{
		{"map in a fused chain", 13, func(p *stages.Pipeline, tr *trap[int64]) {
			stages.Collect(stages.Map(source(p), func(x int64) int64 { tr.check(x); return x * 3 }))
		}},
		{"filter before a forward fan-out", 22, func(p *stages.Pipeline, tr *trap[int64]) {
			a := stages.Filter(source(p), func(x int64) bool { tr.check(x); return x%3 != 0 })
			stages.Collect(a)
			stages.Collect(stages.Map(a, ident))
		}},
		{"map before a combine", 17, func(p *stages.Pipeline, tr *trap[int64]) {
			s := stages.Map(source(p), func(x int64) int64 { tr.check(x); return x + 1 })
			stages.Collect(stages.Aggregate(stages.KeyBy(s, mod5), window.Global(), stages.Sum(ident)))
		}},
		{"combine's key function", 17, func(p *stages.Pipeline, tr *trap[int64]) {
			k := stages.KeyBy(source(p), func(x int64) int64 { tr.check(x); return x % 5 })
			stages.Collect(stages.Aggregate(k, window.Global(), stages.Sum(ident)))
		}},
		{"combiner's Lift", 8, func(p *stages.Pipeline, tr *trap[int64]) {
			c := stages.Combine("sum", func(x int64) int64 { tr.check(x); return x },
				func(a, b int64) int64 { return a + b }, ident)
			stages.Collect(stages.Aggregate(stages.KeyBy(source(p), mod5), window.Global(), c))
		}},
		{"combiner's Output at the end of input", 3, func(p *stages.Pipeline, tr *trap[int64]) {
			c := stages.Combine("sum", ident, func(a, b int64) int64 { return a + b },
				func(a int64) int64 { tr.check(a % 5); return a })
			stages.Collect(stages.Aggregate(stages.KeyBy(source(p), mod5), window.Global(), c))
		}},
		{"map after an aggregate's flush", 3, func(p *stages.Pipeline, tr *trap[int64]) {
			agg := stages.Aggregate(stages.KeyBy(source(p), mod5), window.Global(), stages.Sum(ident))
			stages.Collect(stages.Map(agg, func(kv stages.KV[int64, int64]) int64 { tr.check(kv.Key); return kv.Value }))
		}},
		{"filter after a group's flush", 4, func(p *stages.Pipeline, tr *trap[int64]) {
			g := stages.GroupByKey(stages.KeyBy(source(p), mod5))
			stages.Collect(stages.Filter(g, func(kv stages.KV[int64, []int64]) bool { tr.check(kv.Key); return kv.Key != 0 }))
		}},
		{"map between two aggregates", 2, func(p *stages.Pipeline, tr *trap[int64]) {
			agg := stages.Aggregate(stages.KeyBy(source(p), mod5), window.Global(), stages.Sum(ident))
			m := stages.Map(agg, func(kv stages.KV[int64, int64]) int64 { tr.check(kv.Key); return kv.Value })
			stages.Collect(stages.Aggregate(stages.KeyBy(m, func(x int64) int64 { return x % 2 }), window.Global(), stages.Count[int64]()))
		}},
		{"flatmap on the receiving side of a rebalance", 31, func(p *stages.Pipeline, tr *trap[int64]) {
			f := stages.FlatMap(stages.Rebalance(source(p)), func(x int64, emit func(int64)) {
				tr.check(x)
				emit(x)
				emit(-x)
			}, stages.Parallelism(3))
			stages.Collect(f)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runOnce := func(armed bool) *cluster {
				tr := &trap[int64]{at: tt.trap, armed: armed}
				p := stages.NewPipeline("restart")
				tt.build(p, tr)
				c := newCluster(t, buildPlan(t, p, 2, 8), restartCfg())
				feed(c, seq(40), 7)
				if err := c.run(); err != nil {
					t.Fatal(err)
				}
				if armed && (tr.sprung != 1 || len(c.panics) != 1) {
					t.Fatalf("trap sprung %d times, %d panics; want 1 and 1", tr.sprung, len(c.panics))
				}
				return c
			}
			clean, restarted := runOnce(false), runOnce(true)
			var rp *stages.RecordPanic
			if err, ok := restarted.panics[0].(error); !ok || !errors.As(err, &rp) {
				t.Errorf("panic value %T %v, want a *stages.RecordPanic", restarted.panics[0], restarted.panics[0])
			}
			if len(clean.log) == 0 {
				t.Fatal("the clean run produced nothing")
			}
			if !slices.Equal(restarted.log, clean.log) {
				t.Errorf("output after a restart differs:\n--- restarted\n%s\n--- clean\n%s",
					strings.Join(restarted.log, "\n"), strings.Join(clean.log, "\n"))
			}
			if got, want := restarted.counts(), clean.counts(); !slices.Equal(got, want) {
				t.Errorf("counters after a restart differ:\n--- restarted\n%s\n--- clean\n%s",
					strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestResumeCompletesTheBatch drives one operator by hand: Step panics in the
// middle of a batch, leaves it pending, and Resume completes it.
func TestResumeCompletesTheBatch(t *testing.T) {
	tr := &trap[int64]{at: 2, armed: true}
	p := stages.NewPipeline("resume")
	stages.Collect(stages.Map(source(p), func(x int64) int64 { tr.check(x); return x * 10 }))
	phys := buildPlan(t, p, 1, 8)
	v := phys.Vertices[0]
	op := core.New(v, instance(phys, v, 0), restartCfg())
	_, pv := catch(func() error { return op.Step(core.Msg{Kind: core.Data, Batch: &plan.Batch{Data: []int64{1, 2, 3}}}) })
	if pv == nil {
		t.Fatal("Step did not panic")
	}
	if !op.Pending() || len(op.Ready().Sink) != 0 {
		t.Fatalf("after the panic: pending %v, sink %d batches; want pending and nothing written", op.Pending(), len(op.Ready().Sink))
	}
	if err := op.Resume(); err != nil {
		t.Fatal(err)
	}
	if op.Pending() {
		t.Error("pending after Resume")
	}
	if got := op.Ready().Sink; len(got) != 1 || formatBatch(got[0]) != "[10 20 30]" {
		t.Errorf("sink after Resume: %d batches %v, want [10 20 30]", len(got), got)
	}
	if op.NodeRecords[1] != 3 {
		t.Errorf("map counted %d records, want 3", op.NodeRecords[1])
	}
	if err := op.Resume(); err != nil || op.Pending() {
		t.Errorf("idle Resume: err %v, pending %v", err, op.Pending())
	}
}

// TestMergePanicLosesState: a user Merge that panics leaves its table half
// updated, so Resume must refuse with ErrStateLost rather than retry, on
// either side of the shuffle.
func TestMergePanicLosesState(t *testing.T) {
	tests := []struct {
		name string
		data []int64 // one batch per source instance
		par  int
	}{
		// Two records of one key in one batch: the combine merges.
		{"in the combine", []int64{1, 1}, 1},
		// One record of key 1 per source instance: only the aggregate merges.
		{"in the aggregate", []int64{1, 1}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &trap[int64]{at: 1, armed: true}
			merge := func(a, b int64) int64 { tr.check(a); return a + b }
			p := stages.NewPipeline("merge")
			c := stages.Combine("sum", ident, merge, ident)
			stages.Collect(stages.Aggregate(stages.KeyBy(source(p), ident), window.Global(), c))
			phys := buildPlan(t, p, tt.par, 8)
			cl := newCluster(t, phys, restartCfg())
			feed(cl, tt.data, 1)
			err := cl.run()
			if len(cl.panics) != 1 {
				t.Fatalf("%d panics, want 1 (err %v)", len(cl.panics), err)
			}
			if !errors.Is(err, core.ErrStateLost) {
				t.Fatalf("Resume after a Merge panic = %v, want ErrStateLost", err)
			}
			if !strings.Contains(err.Error(), "instance") {
				t.Errorf("error %q does not name the instance", err)
			}
		})
	}
}

// TestPanicInHashRoutingKeepsTheBatch: a user hash function (HashWith) runs
// when the upstream vertex routes its output. A panic there must not lose
// the batch being routed.
func TestPanicInHashRoutingKeepsTheBatch(t *testing.T) {
	runOnce := func(armed bool) *cluster {
		tr := &trap[int64]{at: 3, armed: armed}
		h := func(k int64) uint64 { tr.check(k); return uint64(k) }
		p := stages.NewPipeline("hash-panic")
		k := stages.KeyBy(source(p), func(x int64) int64 { return x % 5 }, stages.HashWith(h))
		stages.Collect(stages.Aggregate(k, window.Global(), stages.Sum(ident)))
		c := newCluster(t, buildPlan(t, p, 2, 8), restartCfg())
		feed(c, seq(40), 7)
		if err := c.run(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	clean, restarted := runOnce(false), runOnce(true)
	if len(restarted.panics) != 1 {
		t.Fatalf("%d panics, want 1", len(restarted.panics))
	}
	if !slices.Equal(restarted.log, clean.log) {
		t.Errorf("output after a restart differs:\n--- restarted\n%s\n--- clean\n%s",
			strings.Join(restarted.log, "\n"), strings.Join(clean.log, "\n"))
	}
}

// ---- routing and batching properties ----

// TestHashRouting: every record of a key reaches the same channel, whichever
// upstream instance sends it and in whichever batch, and the channel is the
// one plan.Route gives the key's group.
func TestHashRouting(t *testing.T) {
	for _, maxPar := range []int{1, 7, 128} {
		for _, par := range []int{1, 3} {
			if par > maxPar {
				continue
			}
			t.Run(fmt.Sprintf("maxpar=%d/par=%d", maxPar, par), func(t *testing.T) {
				testHashRouting(t, maxPar, par)
			})
		}
	}
}

func testHashRouting(t *testing.T, maxPar, par int) {
	rng := rand.New(rand.NewPCG(uint64(maxPar), uint64(par)))
	keys := make([]int64, 2000)
	for i := range keys {
		keys[i] = rng.Int64N(300) - 100
	}
	route := plan.Route(maxPar, par)
	for _, hashed := range []string{"default", "identity"} {
		p := stages.NewPipeline("hash-routing")
		var opts []stages.KeyOption[int64]
		if hashed == "identity" {
			opts = append(opts, stages.HashWith(identityHash))
		}
		stages.Collect(stages.GroupByKey(stages.KeyBy(source(p), ident, opts...), stages.Parallelism(par)))
		phys := buildPlan(t, p, min(2, maxPar), maxPar)
		c := newCluster(t, phys, core.Config{BatchRecords: 16, BatchBytes: 1 << 20, MaxParallelism: maxPar})
		feed(c, keys, 13)
		if err := c.run(); err != nil {
			t.Fatal(err)
		}
		owner := map[int64]int{}
		got := 0
		for i, kvs := range sinkRecords[stages.KV[int64, []int64]](c, phys.Vertices[1]) {
			for _, kv := range kvs {
				got += len(kv.Value)
				if prev, ok := owner[kv.Key]; ok && prev != i {
					t.Errorf("%s hash: key %d on channels %d and %d", hashed, kv.Key, prev, i)
				}
				owner[kv.Key] = i
				if hashed == "identity" {
					if want := int(route[uint64(kv.Key)%uint64(maxPar)]); i != want {
						t.Errorf("key %d (group %d) on channel %d, plan.Route says %d",
							kv.Key, uint64(kv.Key)%uint64(maxPar), i, want)
					}
				}
			}
		}
		if got != len(keys) {
			t.Errorf("%s hash: %d records grouped, want %d", hashed, got, len(keys))
		}
		if par > 1 {
			used := map[int]bool{}
			for _, ch := range owner {
				used[ch] = true
			}
			if len(used) != par && maxPar >= par*4 {
				t.Errorf("%s hash: keys reached %d of %d channels", hashed, len(used), par)
			}
		}
	}
}

// TestOutputProperties feeds random batches through one upstream instance
// of each edge kind, with random batch bounds and ticks, and checks what
// the receivers get: no send over the limit or empty, counts that match the
// batches, nothing lost or duplicated, order kept per channel, and one end
// marker after the data on every channel.
func TestOutputProperties(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		for _, graph := range []string{"fanout", "rebalance", "broadcast", "hash"} {
			t.Run(fmt.Sprintf("%s/seed=%d", graph, seed), func(t *testing.T) {
				if err := outputProperties(t, graph, seed); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
			})
		}
	}
}

func outputProperties(t *testing.T, graph string, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0xb47c4))
	p := stages.NewPipeline(graph)
	fixtures[graph](p)
	const maxPar = 8
	phys := buildPlan(t, p, 2, maxPar)
	v := phys.Vertices[0]
	cfg := core.Config{BatchRecords: 1 + rng.IntN(20), BatchBytes: 1 + rng.Int64N(200), MaxParallelism: maxPar}
	op := core.New(v, instance(phys, v, 1), cfg)

	var in []int64
	got := make([][][]int64, len(v.Out)) // per edge, per channel
	ended := make([][]bool, len(v.Out))
	for i, e := range v.Out {
		got[i] = make([][]int64, e.To.Parallelism)
		ended[i] = make([]bool, e.To.Parallelism)
	}
	collect := func() error {
		for _, s := range op.Ready().Sends {
			e := v.Out[s.Edge]
			limit := min(cfg.BatchRecords, max(1, int(cfg.BatchBytes/int64(e.Type.Size))))
			if ended[s.Edge][s.Channel] {
				return fmt.Errorf("send after the end: %s", renderSend(v, s))
			}
			if s.Kind == core.EndOfInput {
				ended[s.Edge][s.Channel] = true
				continue
			}
			n := e.Type.Count(s.Batch)
			switch {
			case n == 0 || n != s.Records || s.Bytes != int64(n*e.Type.Size):
				return fmt.Errorf("bad send: %s", renderSend(v, s))
			case n > limit:
				return fmt.Errorf("send of %d records over the limit %d (%+v)", n, limit, cfg)
			}
			switch xs := s.Batch.Data.(type) {
			case []int64:
				got[s.Edge][s.Channel] = append(got[s.Edge][s.Channel], xs...)
			case []stages.KV[int64, int64]:
				for _, x := range xs {
					got[s.Edge][s.Channel] = append(got[s.Edge][s.Channel], x.Value)
				}
			}
		}
		op.Advance()
		return nil
	}
	for range 1 + rng.IntN(30) {
		switch rng.IntN(4) {
		case 0:
			if err := op.Step(core.Msg{Kind: core.Tick}); err != nil {
				return err
			}
			if op.Buffered() {
				return errors.New("buffered after a tick")
			}
		default:
			b := make([]int64, rng.IntN(40))
			for i := range b {
				b[i] = rng.Int64N(1000)
			}
			in = append(in, b...)
			if err := op.Step(core.Msg{Kind: core.Data, Batch: &plan.Batch{Data: b}}); err != nil {
				return err
			}
		}
		if err := collect(); err != nil {
			return err
		}
	}
	if err := op.Step(core.Msg{Kind: core.EndOfInput}); err != nil {
		return err
	}
	if err := collect(); err != nil {
		return err
	}
	if !op.Finished() || op.Buffered() {
		return fmt.Errorf("after the end: finished %v, buffered %v", op.Finished(), op.Buffered())
	}
	for i, e := range v.Out {
		for c := range got[i] {
			if !ended[i][c] {
				return fmt.Errorf("edge %d channel %d never ended", i, c)
			}
		}
		var want [][]int64 // per channel, when the edge kind fixes it
		switch e.Kind {
		case plan.Forward:
			want = make([][]int64, e.To.Parallelism)
			want[1] = mapped(v, i, in)
		case plan.Broadcast:
			want = make([][]int64, e.To.Parallelism)
			for c := range want {
				want[c] = in
			}
		case plan.Hash:
			want = make([][]int64, e.To.Parallelism)
			route := plan.Route(maxPar, e.To.Parallelism)
			for _, x := range in {
				c := route[uint64(x)%maxPar]
				want[c] = append(want[c], x)
			}
		case plan.Rebalance: // any spread, in order within a channel
			var all []int64
			for c := range got[i] {
				if !isSubsequence(got[i][c], in) {
					return fmt.Errorf("rebalance channel %d reorders records", c)
				}
				all = append(all, got[i][c]...)
			}
			slices.Sort(all)
			sorted := slices.Sorted(slices.Values(in))
			if !slices.Equal(all, sorted) {
				return fmt.Errorf("rebalance delivered %d records, sent %d", len(all), len(in))
			}
			continue
		}
		for c := range want {
			if !slices.Equal(got[i][c], want[c]) && (len(got[i][c]) > 0 || len(want[c]) > 0) {
				return fmt.Errorf("%s edge %d channel %d got %v, want %v", e.Kind, i, c, got[i][c], want[c])
			}
		}
	}
	return nil
}

// mapped applies the fixture's chain to in, for the fanout fixture's map.
func mapped(v *plan.Vertex, edge int, in []int64) []int64 {
	b := &plan.Batch{Data: slices.Clone(in)}
	for _, n := range v.Chain[1:] {
		b = n.Transform(b)
	}
	_ = edge
	return b.Data.([]int64)
}

func isSubsequence(sub, of []int64) bool {
	i := 0
	for _, x := range of {
		if i < len(sub) && sub[i] == x {
			i++
		}
	}
	return i == len(sub)
}

// TestTimesFollowRecords: event times travel with their records through the
// forward path's gathering and cutting, and records without times get zero.
func TestTimesFollowRecords(t *testing.T) {
	p := stages.NewPipeline("times")
	fixtures["fanout"](p)
	phys := buildPlan(t, p, 1, 8)
	v := phys.Vertices[0]
	op := core.New(v, instance(phys, v, 0), core.Config{BatchRecords: 4, BatchBytes: 1 << 20, MaxParallelism: 8})
	steps := []*plan.Batch{
		{Data: []int64{1}, Times: []int64{100}},
		{Data: []int64{2, 3}},
		{Data: []int64{4, 5, 6, 7, 8, 9}, Times: []int64{400, 500, 600, 700, 800, 900}},
	}
	var got []string
	for _, b := range steps {
		if err := op.Step(core.Msg{Kind: core.Data, Batch: b}); err != nil {
			t.Fatal(err)
		}
	}
	if err := op.Step(core.Msg{Kind: core.Tick}); err != nil {
		t.Fatal(err)
	}
	for _, s := range op.Ready().Sends {
		got = append(got, renderSend(v, s))
	}
	var want []string
	for _, e := range []string{"edge 0 forward→v2", "edge 1 forward→v3"} {
		want = append(want,
			e+" ch0: [10@100 20@0 30@0 40@400] (4 records, 32 bytes)",
			e+" ch0: [50@500 60@600 70@700 80@800] (4 records, 32 bytes)")
	}
	for _, e := range []string{"edge 0 forward→v2", "edge 1 forward→v3"} {
		want = append(want, e+" ch0: [90@900] (1 records, 8 bytes)")
	}
	if !slices.Equal(got, want) {
		t.Errorf("sends:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestHashTimesWithMixedBatches: a hash edge gathering a batch without event
// times and one with them must keep one time per record, as the forward
// path does (zero for records that have none).
func TestHashTimesWithMixedBatches(t *testing.T) {
	p := stages.NewPipeline("hash-times")
	fixtures["hash"](p)
	phys := buildPlan(t, p, 1, 8)
	v := phys.Vertices[0]
	op := core.New(v, instance(phys, v, 0), core.Config{BatchRecords: 4, BatchBytes: 1 << 20, MaxParallelism: 8})
	for _, b := range []*plan.Batch{
		{Data: []int64{1, 2}},
		{Data: []int64{3}, Times: []int64{300}},
	} {
		if err, pv := catch(func() error { return op.Step(core.Msg{Kind: core.Data, Batch: b}) }); err != nil || pv != nil {
			t.Fatalf("Step: %v %v", err, pv)
		}
	}
	if err, pv := catch(func() error { return op.Step(core.Msg{Kind: core.Tick}) }); err != nil || pv != nil {
		t.Fatalf("Tick: %v %v", err, pv)
	}
	var got []string
	for _, s := range op.Ready().Sends {
		got = append(got, renderSend(v, s))
	}
	want := []string{"edge 0 hash→v2 ch0: [1=1@0 2=2@0 3=3@300] (3 records, 48 bytes)"}
	if !slices.Equal(got, want) {
		t.Errorf("sends:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestEndOfInputCountsChannels: an operator ends when every input channel has
// ended, not after as many ends from any channels. A channel that ends
// twice (a redelivered marker) while another has not ended yet must not end
// the operator.
func TestEndOfInputCountsChannels(t *testing.T) {
	p := stages.NewPipeline("ends")
	fixtures["rebalance"](p)
	phys := buildPlan(t, p, 2, 8)
	v := phys.Vertices[1] // map → collect, fed by 2 source instances
	op := core.New(v, instance(phys, v, 0), restartCfg())
	for _, ev := range []core.Msg{
		{Kind: core.EndOfInput, Channel: 0},
		{Kind: core.EndOfInput, Channel: 0},
	} {
		if err := op.Step(ev); err != nil {
			t.Logf("duplicate end: %v", err)
		}
	}
	if op.Finished() {
		t.Fatal("finished though channel 1 has not ended")
	}
	if err := op.Step(core.Msg{Kind: core.Data, Channel: 1, Batch: &plan.Batch{Data: []int64{7}}}); err != nil {
		t.Fatalf("data from channel 1: %v", err)
	}
}

// TestAggregateSums checks the whole keyed path against a recompute: sums
// per key over several source instances, a shuffle and two aggregating
// instances.
func TestAggregateSums(t *testing.T) {
	for _, par := range []int{1, 2, 3} {
		p := stages.NewPipeline("sums")
		k := stages.KeyBy(source(p), func(x int64) int64 { return x % 7 })
		stages.Collect(stages.Aggregate(k, window.Global(), stages.Sum(ident)))
		phys := buildPlan(t, p, par, 8)
		c := newCluster(t, phys, restartCfg())
		data := seq(1000)
		feed(c, data, 33)
		if err := c.run(); err != nil {
			t.Fatal(err)
		}
		want := map[int64]int64{}
		for _, x := range data {
			want[x%7] += x
		}
		got := map[int64]int64{}
		for _, kvs := range sinkRecords[stages.KV[int64, int64]](c, phys.Vertices[len(phys.Vertices)-1]) {
			for _, kv := range kvs {
				if _, dup := got[kv.Key]; dup {
					t.Errorf("par %d: key %d emitted twice", par, kv.Key)
				}
				got[kv.Key] = kv.Value
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("par %d: sums %v, want %v", par, got, want)
		}
	}
}
