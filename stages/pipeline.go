// Package stages is Sluice's typed user API. A job is a function that builds
// a graph of stages on a *Pipeline; building runs nothing. The runtime plans
// the graph (package plan) and runs it (package actors, or sluice.Run).
//
//	p := stages.NewPipeline("double-sum")
//	nums := stages.FromSlice(p, []int64{1, 2, 3})
//	doubled := stages.Map(nums, func(x int64) int64 { return 2 * x })
//	sums := stages.Aggregate(stages.KeyBy(doubled, func(x int64) int64 { return x % 2 }),
//		window.Global(), stages.Sum(func(x int64) int64 { return x }))
//	out := stages.Collect(sums)
//
// Jobs that run on a cluster are registered at package init with Register,
// so that every process of one binary can rebuild the same graph by name.
//
// Mistakes made while building (a nil function, a parallelism below one,
// mixing pipelines, a duplicate stage ID) are collected with the file and
// line of the call that made them and reported by Pipeline.Err, and by Run.
//
// # Options
//
// Options are typed by the kind of stage they configure, as Beam Go's
// WindowIntoOption is: each kind of stage takes its own sealed interface,
// and each option implements the interfaces of the stages it applies to, so
// an option given to a stage it does not apply to does not compile:
//
//	stages.Map(s, f, stages.Name("parse"), stages.Parallelism(4)) // compiles
//	stages.Map(s, f, stages.MaxDelay(time.Second))                // does not
//
// The kinds, and the stage functions that take them:
//
//	SourceOption     Read, FromSlice, Sequence, TestStream.Read
//	MapOption        Map, Filter, FlatMap, FlatMapSide, TryMap, MapBatches
//	EventTimeOption  EventTime
//	AggregateOption  Aggregate, GroupByKey, WindowAggregate, WindowAggregateLate
//	JoinOption       Join, JoinFunc
//	SinkOption       Write, ForEach, Collect
//
// The options, and the kinds they apply to:
//
//	Name, Parallelism    every kind (StageOption)
//	ID                   Aggregate and Join: the stages that keep keyed state (StatefulOption)
//	Records              Source, Map, Aggregate and Join: the stages whose output
//	                     count the planner estimates (RecordsOption)
//	MaxDelay, IdleAfter  EventTime
//	Strategy, BroadcastThreshold, NoSkew, SkewFactor, HotKeys
//	                     Join
//
// KeyBy's option, HashWith, is a KeyOption, typed by the key. A mistake an
// option's type cannot show (a negative MaxDelay, a parallelism below one,
// a TestStream given a parallelism other than one, a hot key of another
// type than the join's) is a graph error at the user's line.
package stages

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/sluice-data/sluice/plan"
)

// Pipeline is a graph of stages under construction. It runs once: its
// sinks hold one run's results (a Collection gathers them), so running it
// again is an error; build a new one instead.
type Pipeline struct {
	g    plan.Graph
	errs []error
	ids  map[string]string // stable ID → location
	ran  atomic.Bool
}

// NewPipeline returns an empty pipeline for the named job.
func NewPipeline(name string) *Pipeline {
	return &Pipeline{g: plan.Graph{Name: name}, ids: map[string]string{}}
}

// Name returns the job's name.
func (p *Pipeline) Name() string { return p.g.Name }

// Graph returns the logical graph.
func (p *Pipeline) Graph() *plan.Graph { return &p.g }

// Err returns every graph-building mistake, each with its file and line, or
// nil.
func (p *Pipeline) Err() error { return errors.Join(p.errs...) }

// Errorf records a graph-building mistake found by a connector or a job
// (a bad configuration), with the user's file and line.
func (p *Pipeline) Errorf(format string, args ...any) {
	p.fail(caller(), format, args...)
}

// ErrRanAlready is wrapped by the error of a second run of a Pipeline.
var ErrRanAlready = errors.New("stages: a pipeline runs once")

// BeginRun marks the pipeline as run; the runtime calls it as a run starts.
// It returns an error naming the pipeline when it has been called before:
// a second run would add its records to the first's (in a Collection).
func (p *Pipeline) BeginRun() error {
	if p.ran.Swap(true) {
		return fmt.Errorf("%w: pipeline %q has run already; build a new Pipeline to run the job again", ErrRanAlready, p.g.Name)
	}
	return nil
}

// ErrConfig is for connectors to wrap in the error of a configuration that
// cannot work, when they find it only as the job starts (in Splits): the
// command line then exits with status 2, a usage error, rather than 1, a
// failed job. A connector's own sentinel can wrap it:
//
//	var ErrConfig = fmt.Errorf("myconn: %w", stages.ErrConfig)
var ErrConfig = plan.ErrConfig

// ErrBuild is wrapped by every graph-building mistake.
var ErrBuild = errors.New("stages: invalid pipeline")

func (p *Pipeline) fail(loc, format string, args ...any) {
	// Keep what the message wraps (%w), so errors.Is sees connector sentinels.
	p.errs = append(p.errs, fmt.Errorf("%w: %s: %w", ErrBuild, loc, fmt.Errorf(format, args...)))
}

// Stream is a stream of records of type T.
type Stream[T any] struct {
	p    *Pipeline
	node *plan.Node
	// edge is how the next stage receives the records: Forward unless
	// Broadcast or Rebalance said otherwise.
	edge plan.EdgeKind
	// port is the node's output that s is: 0 its main output, p > 0 a side
	// output.
	port int
}

// input is the plan input through which a stage consumes s.
func (s Stream[T]) input() plan.Input { return plan.Input{From: s.node, Port: s.port, Edge: s.edge} }

// Pipeline returns the pipeline that s belongs to.
func (s Stream[T]) Pipeline() *Pipeline { return s.p }

// Node returns the plan node that produces s.
func (s Stream[T]) Node() *plan.Node { return s.node }

// addNode appends a node built by a stage function with the options o the
// user gave it; loc is the user's call.
func (p *Pipeline) addNode(loc string, n *plan.Node, o stageOptions) *plan.Node {
	n.ID = len(p.g.Nodes) + 1
	n.Records = o.records
	n.Loc = loc
	n.Name = n.Op
	if o.name != "" {
		n.Name = o.name
	}
	if o.parSet && o.parallelism < 1 {
		p.fail(loc, "%s: parallelism %d must be at least 1", n, o.parallelism)
	}
	n.Parallelism = o.parallelism
	if o.id != "" {
		if prev, ok := p.ids[o.id]; ok {
			p.fail(loc, "%s: stage ID %q is already used at %s", n, o.id, prev)
		}
		p.ids[o.id] = loc
		n.StableID = o.id
	}
	p.g.Nodes = append(p.g.Nodes, n)
	return n
}

// caller returns the file:line of the first caller outside this package and
// the connectors, whose stage functions wrap ours: the user's line.
func caller() string {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		ours := strings.HasPrefix(f.Function, modulePath+"/stages.") || strings.HasPrefix(f.Function, modulePath+"/connectors/")
		if !ours || strings.HasSuffix(f.File, "_test.go") {
			return fmt.Sprintf("%s:%d", shortPath(f.File), f.Line)
		}
		if !more {
			return "unknown"
		}
	}
}

const modulePath = "github.com/sluice-data/sluice"

func shortPath(file string) string {
	parts := strings.Split(filepath.ToSlash(file), "/")
	if len(parts) > 2 {
		parts = parts[len(parts)-2:]
	}
	return strings.Join(parts, "/")
}

// check reports a nil function or a stream of another pipeline.
func check[T any](loc, op string, s Stream[T], fnNil bool) {
	if s.p == nil {
		panic(fmt.Sprintf("stages: %s: %s of a zero Stream", loc, op))
	}
	if fnNil {
		s.p.fail(loc, "%s: nil function", op)
	}
}
