package plan

import (
	"context"
	"errors"
	"fmt"
)

// Kind says what a node does.
type Kind int

const (
	// KindSource reads splits.
	KindSource Kind = iota
	// KindTransform is stateless: a function from a batch to a batch.
	KindTransform
	// KindStateful holds per-instance state (combiners, aggregations,
	// groupings) and emits it on Flush.
	KindStateful
	// KindSink writes records out under the sink lifecycle.
	KindSink
)

// EdgeKind says how records of one operator reach the instances of the next.
type EdgeKind int

const (
	// Forward sends instance i's records to instance i of the next operator.
	// Between operators of equal parallelism it lets them fuse.
	Forward EdgeKind = iota
	// Hash sends each record to the instance that owns its key group.
	Hash
	// Broadcast sends every record to every instance.
	Broadcast
	// Rebalance spreads batches round-robin over the instances.
	Rebalance
)

func (k EdgeKind) String() string {
	switch k {
	case Forward:
		return "forward"
	case Hash:
		return "hash"
	case Broadcast:
		return "broadcast"
	case Rebalance:
		return "rebalance"
	}
	return fmt.Sprintf("EdgeKind(%d)", int(k))
}

// Instance identifies one running instance of an operator to the functions
// that stages built.
type Instance struct {
	Job string
	// Run identifies this run of the job, unique across runs.
	Run string
	// Attempt counts the run's attempts: 1, then one more each time the
	// job recovers from a checkpoint. What instances share that must start
	// afresh on a recovery (a broadcast join's table) keys on it; what
	// lasts the whole run (a sink's transaction) does not.
	Attempt uint64
	// Resumed: the run goes on from a checkpoint an earlier process of it
	// took (a restore): sinks take back the output it had staged.
	Resumed bool
	// Restored is the checkpoint the instance was restored from (0: none),
	// as its sink's writer is reopened.
	Restored uint64
	// Unbounded: the job reads a source that does not end by itself (a
	// split is Unbounded), so it may never end: file sinks publish their
	// output at each completed checkpoint rather than at the end.
	Unbounded bool
	// Checkpointing: the job takes checkpoints, and recovers and restores
	// from them (a source acknowledges what it read only when a
	// checkpoint holding it completes: Acknowledger).
	Checkpointing bool
	Stage         string
	Index         int
	Parallelism   int
	// MaxParallelism is the job's number of key groups.
	MaxParallelism int
	// Seed is the job's seed: state that needs randomness (a hash table's
	// seed) derives it from Seed, so a run replayed with the same seed
	// behaves alike in every process.
	Seed uint64
	// LocalInstances is the number of the operator's instances in this
	// process.
	LocalInstances int
	// Inputs holds the kind of each of the vertex's input edges.
	Inputs []EdgeKind
	// Shared returns the value stored under key for this process and run,
	// building it with build on first use. All instances in one process share
	// it, so it must be safe for concurrent use: read-only once built (a
	// broadcast table) or guarding itself (a sink's commit state).
	Shared func(key string, build func() (any, error)) (any, error)
}

func (i Instance) String() string {
	return fmt.Sprintf("stage %q instance %d/%d", i.Stage, i.Index+1, i.Parallelism)
}

// Split is one independently readable part of a source.
type Split struct {
	Index int
	// Records is the number of records in the split, or -1 when unknown.
	Records int64
	// Bytes estimates the split's in-memory size, or -1 when unknown.
	Bytes int64
	// Desc names the split in errors ("orders.parquet row group 3").
	Desc string
	// Data is the source's own description of the split.
	Data any
	// Order, when set on any split of a source, sorts its splits before
	// they are dealt to instances. Sources set it to a split's least event
	// time, so that instances read side by side in time even when several
	// files each span the whole range.
	Order int64
	// Unbounded marks a split that does not end by itself (a broker's
	// partition). An instance reads its unbounded splits side by side, a
	// batch from each in turn, where it reads bounded splits one after
	// another.
	Unbounded bool
	// Acknowledges marks a split whose reader acknowledges what it read
	// to the system it reads from (Acknowledger). A restore opens it at
	// its position even when the checkpoint had read it to its end, so
	// that the reader tells that system where the checkpoint was.
	Acknowledges bool
}

// ErrConfig is wrapped by the error of a configuration that cannot work
// (stages.ErrConfig is the same): such a failure is not one a job recovers
// from by running again.
var ErrConfig = errors.New("invalid configuration")

// ErrNoData is returned by a Reader of an unbounded source that has no
// records right now: the runtime asks again after its linger, and marks the
// source idle when it stays quiet past its idle timeout.
var ErrNoData = errors.New("no data yet")

// Reader reads one split.
type Reader interface {
	// Read returns the next batch of at most max records, or io.EOF.
	Read(max int) (*Batch, error)
	Close() error
}

// ReadKind says what an EventReader read.
type ReadKind int

const (
	// ReadBatch: a batch of records.
	ReadBatch ReadKind = iota
	// ReadWatermark: the source's watermark moved to the returned time.
	ReadWatermark
	// ReadTime: processing time moved to the returned time (the reader
	// advanced the job's manual clock); downstream timers due by then
	// fire, in order with the data.
	ReadTime
)

// EventReader is a Reader that also reports event-time and processing-time
// progress in order with its records (a test stream).
type EventReader interface {
	Reader
	ReadEvent(max int) (b *Batch, wm int64, kind ReadKind, err error)
}

// Positioner is a Reader that can say where it is, for a checkpoint:
// Position returns, in the source's own encoding, where the next Read
// starts (after every record returned so far). It is called between reads.
type Positioner interface {
	Position() ([]byte, error)
}

// Acknowledger is a Positioner whose source is told which of its records
// the job has made durable, as Flink tells a source of a completed
// checkpoint: a broker's acknowledgements, given only when they can no
// longer be needed again. In a job that checkpoints (Instance.Checkpointing)
// the runtime calls PositionAt(id) at checkpoint id's barrier in place of
// Position, and Acknowledge(id) after checkpoint id has completed:
// everything read before that barrier is durable. Acknowledge(0) says
// everything read is: the job has ended and committed, or the split has
// ended and a checkpoint taken after its end has completed; the runtime
// keeps an ended split's reader open until then, and then closes it.
type Acknowledger interface {
	Positioner
	PositionAt(id uint64) ([]byte, error)
	Acknowledge(id uint64) error
}

// SourceSpec is a type-erased source.
type SourceSpec struct {
	// Discover lists the splits. The runtime calls it before planning.
	Discover func(ctx context.Context) ([]Split, error)
	// Open opens one split.
	Open func(ctx context.Context, inst Instance, s Split) (Reader, error)
	// OpenAt, if set, opens split s at pos, a position its Positioner
	// returned: recovery from a checkpoint. Without it (or without a
	// position) the runtime opens the split and skips the records the
	// checkpoint had read, which needs the source to read them again in the
	// same order.
	OpenAt func(ctx context.Context, inst Instance, s Split, pos []byte) (Reader, error)
	// ProcessingTime says the reader moves processing time itself (an
	// EventReader's ReadTime, a test stream): the timers of every vertex
	// downstream then fire on those events, in order with the data, and
	// never on the clock, which the reader may have moved past records
	// still on their way.
	ProcessingTime bool
}

// SinkCheckpointer is a SinkWriter whose output can be rolled back to a
// checkpoint. Checkpoint is called at a barrier, after every batch before
// it was written and before any after it: the writer makes what it has
// written durable (not visible) and returns a description of it; after
// Prepare it describes everything. SinkSpec.Reopen takes that description
// back when the job recovers, and the writer goes on from there, as if
// nothing written after the barrier had been.
type SinkCheckpointer interface {
	Checkpoint(id uint64) ([]byte, error)
	// Detach lets go of the writer when the job rolls back: it releases
	// what the writer holds open and leaves what it made durable for the
	// writer that Reopen makes (which discards what came after the
	// checkpoint it reopens at).
	Detach() error
}

// CheckpointPublisher is a SinkCheckpointer whose output becomes visible
// as checkpoints complete rather than at the end of the job (Flink's
// notifyCheckpointComplete): Completed(id) is called on the sink's task
// after checkpoint id has completed, and publishes what the writer had
// written before its barrier. It may not be called for every checkpoint
// (a task that has finished, a job that ends first): the next call, or
// Commit, publishes what is left. A checkpoint restored may describe
// output whose Completed never came: Reopen publishes it, idempotently.
type CheckpointPublisher interface {
	SinkCheckpointer
	Completed(id uint64) error
}

// SinkWriter is one instance's writer under the sink lifecycle.
type SinkWriter interface {
	Write(b *Batch) error
	// Prepare makes everything written durable but not yet visible.
	Prepare() error
	// Commit makes the prepared output visible. It is called on every
	// instance only after all instances have prepared.
	Commit() error
	// Abort discards everything written; it may follow Prepare.
	Abort() error
}

// Reverter is a SinkWriter whose Commit can be undone: when a later commit of
// the same job fails (another instance's, another sink's, or the job-level
// commit), Revert deletes what Commit published, so that a failed job
// leaves no output visible.
type Reverter interface {
	Revert() error
}

// SinkSpec is a type-erased sink.
type SinkSpec struct {
	Open func(ctx context.Context, inst Instance) (SinkWriter, error)
	// Reopen, if set, opens instance inst's writer at state, what its
	// SinkCheckpointer returned at the checkpoint the job recovers from
	// (the instance is the same; parallelism is the checkpoint's). A job
	// whose sink cannot reopen does not recover: it fails.
	Reopen func(ctx context.Context, inst Instance, state []byte) (SinkWriter, error)
	// CommitJob, if set, runs once after every instance has committed
	// (with instance 0's Instance): a job-level marker such as _SUCCESS.
	CommitJob func(ctx context.Context, inst Instance) error
	// FinishJob, if set, runs once when the job has ended, after every
	// commit, abort and revert (with instance 0's Instance; failed tells
	// whether the job failed): a sink releases what it held for the whole
	// job, such as its output's lease, and deletes what the new output
	// replaced.
	FinishJob func(ctx context.Context, inst Instance, failed bool) error
	// SuspendJob, if set, runs once instead of every commit and finish
	// when the job stops at a checkpoint to be restored later: a sink
	// releases what it held (its output's lease) and keeps what it staged.
	SuspendJob func(ctx context.Context, inst Instance)
}

// Waiter is an InputState that cannot take one of its inputs yet: the
// runtime leaves that input's batches queued upstream, where credit bounds
// them, until Waiting changes.
type Waiter interface {
	// Waiting returns the input not to be read now, or -1.
	Waiting() int
}

// State is one instance of a stateful node. Step must leave the state as it
// was when it panics before its first call of emit, or report the state lost
// through Lost, so that the runtime can retry the batch or fail the job.
type State interface {
	Step(in *Batch, emit func(*Batch))
	// Flush emits what the state holds; it is called at the end of input.
	Flush(emit func(*Batch))
	// Lost reports whether a panic left the state inconsistent.
	Lost() bool
}

// InputState is a State with several inputs, told apart (a join). It heads
// its vertex, so its inputs are the vertex's inputs.
type InputState interface {
	State
	// StepInput processes a batch from input i.
	StepInput(i int, in *Batch, emit func(*Batch))
	// EndInput says input i has ended; Flush follows once all have.
	EndInput(i int, emit func(*Batch))
	// Preferred returns the input the state wants read first while it has
	// data (a join's build side), or -1.
	Preferred() int
}

// TimeState is a State driven by event time and processing time: a
// windowed aggregation. Times are unix nanoseconds.
type TimeState interface {
	State
	// StepTime processes a batch that arrived at input watermark wm and
	// processing time pt.
	StepTime(in *Batch, wm, pt int64, emit func(*Batch))
	// Advance moves the input watermark to wm, firing what falls due, and
	// returns the output watermark: wm held back by the output times of
	// panes still to come.
	Advance(wm int64, emit func(*Batch)) int64
	// NextTimer returns the earliest processing time at which the state has
	// work, if any.
	NextTimer() (int64, bool)
	// Fire runs the processing-time timers due at pt.
	Fire(pt int64, emit func(*Batch))
	// Dropped returns the records dropped so far: too late (behind the
	// allowed lateness) and for windows whose trigger had finished.
	Dropped() (late, closed int64)
}

// Snapshotter is a State whose keyed state can be checkpointed by range of
// key groups [start, end) (of Instance.MaxParallelism) and restored at any
// parallelism. Snapshot is called between steps, at a barrier: it copies
// the state of the range synchronously and returns the function that
// encodes the copy, which may run later on another goroutine while the
// state goes on. Restore adds the keys of groups [start, end) (the
// instance's) of a chunk such a function wrote, before the first step; an
// instance restores the chunks that overlap its range, which at another
// parallelism than the checkpoint's hold other instances' groups too. A
// chunk starts with the schema fingerprints of the types it holds, and
// Restore refuses another schema with an error naming the type and both
// fingerprints. Snapshot fails only for a type that has no encoding.
type Snapshotter interface {
	Snapshot(start, end int) (encode func(dst []byte) []byte, err error)
	Restore(chunk []byte, start, end int) error
}

// BarrierFlusher is a State with no keyed state to checkpoint: at a barrier
// it passes what it holds on, before the barrier, to the keyed stage after
// it (a pre-combiner's partial accumulators), whose snapshot then holds it.
type BarrierFlusher interface {
	FlushBarrier(emit func(*Batch))
}

// WatermarkSpec is set on the node that assigns event times. Its watermark
// is the greatest event time it has seen minus MaxDelay (bounded
// out-of-orderness), emitted with each linger tick.
type WatermarkSpec struct {
	MaxDelay int64 // ns
	// New, if set, makes the watermark instead of MaxDelay: one generator
	// per instance (and per split, as the greatest time seen is), asked
	// after each batch.
	New func() WatermarkGenerator
	// Idle is how long a source instance may go without data before it is
	// marked idle, so that it does not hold back the watermark; 0 never.
	Idle int64 // ns
}

// WatermarkGenerator is a user's watermark strategy for one instance:
// OnBatch sees a batch (its records and their times, in order) and returns
// the watermark it has now, unix ns (math.MinInt64: none yet).
type WatermarkGenerator interface {
	OnBatch(b *Batch) int64
}

// KeySpec partitions a stream by key.
type KeySpec struct {
	// Partition appends each record of in to outs[route[g]], where g is the
	// record's key group (its key's hash modulo len(route)); outs[c].Data
	// holds a []T and outs[c].Times, when in has times, the record times.
	// Records whose key hash is in hot go to hot's channels instead,
	// round-robin by *salt (the sender's counter) unless replicated.
	Partition func(in *Batch, route []int32, outs []*Batch, hot *Hot, salt *uint64)
	// Hashes appends the key hash of each record of b to dst.
	Hashes func(b *Batch, dst []uint64) []uint64
	// Format renders record i's key, for the job summary.
	Format func(b *Batch, i int) string
}

// Hot routes the hot keys of one edge, found by sampling before the job:
// each hot key (by hash) is split over several channels.
type Hot struct {
	Channels map[uint64][]int32
	// Replicate sends a hot key's records to all its channels (a join's
	// build side); otherwise they go round-robin (the probe side).
	Replicate bool
}

// HotKey is a key found to be skewed.
type HotKey struct {
	Hash  uint64
	Key   string  // the key, formatted
	Share float64 // its share of the sampled records
	Ways  int     // instances it is split over
}

// SkewSpec configures a join's skew handling.
type SkewSpec struct {
	// Off disables sampling and splitting.
	Off bool
	// Factor and MinShare judge a partition skewed when its sampled share
	// exceeds max(MinShare, Factor × median share), as Spark's adaptive
	// execution does with sizes.
	Factor   float64
	MinShare float64
	// Declared are keys the user named hot, by hash, with their ways.
	Declared []HotKey
}

// JoinStrategy says how a join meets its inputs.
type JoinStrategy int

const (
	// JoinAuto broadcasts the build side when its estimated in-memory size
	// is under the threshold, and shuffles both sides otherwise.
	JoinAuto JoinStrategy = iota
	// JoinBroadcast sends the build side to every instance, which share one
	// hash table per process; the probe side is not shuffled.
	JoinBroadcast
	// JoinShuffle partitions both sides by key.
	JoinShuffle
)

func (s JoinStrategy) String() string {
	return [...]string{"auto", "broadcast", "shuffle"}[s]
}

// JoinSpec describes a join node: input 0 is the probe side, input 1 the
// build side; both are keyed (hash inputs).
type JoinSpec struct {
	Strategy JoinStrategy
	// Threshold is the most estimated bytes of build side that JoinAuto
	// broadcasts.
	Threshold int64
	// Broadcastable is false for joins that need every build row matched
	// in one place (full outer).
	Broadcastable bool
	// EntryBytes estimates the in-memory bytes of one build-side entry.
	EntryBytes int64
	// HoldProbe is set by the planner when the probe side is the join's
	// alone: it shares no stage with the build side and feeds nothing
	// else. The join then takes no probe data until its build side has
	// ended, so that the probe side waits upstream, bounded by credit,
	// instead of piling up in the join's memory. Other joins keep early
	// probe batches in memory: holding a probe side that also feeds the
	// build side, or another join, could deadlock.
	HoldProbe bool
	Skew      SkewSpec
}

// Input is one incoming edge of a node.
type Input struct {
	From *Node
	// Port is the output of From that is read: 0 its main output, p > 0
	// its side output p (From.Side[p-1]).
	Port int
	Edge EdgeKind
	Key  *KeySpec // for Hash
}

// Node is one stage of the logical graph.
type Node struct {
	ID   int
	Kind Kind
	// Op names the operation ("map", "filter", "aggregate", ...).
	Op string
	// Name is the user's name for the stage (defaults to Op).
	Name string
	// StableID keys the stage's state in checkpoints; empty for stateless ones.
	StableID string
	// Loc is the user's file:line that created the node.
	Loc string
	// Parallelism is the requested number of instances; 0 takes the default.
	Parallelism int
	Inputs      []Input
	Out         *Type
	// Records declares the number of records the node emits, for planning
	// (a join's broadcast decision); 0 leaves it to estimation.
	Records int64
	Join    *JoinSpec
	// Watermarks marks the node that assigns event times and generates
	// watermarks.
	Watermarks *WatermarkSpec

	// Side holds the record types of the node's side outputs (ports 1..).
	// Every side output must be read: records are never dropped silently.
	Side []*Type

	Source    *SourceSpec
	Transform func(in *Batch) *Batch
	// Tee is a transform with side outputs: side[p-1] holds port p's
	// records (nil when none). A node has Transform or Tee.
	Tee      func(in *Batch) (main *Batch, side []*Batch)
	NewState func(inst Instance) State
	Sink     *SinkSpec
}

func (n *Node) String() string {
	if n.Name == n.Op || n.Name == "" {
		return n.Op
	}
	return fmt.Sprintf("%s %q", n.Op, n.Name)
}

// Graph is the logical graph of a job.
type Graph struct {
	Name  string
	Nodes []*Node
}

// ErrInvalid is wrapped by every planning error.
var ErrInvalid = errors.New("plan: invalid graph")
