// Package nats reads and writes NATS JetStream streams.
//
// The stream must exist: the source and the sink create consumers and
// publish messages, never streams (create them with the nats CLI, your
// deployment tooling or jetstream.JetStream.CreateStream).
//
// # Reading
//
// Source reads a stream through a pull consumer that it creates, one split
// per partition: by default one split over the whole stream (or the subjects
// that Subjects names), or one split per subject filter that Partitions
// names, so that the filters can be read by parallel instances. Each message
// is decoded with encoding/json into a T unless Decode gives a function
// (which also sees the subject, headers, stream sequence and store time). A
// message that does not decode fails the job with a *MessageError naming the
// stream, subject and stream sequence.
//
// A source is unbounded (its splits have Records -1): when no message
// arrives within FetchWait (50 ms by default) Read returns stages.ErrNoData
// and the runtime asks again later. Two options bound it, for tests and for
// batch replays of a stream:
//
//   - UntilEmpty reads up to the stream's last sequence at the time the split
//     is opened, then returns io.EOF;
//   - StopAfter(n) returns io.EOF after n records of the split.
//
// An unbounded split never ends, and the runtime reads the splits of one
// source instance one after another: give an unbounded source at least as
// many instances (stages.Parallelism) as it has partitions, or the
// partitions past the first of each instance are never read.
//
// # Delivery
//
// Without Durable, each split reads through an ephemeral consumer with no
// acknowledgements, in stream order, from the start position (all of the
// stream, or StartSeq / StartTime). If the consumer disappears (the server
// restarted, the consumer went inactive) or a message is lost between the
// server and the reader, the reader creates a new consumer at the sequence
// after the last one it handed over, so the split sees every message once
// per open. A split that is opened again (the job restarted) starts again
// from the start position: downstream sees the records again.
//
// With Durable(name), each split reads through a durable consumer
// (name, or name-<i> for partition i) with explicit acknowledgements, whose
// position the server keeps across runs. A batch is acknowledged when the
// runtime asks for the next one (or when the reader is closed after the end
// of a bounded split): after the records were handed to the runtime, not
// after a sink made them durable. So:
//
//   - a reader that dies before acknowledging makes the server deliver the
//     batch again after AckWait (duplicates, at least once);
//   - a job that fails after a batch was acknowledged but before its sink
//     wrote the records does not see those records again from this
//     consumer; the stream still holds them, and a replay with StartSeq
//     reads them again.
//
// In a job that checkpoints, a durable consumer's messages are acknowledged
// when a checkpoint holding them completes (Flink commits a consumer's
// offsets the same way), or when the job ends and has committed, and the
// split's position in the stream is part of the checkpoint:
//
//   - recovery and restore make the consumer again (same name) to start
//     after the checkpoint's position, even for a split the checkpoint had
//     read to its end: the server's position becomes the checkpoint's, and
//     what a failed attempt had been delivered and not acknowledged is
//     not delivered again;
//   - a run started afresh (no restore) starts after the consumer's ack
//     floor, what completed checkpoints or an earlier run's end
//     acknowledged; a consumer left with messages delivered and not
//     acknowledged is made again at its ack floor, so that it delivers in
//     order at once;
//   - between checkpoints, messages stay delivered and unacknowledged: at
//     most MaxAckPending of them per consumer, after which the split waits
//     for the next checkpoint to complete, so MaxAckPending over the
//     checkpoint interval bounds a split's rate; a message the server
//     delivers again after AckWait is dropped (it was handed over).
//
// With a work-queue or interest stream, whose messages go when they are
// acknowledged, this keeps every message until a checkpoint holds it.
//
// # Writing
//
// Sink publishes each record (encoding/json unless Encode says otherwise) to
// a fixed subject or to the subject SubjectOf derives from the record, with
// asynchronous JetStream publishes whose acknowledgements the writer
// collects: Write fails on the first failed publish it sees, Prepare waits
// until every publish has been acknowledged. Commit and Abort only close the
// connection: JetStream has no transactions, so published messages are
// visible at once and stay if the job fails. With MsgID, each message
// carries a Nats-Msg-Id header and JetStream drops a message whose ID it has
// seen within the stream's duplicate window (Duplicates, two minutes by
// default): a replay of the same records inside that window does not
// duplicate them, one after it does.
//
// With ExactlyOnce, in a job that checkpoints, each record is published
// once across recoveries, stops and restores: a writer holds what it is
// given until the next checkpoint's barrier, which records it in the
// checkpoint (the records between two checkpoints are held in memory and
// written into the checkpoint's manifest); when the checkpoint completes,
// the writer publishes them with message IDs of the job, run, checkpoint,
// instance and place, and waits for the acknowledgements. A restore
// publishes the checkpoint's held messages again, since whether they were
// published before the failure is not known, and JetStream drops those it
// has seen. That holds within the stream's duplicate window, which the
// stream's creator sets (StreamConfig.Duplicates; two minutes by default):
// a restore later than the window after the checkpoint was taken (a
// savepoint restored the next day) may publish its last messages twice,
// and the writer logs a warning naming the checkpoint, the count and both
// durations. A graceful stop's checkpoint is not published by the stopped
// process but by the one that restores it, so stopping and restoring
// later duplicates nothing. What comes after the last checkpoint is
// published when the job commits; a crash during that commit may publish
// some of it twice when the job is run again from its last checkpoint.
package nats
