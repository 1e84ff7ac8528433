package stages

import (
	"time"

	"github.com/sluice-data/sluice/plan"
)

// option is what every option has: it sets its fields of stageOptions.
// The exported interfaces add an unexported method per kind of stage, which
// seals them: only this package's options implement them (see the package
// doc for which option applies where).
type option interface{ apply(*stageOptions) }

// SourceOption configures a source stage: Read, FromSlice, Sequence and
// TestStream.Read, and the sources of connectors.
type SourceOption interface {
	option
	sourceStage()
}

// MapOption configures a record-by-record stage: Map, Filter, FlatMap,
// FlatMapSide, TryMap and MapBatches.
type MapOption interface {
	option
	mapStage()
}

// EventTimeOption configures EventTime.
type EventTimeOption interface {
	option
	eventTimeStage()
}

// AggregateOption configures a keyed stateful stage: Aggregate, GroupByKey,
// WindowAggregate and WindowAggregateLate.
type AggregateOption interface {
	option
	aggregateStage()
}

// JoinOption configures Join and JoinFunc.
type JoinOption interface {
	option
	joinStage()
}

// SinkOption configures a sink stage: Write, ForEach and Collect, and the
// sinks of connectors.
type SinkOption interface {
	option
	sinkStage()
}

// StageOption is an option every stage takes: Name and Parallelism.
type StageOption interface {
	SourceOption
	MapOption
	EventTimeOption
	AggregateOption
	JoinOption
	SinkOption
}

// StatefulOption is an option of the stages that keep keyed state
// (aggregates, windows, joins): ID.
type StatefulOption interface {
	AggregateOption
	JoinOption
}

// RecordsOption is Records: an option of the stages whose output count the
// planner estimates and uses (a join's build side, a broadcast's size).
// EventTime passes its input on one for one and a sink emits nothing, so
// neither takes it.
type RecordsOption interface {
	SourceOption
	MapOption
	AggregateOption
	JoinOption
}

type stageOptions struct {
	name        string
	id          string
	parallelism int
	parSet      bool
	strategy    plan.JoinStrategy
	threshold   int64
	records     int64
	skewOff     bool
	skewFactor  float64
	skewShare   float64
	hotKeys     []any
	hotWays     int
	maxDelay    time.Duration
	idle        time.Duration
}

func applyOptions[O option](opts []O) stageOptions {
	var o stageOptions
	for _, opt := range opts {
		if any(opt) != nil {
			opt.apply(&o)
		}
	}
	return o
}

// Each option type below implements exactly the kinds its constructors
// document; TestOptionKinds holds them to it.

type stageOpt func(*stageOptions)

func (f stageOpt) apply(o *stageOptions) { f(o) }
func (stageOpt) sourceStage()            {}
func (stageOpt) mapStage()               {}
func (stageOpt) eventTimeStage()         {}
func (stageOpt) aggregateStage()         {}
func (stageOpt) joinStage()              {}
func (stageOpt) sinkStage()              {}

type statefulOpt func(*stageOptions)

func (f statefulOpt) apply(o *stageOptions) { f(o) }
func (statefulOpt) aggregateStage()         {}
func (statefulOpt) joinStage()              {}

type recordsOpt func(*stageOptions)

func (f recordsOpt) apply(o *stageOptions) { f(o) }
func (recordsOpt) sourceStage()            {}
func (recordsOpt) mapStage()               {}
func (recordsOpt) aggregateStage()         {}
func (recordsOpt) joinStage()              {}

type eventTimeOpt func(*stageOptions)

func (f eventTimeOpt) apply(o *stageOptions) { f(o) }
func (eventTimeOpt) eventTimeStage()         {}

type joinOpt func(*stageOptions)

func (f joinOpt) apply(o *stageOptions) { f(o) }
func (joinOpt) joinStage()              {}

// Name names a stage in plans, progress and errors. Every stage takes it.
func Name(name string) StageOption { return stageOpt(func(o *stageOptions) { o.name = name }) }

// Parallelism sets the number of instances of a stage. Every stage takes
// it; it must be at least 1 (a TestStream's must be 1).
func Parallelism(n int) StageOption {
	return stageOpt(func(o *stageOptions) { o.parallelism, o.parSet = n, true })
}

// ID gives a stateful stage (an aggregate, a window, a join) a stable
// identity: its state is keyed by it in checkpoints, so it must stay the
// same across versions of a job and be unique within one.
func ID(id string) StatefulOption { return statefulOpt(func(o *stageOptions) { o.id = id }) }

// Records declares how many records a stage emits, for planning: a source
// whose size is unknown, a filter known to keep few records, an aggregate
// over few keys (as a join's build side, it decides broadcasting).
func Records(n int64) RecordsOption { return recordsOpt(func(o *stageOptions) { o.records = n }) }

// MaxDelay sets how far out of order event times may arrive at EventTime:
// the watermark trails the greatest time seen by this much (Flink's bounded
// out-of-orderness).
func MaxDelay(d time.Duration) EventTimeOption {
	return eventTimeOpt(func(o *stageOptions) { o.maxDelay = d })
}

// IdleAfter marks a source instance idle, at EventTime, when it has had no
// data for d, so that a quiet partition does not hold back every window
// downstream. A record from it makes it active again (records behind the
// watermark by then are late).
func IdleAfter(d time.Duration) EventTimeOption {
	return eventTimeOpt(func(o *stageOptions) { o.idle = d })
}

// Strategy forces a join's strategy: plan.JoinBroadcast or plan.JoinShuffle.
func Strategy(s plan.JoinStrategy) JoinOption {
	return joinOpt(func(o *stageOptions) { o.strategy = s })
}

// BroadcastThreshold sets the estimated build-side size, in bytes, under
// which the planner broadcasts a join.
func BroadcastThreshold(bytes int64) JoinOption {
	return joinOpt(func(o *stageOptions) { o.threshold = bytes })
}

// NoSkew turns off a join's skew handling: no sampling, no splitting.
func NoSkew() JoinOption { return joinOpt(func(o *stageOptions) { o.skewOff = true }) }

// SkewFactor sets how a join judges skew from its sample: an instance is
// skewed when its share exceeds max(minShare, factor × the median share).
// The defaults are 2 and 0.05.
func SkewFactor(factor, minShare float64) JoinOption {
	return joinOpt(func(o *stageOptions) { o.skewFactor, o.skewShare = factor, minShare })
}

// HotKeys declares keys of a join's left side that are hot: each is split
// over ways instances, whatever the sample says. The keys must be of the
// join's key type (a key of another type is a graph error at the join).
func HotKeys(ways int, keys ...any) JoinOption {
	return joinOpt(func(o *stageOptions) { o.hotKeys, o.hotWays = append(o.hotKeys, keys...), ways })
}
