// Package transport is the cluster's data plane: one TCP connection per node
// pair carrying the channel messages of core (batches, end of input,
// watermarks, idleness, processing time, barriers and credit) between task
// instances on different nodes. Control (placement, checkpoints, job
// state) goes over protoactor remote; data does not (DESIGN.md: remote is
// protobuf-only and its writer queue has no bound). Batches between tasks of
// one node never come here: they pass by pointer.
//
// The package knows nothing of tasks. The executor dials a peer (Dial; by
// ShouldDial the node whose name sorts first dials, the other accepts on its
// Listener), sends each core.Out for a task on that node as an Envelope
// (Send), and is handed every arriving Envelope (Config.Deliver) to put
// into the receiving task's mailbox. The batches of Data messages are
// encoded with the codec of their edge (package codec, through the
// type-erased BatchCodec that CodecOf makes, found in Config.Codecs by
// EdgeKey).
//
// # Frame format (version 1)
//
// Every frame is a length prefix, 4 bytes little-endian, counting the bytes
// after it (1 to MaxFrame), then the body; the body's first byte is its
// type. Integers are varints as encoding/binary writes them, minimal (a
// non-minimal varint is corrupt): uvarints for counts and indices, zigzag
// varints for signed values.
//
// The connection opens with a hello each way, type 0x80: the bytes "SLDP",
// the format version (uvarint), the node's name and its build ID (each a
// uvarint length, then the bytes); at most 4096 bytes. A peer of another
// version or build is refused, naming both builds. A goodbye, type 0x81 and
// nothing else, says the sender closes cleanly.
//
// A message frame's type is the message's core.Kind (Data 1, EndOfInput 2,
// Watermark 3, Idle 4, Time 5, Barrier 6, Credit 7). Every message frame
// has the same fields, in this order, whatever its kind (a zero costs one
// byte, and a message crosses the wire exactly as it was made):
//
//	job, epoch                             uvarint: Envelope.Job, Envelope.Epoch
//	vertex, instance                       uvarint: Envelope.To
//	edge, input, channel                   uvarint: Msg.Edge, Msg.Input, Msg.Channel
//	records                                uvarint: Msg.Records
//	bytes, time                            varint:  Msg.Bytes, Msg.Time
//	backlog                                uvarint: Msg.Backlog
//	credits, batches, records, bytes       varint:  Msg.Grant
//	checkpoint                             uvarint: Msg.Checkpoint
//
// A Data frame goes on with its batch:
//
//	flags        1 byte: 1 a batch, 2 with event times, 4 with rows; 0 for none
//	port         uvarint: Batch.Port
//	times        if flag 2: a count (uvarint), then each time as 8 bytes LE
//	rows         if flag 4: the rest of the frame, codec.AppendBatch's bytes:
//	             0xC5, the codec version, the type's fingerprint (8 bytes),
//	             the row count, the rows
//
// With rows and times, the counts must agree. The receiver decodes the rows
// with its own codec of the edge: a fingerprint other than its type's is an
// error naming the type and both fingerprints (two builds that disagree on
// a record type). Nothing may follow the last field. DecodeFrame never
// panics on a malformed frame and never trusts a length: every count is
// checked against the bytes left before anything is allocated, and the
// reader grows a frame's buffer as its bytes arrive, not as its prefix
// says.
//
// # Delivery
//
// Messages arrive in the order they were sent on the connection, which
// keeps each channel between two instances FIFO, as in one process. There
// is no retransmission and no acknowledgement below the credit protocol: a
// connection that breaks (a write that makes no progress for WriteTimeout, a
// read error, a corrupt frame, a connection that ends without a goodbye)
// ends with an *Error naming the peer and its address, reported once (Done
// and Err; every later Send returns it), and what was in flight on it is
// lost. The executor treats that as the peer's failure: the job restores
// from its last checkpoint, as it does when membership reports the node
// dead (then Abort, rather than Close, tears the connection down at once).
// A Close on either side is not a failure: it drains what was queued, says
// goodbye, and the peer's Err wraps ErrPeerClosed.
//
// # Memory
//
// Credit bounds what is in flight: a sending task sends a batch only with
// the receiver's credit (backpressure.Ledger), and the receiver's grants
// travel back on the same connection as Credit messages, so the batches
// queued at the sender, in the sockets and in the receiver's mailbox never
// exceed the budgets of the channels that cross the connection. The
// transport adds no flow control of its own, but it never buffers without
// bound either: each connection's send queue holds at most QueueBytes of
// frames (or one frame, if a single frame is larger), and a Send that would
// exceed it waits for the writer; a writer that makes no progress for
// WriteTimeout fails the connection, so no Send waits for ever. Frames of up
// to 4 KiB are copied into shared 64 KiB chunks, so that small frames leave
// many to a write; larger ones are queued where they are (Send's own
// encoding buffer, SendFrame's frame) and written with writev, so a batch
// is copied once, by its encoding. The buffers that hold the queue are at
// most four times its bytes, plus one chunk. The reader holds one frame at
// a time. So a stalled receiver stalls its senders, within the credit they
// were given, and costs the sending node at most QueueBytes of queued
// frames per connection.
package transport
