package core_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/backpressure"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
)

// The task scripts (testdata/task-*.txt) drive one core.Task as an
// executor does (actors/binding.go, actors/sim.go): each step is a Step at
// a processing time, then the Ready is printed and acknowledged with
// Advance. Sources read from scripted readers and sinks log their writes,
// so a script shows every call the task makes besides its messages.
// Commands:
//
//	new graph=NAME [par=1 maxpar=8 vertex=1 instance=0 credits=2 records=4 linger=100 poll=250 nohold=0 checkpointing=0]
//	read [source=src] split=N data 1 2 [eof] | nodata | eof ...
//	step start|produce|retry|tick|timer [at=T]
//	step credit edge=E channel=C credits=N [batches= records= bytes=] [at=T]
//	step data|end|watermark|idle [input=I channel=C t=T] [records...] [at=T]
//	step trigger|completed n=N
//	counters
//
// Times are unix ns; at= sets the processing time of this and later steps
// (it starts at 1000). Each step prints what the readers and the sink were
// called for, then the Ready: every message with its receiver, the timers,
// produce and done.
func TestTaskScripts(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "task-*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no task scripts in testdata")
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			env := &taskEnv{}
			runScript(t, path, env.run)
		})
	}
}

func isTaskScript(path string) bool {
	ok, _ := filepath.Match("task-*.txt", filepath.Base(path))
	return ok
}

// ---- fixtures ----

// scriptedSource is a source of n splits whose readers do what the script
// queued for them with the read command.
type scriptedSource struct {
	e         *taskEnv
	name      string
	splits    int
	unbounded bool // the splits are a broker's partitions
}

func (s scriptedSource) Splits(context.Context) ([]plan.Split, error) {
	out := make([]plan.Split, s.splits)
	for i := range out {
		out[i] = plan.Split{Index: i, Records: -1, Bytes: -1, Desc: fmt.Sprintf("%s split %d", s.name, i), Unbounded: s.unbounded}
	}
	return out, nil
}

func (s scriptedSource) Open(_ context.Context, _ plan.Instance, sp plan.Split) (stages.Reader[int64], error) {
	s.e.logf("open %s", sp.Desc)
	return &scriptedReader{e: s.e, key: readKey{s.name, sp.Index}, desc: sp.Desc}, nil
}

type readKey struct {
	source string
	split  int
}

// scriptedRead is one answer of a scripted reader: records, then EOF or
// not; no records and no EOF is ErrNoData.
type scriptedRead struct {
	recs []int64
	eof  bool
}

type scriptedReader struct {
	e    *taskEnv
	key  readKey
	desc string
}

func (r *scriptedReader) Read(buf []int64) (int, error) {
	q := r.e.reads[r.key]
	if len(q) == 0 {
		r.e.logf("read %s: nothing scripted", r.desc)
		return 0, fmt.Errorf("%s: nothing scripted", r.desc)
	}
	rd := q[0]
	n := copy(buf, rd.recs)
	if n < len(rd.recs) { // more than a batch: the rest is the next read
		q[0].recs = rd.recs[n:]
		rd = scriptedRead{recs: rd.recs[:n]}
	} else {
		r.e.reads[r.key] = q[1:]
	}
	var err error
	switch {
	case rd.eof:
		err = io.EOF
	case n == 0:
		err = stages.ErrNoData
	}
	what := formatBatch(&plan.Batch{Data: rd.recs})
	switch {
	case n == 0 && rd.eof:
		what = "eof"
	case n == 0:
		what = "no data"
	case rd.eof:
		what += " eof"
	}
	r.e.logf("read %s: %s", r.desc, what)
	return n, err
}

func (r *scriptedReader) Close() error {
	r.e.logf("close %s", r.desc)
	return nil
}

// ackingSource is a scriptedSource whose readers acknowledge what
// completed checkpoints hold (stages.Acknowledger), as a broker's consumer.
type ackingSource struct{ scriptedSource }

func (s ackingSource) Open(ctx context.Context, inst plan.Instance, sp plan.Split) (stages.Reader[int64], error) {
	r, err := s.scriptedSource.Open(ctx, inst, sp)
	return &ackingReader{r.(*scriptedReader)}, err
}

type ackingReader struct{ *scriptedReader }

func (r *ackingReader) Position() ([]byte, error) {
	r.e.logf("position %s", r.desc)
	return []byte("pos"), nil
}

func (r *ackingReader) PositionAt(id uint64) ([]byte, error) {
	r.e.logf("position %s at checkpoint %d", r.desc, id)
	return []byte("pos"), nil
}

func (r *ackingReader) Acknowledge(id uint64) error {
	r.e.logf("acknowledge %s: checkpoint %d", r.desc, id)
	return nil
}

// loggedSink logs each call of its writer.
type loggedSink[T any] struct{ e *taskEnv }

func (s loggedSink[T]) Open(_ context.Context, inst plan.Instance) (stages.Writer[T], error) {
	s.e.logf("sink open %s", inst)
	return loggedWriter[T](s), nil
}

type loggedWriter[T any] struct{ e *taskEnv }

func (w loggedWriter[T]) Write(xs []T) error {
	w.e.logf("sink write %s", formatBatch(&plan.Batch{Data: xs}))
	return nil
}
func (w loggedWriter[T]) Prepare() error { w.e.logf("sink prepare"); return nil }
func (w loggedWriter[T]) Commit() error  { return nil }
func (w loggedWriter[T]) Abort() error   { return nil }

// eventNs takes a record as its own event time, in ns.
func eventNs(x int64) time.Time { return time.Unix(0, x) }

// taskFixtures are the graphs the task scripts instantiate with
// `new graph=NAME`; the sources' parallelism is par, every other stage's 1.
var taskFixtures = map[string]func(e *taskEnv, p *stages.Pipeline){
	// Two splits with event times (idle after 1000 ns) → m → n → sink, by
	// rebalance edges: a source, a middle and a last vertex.
	"events": func(e *taskEnv, p *stages.Pipeline) {
		src := stages.Read[int64](p, scriptedSource{e, "src", 2, false}, stages.Name("src"))
		ev := stages.EventTime(src, eventNs, stages.IdleAfter(1000*time.Nanosecond))
		m := stages.Map(stages.Rebalance(ev), ident, stages.Name("m"), stages.Parallelism(1))
		n := stages.Map(stages.Rebalance(m), ident, stages.Name("n"), stages.Parallelism(1))
		stages.Write(n, loggedSink[int64]{e})
	},
	// Two unbounded splits (a broker's partitions) with event times → m →
	// sink.
	"partitions": func(e *taskEnv, p *stages.Pipeline) {
		src := stages.Read[int64](p, scriptedSource{e, "src", 2, true}, stages.Name("src"))
		ev := stages.EventTime(src, eventNs)
		stages.Write(stages.Map(stages.Rebalance(ev), ident, stages.Name("m"), stages.Parallelism(1)), loggedSink[int64]{e})
	},
	// Three splits, no event times → m ×2 → sink.
	"splits": func(e *taskEnv, p *stages.Pipeline) {
		src := stages.Read[int64](p, scriptedSource{e, "src", 3, false}, stages.Name("src"))
		m := stages.Map(stages.Rebalance(src), ident, stages.Name("m"), stages.Parallelism(2))
		stages.Write(m, loggedSink[int64]{e})
	},
	// Two splits whose readers acknowledge what checkpoints hold → sink.
	"acking": func(e *taskEnv, p *stages.Pipeline) {
		src := stages.Read[int64](p, ackingSource{scriptedSource{e, "src", 2, false}}, stages.Name("src"))
		stages.Write(stages.Map(stages.Rebalance(src), ident, stages.Name("m"), stages.Parallelism(1)), loggedSink[int64]{e})
	},
	// Sources a (2 splits) and b (1 split) into a union that sends on to m.
	"union": func(e *taskEnv, p *stages.Pipeline) {
		a := stages.Read[int64](p, scriptedSource{e, "a", 2, false}, stages.Name("a"))
		b := stages.Read[int64](p, scriptedSource{e, "b", 1, false}, stages.Name("b"), stages.Parallelism(1))
		u := stages.Union(a, b)
		stages.Write(stages.Map(stages.Rebalance(u), ident, stages.Name("m"), stages.Parallelism(1)), loggedSink[int64]{e})
	},
	// An inner join on x mod 10 of probe records (source "probe") with
	// build records (source "build"), writing probe=build pairs. The sides
	// come from different sources, so the planner lets the join hold its
	// probe input until the build side has ended (HoldProbe).
	"join": func(e *taskEnv, p *stages.Pipeline) {
		probe := stages.Read[int64](p, scriptedSource{e, "probe", 1, false}, stages.Name("probe"))
		build := stages.Read[int64](p, scriptedSource{e, "build", 1, false}, stages.Name("build"))
		joinMod10(e, probe, build)
	},
	// The same join with both sides from one source: holding the probe
	// side could deadlock (the source waits on credit the probe side does
	// not return, and the build side never ends), so the join takes it.
	"selfjoin": func(e *taskEnv, p *stages.Pipeline) {
		src := stages.Read[int64](p, scriptedSource{e, "src", 1, false}, stages.Name("src"))
		joinMod10(e, src, stages.Filter(src, func(x int64) bool { return x < 10 }, stages.Name("small")))
	},
}

func joinMod10(e *taskEnv, probe, build stages.Stream[int64]) {
	mod10 := func(x int64) int64 { return x % 10 }
	j := stages.JoinFunc(stages.KeyBy(probe, mod10), stages.KeyBy(build, mod10), stages.Inner,
		func(_ int64, l, r int64, _, _ bool) stages.KV[int64, int64] {
			return stages.KV[int64, int64]{Key: l, Value: r}
		},
		stages.Parallelism(1))
	stages.Write(j, loggedSink[stages.KV[int64, int64]]{e})
}

// ---- the environment ----

// taskEnv holds one script's task and what its connectors were asked.
type taskEnv struct {
	phys  *plan.Physical
	v     *plan.Vertex
	task  *core.Task
	now   int64
	reads map[readKey][]scriptedRead
	log   []string
}

func (e *taskEnv) logf(format string, args ...any) {
	e.log = append(e.log, fmt.Sprintf(format, args...))
}

func (e *taskEnv) run(line string) string {
	words := strings.Fields(line)
	kv, rest := args(words[1:])
	var out string
	var err error
	switch words[0] {
	case "new":
		out, err = e.new(kv)
	case "read":
		out, err = e.read(kv, rest)
	case "step":
		out, err = e.step(kv, rest)
	case "counters":
		if e.task == nil {
			return "script error: no task: use new first"
		}
		out = fmt.Sprintf("blocked %v, peak %d records in flight, %d ledger checks, %d retries",
			e.task.Blocked, e.task.Peak, e.task.Checks, e.task.Retries)
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

// new plans a fixture and makes the task of one instance of one vertex.
func (e *taskEnv) new(kv map[string]string) (string, error) {
	name := kv["graph"]
	delete(kv, "graph")
	mk, ok := taskFixtures[name]
	if !ok {
		return "", fmt.Errorf("no fixture %q", name)
	}
	var errs [10]error
	var par, maxPar, vid, inst, credits, recs, linger, poll, nohold, checkpointing int
	par, errs[0] = intArg(kv, "par", 1)
	maxPar, errs[1] = intArg(kv, "maxpar", 8)
	vid, errs[2] = intArg(kv, "vertex", 1)
	inst, errs[3] = intArg(kv, "instance", 0)
	credits, errs[4] = intArg(kv, "credits", 2)
	recs, errs[5] = intArg(kv, "records", 4)
	linger, errs[6] = intArg(kv, "linger", 100)
	poll, errs[7] = intArg(kv, "poll", 250)
	nohold, errs[8] = intArg(kv, "nohold", 0)
	checkpointing, errs[9] = intArg(kv, "checkpointing", 0)
	if err := errors.Join(errs[:]...); err != nil {
		return "", err
	}
	*e = taskEnv{now: 1000, reads: map[readKey][]scriptedRead{}}
	p := stages.NewPipeline(name)
	mk(e, p)
	phys, err := planOf(p, par, maxPar)
	if err != nil {
		return "", err
	}
	if vid < 1 || vid > len(phys.Vertices) {
		return "", fmt.Errorf("no vertex %d", vid)
	}
	e.phys, e.v = phys, phys.Vertices[vid-1]
	if inst < 0 || inst >= e.v.Parallelism {
		return "", fmt.Errorf("no instance %d of v%d", inst, vid)
	}
	const batchBytes = 1 << 20
	pi := instance(phys, e.v, inst)
	pi.Checkpointing = checkpointing != 0
	e.task = core.NewTask(phys, vid-1, pi,
		core.Config{BatchRecords: recs, BatchBytes: batchBytes, MaxParallelism: maxPar},
		core.TaskConfig{
			Ctx:          context.Background(),
			Budget:       backpressure.Budget{Credits: credits, BatchRecords: recs, Bytes: int64(credits) * batchBytes},
			Linger:       time.Duration(linger),
			Poll:         time.Duration(poll),
			RetryBackoff: func(int) time.Duration { return 0 },
			NoHold:       nohold != 0,
			Logger:       slog.New(slog.DiscardHandler),
		})
	var sb strings.Builder
	sb.WriteString(phys.String())
	fmt.Fprintf(&sb, "task v%d/%d: %s; %d credits a channel, %d records a batch, linger %d, poll %d",
		e.v.ID, inst, e.v.Name(), credits, recs, linger, poll)
	if e.v.Head().Kind == plan.KindSource {
		var descs []string
		for i := range e.v.SplitsOf(inst) {
			descs = append(descs, e.task.SplitDesc(i))
		}
		fmt.Fprintf(&sb, "\n  reads: %s", strings.Join(descs, ", "))
	}
	for i, in := range e.v.In {
		fmt.Fprintf(&sb, "\n  input %d: %s from v%d ×%d (%s)", i, in.Kind, in.From.ID, in.From.Parallelism, in.Type.Name)
	}
	for i, o := range e.v.Out {
		fmt.Fprintf(&sb, "\n  edge %d: %s to v%d ×%d (%s, %d bytes a record)", i, o.Kind, o.To.ID, o.To.Parallelism, o.Type.Name, o.Type.Size)
	}
	return sb.String(), nil
}

// read queues answers for a split's reader: `data 1 2` (records), `data 1
// 2 eof` (records and the end), `eof`, `nodata`.
func (e *taskEnv) read(kv map[string]string, rest []string) (string, error) {
	if e.task == nil {
		return "", errors.New("no task: use new first")
	}
	src := kv["source"]
	delete(kv, "source")
	if src == "" {
		src = "src"
	}
	split, err := intArg(kv, "split", 0)
	if err != nil {
		return "", err
	}
	key := readKey{src, split}
	q := e.reads[key]
	open := false // the last answer is data that an eof may end
	for _, w := range rest {
		switch w {
		case "data":
			q, open = append(q, scriptedRead{recs: []int64{}}), true
		case "nodata":
			q, open = append(q, scriptedRead{}), false
		case "eof":
			if open {
				q[len(q)-1].eof = true
			} else {
				q = append(q, scriptedRead{eof: true})
			}
			open = false
		default:
			x, err := strconv.ParseInt(w, 10, 64)
			if err != nil || !open {
				return "", fmt.Errorf("read: %q is not a record after data", w)
			}
			q[len(q)-1].recs = append(q[len(q)-1].recs, x)
		}
	}
	for _, rd := range q {
		if rd.recs != nil && len(rd.recs) == 0 {
			return "", errors.New("read: data without records")
		}
	}
	e.reads[key] = q
	return "ok", nil
}

var stepKinds = map[string]core.Kind{
	"start": core.Start, "produce": core.Produce, "retry": core.Retry, "tick": core.Tick, "timer": core.Timer,
	"credit": core.Credit, "data": core.Data, "end": core.EndOfInput, "watermark": core.Watermark, "idle": core.Idle,
	"barrier": core.Barrier, "trigger": core.Trigger, "completed": core.Completed,
}

func (e *taskEnv) step(kv map[string]string, rest []string) (string, error) {
	if e.task == nil {
		return "", errors.New("no task: use new first")
	}
	if len(rest) == 0 {
		return "", errors.New("step KIND")
	}
	kind, ok := stepKinds[rest[0]]
	if !ok {
		return "", fmt.Errorf("step %q", rest[0])
	}
	var errs [10]error
	var at, input, channel, edge, tm, credits, batches, records, bytes, n int
	at, errs[0] = intArg(kv, "at", int(e.now))
	input, errs[1] = intArg(kv, "input", 0)
	channel, errs[2] = intArg(kv, "channel", 0)
	edge, errs[3] = intArg(kv, "edge", 0)
	tm, errs[4] = intArg(kv, "t", 0)
	credits, errs[5] = intArg(kv, "credits", 0)
	batches, errs[6] = intArg(kv, "batches", 0)
	records, errs[7] = intArg(kv, "records", 0)
	bytes, errs[8] = intArg(kv, "bytes", 0)
	n, errs[9] = intArg(kv, "n", 0)
	if err := errors.Join(errs[:]...); err != nil {
		return "", err
	}
	e.now = int64(at)
	m := core.Msg{Kind: kind, Input: input, Channel: channel, Edge: edge, Time: int64(tm), Checkpoint: uint64(n)}
	switch kind {
	case core.Credit:
		m.Grant = backpressure.Grant{Credits: credits, Batches: int64(batches), Records: int64(records), Bytes: int64(bytes)}
	case core.Data:
		if input < 0 || input >= len(e.v.In) {
			return "", fmt.Errorf("no input %d", input)
		}
		typ := e.v.In[input].Type
		b, err := parseBatch(typ, rest[1:])
		if err != nil {
			return "", err
		}
		// Sized as the sender sizes it, for the receiver's credit.
		m.Batch, m.Records = b, typ.Count(b)
		m.Bytes = int64(m.Records) * int64(typ.Size)
	}
	if len(rest) > 1 && kind != core.Data {
		return "", fmt.Errorf("step %s takes no records", rest[0])
	}
	e.log = e.log[:0]
	err, pv := catch(func() error { return e.task.Step(e.now, m) })
	lines := append([]string(nil), e.log...)
	switch {
	case pv != nil:
		lines = append(lines, fmt.Sprintf("panic: %v", pv))
	case err != nil:
		lines = append(lines, "error: "+err.Error())
	}
	lines = append(lines, e.ready()...)
	if len(lines) == 0 {
		return "(nothing)", nil
	}
	return strings.Join(lines, "\n"), nil
}

// ready renders the task's Ready and acknowledges it, as an executor ships
// it.
func (e *taskEnv) ready() []string {
	rd := e.task.Ready()
	var lines []string
	for _, o := range rd.Msgs {
		line := fmt.Sprintf("to v%d/%d: %s", e.phys.Vertices[o.To.Vertex].ID, o.To.Instance, o.Msg)
		if o.Msg.Kind == core.Data {
			line += fmt.Sprintf(" %s backlog %d", formatBatch(o.Msg.Batch), o.Msg.Backlog)
		}
		lines = append(lines, line)
	}
	for _, r := range rd.Timers {
		lines = append(lines, fmt.Sprintf("timer %s at=%d (delivers %s)", timerNames[r.Kind], r.At, r.Kind.Message()))
	}
	if rd.Produce {
		lines = append(lines, "produce")
	}
	if rd.Done {
		lines = append(lines, "done")
	}
	for _, n := range rd.Checkpoints {
		lines = append(lines, fmt.Sprintf("checkpoint %d passed", n))
	}
	if e.task.HasReady() != (len(lines) > 0) {
		lines = append(lines, fmt.Sprintf("HasReady %v DISAGREES with Ready", e.task.HasReady()))
	}
	e.task.Advance()
	return lines
}

var timerNames = [core.NumTimers]string{
	core.TimerLinger: "linger", core.TimerPoll: "poll", core.TimerEvent: "event", core.TimerRetry: "retry",
}
