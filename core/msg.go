package core

import (
	"fmt"

	"github.com/sluice-data/sluice/backpressure"
	"github.com/sluice-data/sluice/plan"
)

// Kind tells messages apart.
type Kind uint8

// Kinds of message. The first group travels on a channel between two
// instances, in order: a batch needs credit; the control kinds behind it
// need none. Credit flows the other way. The second group is what an
// executor tells one instance about itself: that it may start, read, that
// time has passed.
const (
	// Data carries a batch on a channel (for a source's operator: a batch
	// its reader read).
	Data Kind = iota + 1
	// EndOfInput says a channel (or a source's reader) has ended.
	EndOfInput
	// Watermark carries the sender's watermark in Time.
	Watermark
	// Idle says the sender has no data for now: it no longer holds back the
	// watermark.
	Idle
	// Time says processing time has moved to Time, in band with the data
	// (a test stream's processing time): it fires timers down the graph.
	Time
	// Barrier is checkpoint Checkpoint's barrier: everything the sender
	// sent before it belongs to the checkpoint, nothing after it.
	Barrier
	// Credit returns credit (Grant) on channel Channel of output edge Edge.
	Credit

	// Start starts the instance: a sink opens, inputs announce credit, a
	// source begins to read.
	Start
	// Produce lets a source read its next batch.
	Produce
	// Retry says a source's backoff after a transient error has passed.
	Retry
	// Tick says the linger has passed: partly filled batches are sent.
	Tick
	// Timer says processing time has reached a timer of the operator.
	Timer
	// SplitCap, for a source's operator, says it opened a new split and
	// caps its generated watermarks at Time: the least event time
	// (Split.Order) of the splits it has yet to read.
	SplitCap
	// Trigger, for a source's task, starts checkpoint Checkpoint: the
	// source puts its barrier behind what it has read.
	Trigger
	// Completed, for a sink's task, says checkpoint Checkpoint has
	// completed: a writer that publishes at completed checkpoints
	// (plan.CheckpointPublisher) publishes what it wrote before it.
	Completed
)

var kindNames = [...]string{Data: "data", EndOfInput: "end", Watermark: "watermark", Idle: "idle", Time: "time",
	Barrier: "barrier", Credit: "credit", Start: "start", Produce: "produce", Retry: "retry", Tick: "tick", Timer: "timer", SplitCap: "splitcap", Trigger: "trigger",
	Completed: "completed"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// OnChannel reports whether messages of kind k travel on a channel between
// instances (and so, across nodes, on the wire).
func (k Kind) OnChannel() bool { return k >= Data && k <= Credit }

// OnWire reports whether messages of kind k may cross nodes: the channel
// kinds, and the two the job layer sends a task on another node (a
// source's Trigger, a sink's Completed).
func (k Kind) OnWire() bool { return k.OnChannel() || k == Trigger || k == Completed }

// Msg is the one message of the runtime: what Step takes, what Ready hands
// out, and what travels between instances.
//
// Addressing depends on the direction. In an operator's Ready, Edge and
// Channel name the output edge and the receiving instance. Delivered to the
// receiver, Input and Channel name its input and the sending instance. A
// Credit names the sender's edge and the receiving instance.
type Msg struct {
	Kind    Kind
	Edge    int
	Input   int
	Channel int
	Batch   *plan.Batch
	// Records and Bytes size a Data batch, for credit.
	Records int
	Bytes   int64
	// Time is the watermark of a Watermark, the processing time of a Time
	// or a Timer, the cap of a SplitCap, and for Data the processing time
	// (unix ns) its first record was emitted at.
	Time int64
	// Backlog is the sender's count of batches waiting for credit on the
	// channel, sent with Data (Flink's backlog, for floating credit).
	Backlog int
	Grant   backpressure.Grant
	// Checkpoint numbers the checkpoint of a Barrier or a Trigger.
	Checkpoint uint64
}

func (m Msg) String() string {
	switch m.Kind {
	case Data:
		return fmt.Sprintf("data in%d ch%d edge%d %d records t=%d", m.Input, m.Channel, m.Edge, m.Records, m.Time)
	case Credit:
		return fmt.Sprintf("credit edge%d ch%d %+v", m.Edge, m.Channel, m.Grant)
	case Barrier, Trigger:
		return fmt.Sprintf("%s in%d ch%d edge%d n=%d", m.Kind, m.Input, m.Channel, m.Edge, m.Checkpoint)
	case Watermark, Time, Timer, SplitCap:
		return fmt.Sprintf("%s in%d ch%d edge%d t=%d", m.Kind, m.Input, m.Channel, m.Edge, m.Time)
	}
	return fmt.Sprintf("%s in%d ch%d edge%d", m.Kind, m.Input, m.Channel, m.Edge)
}
