// Package jsonl reads and writes JSON lines: one JSON value per line,
// encoded and decoded with encoding/json.
//
// # Writing
//
// Write (or Sink) writes a stream into a directory, one file per sink
// instance, named part-NNNNN-<run>.jsonl after the instance index and the
// run. Output is committed with the job through the protocol Parquet
// outputs use (see connectors/parquetio's documentation): the run takes the
// directory's lease (a second job writing it fails at once), each instance
// stages its file under dir/_sluice/staging/<run>/ and renames it into dir
// at Commit, and the job's commit switches the manifest dir/_SUCCESS to
// the run's files in one step; the previous run's files are deleted after
// that. A job that fails or is cancelled leaves the previous snapshot as it
// was; a run that dies is cleaned up after by the next one.
//
// A job that does not end by itself (a source of unbounded splits, as NATS
// without UntilEmpty) would show nothing that way, so there the sink
// publishes at each completed checkpoint instead (a job that takes none
// publishes at its end still), the first replacing the previous run's
// snapshot. At each checkpoint's
// barrier an instance closes the file it wrote since the last one, if it
// wrote a record, and starts another at its next record: its files are
// named part-NNNNN_SSSSSS-<run>.jsonl after the instance and a sequence
// number (a checkpoint a second makes a file a second per instance that
// writes). When the checkpoint completes, the files closed before its
// barrier move into dir and the manifest switches to list them, recording
// the checkpoint: readers of the manifest see each record once, checkpoint
// by checkpoint, while the job runs. A recovery or a restore publishes
// what the checkpoint restored had closed, at the next completion, and
// drops what was written after it; restoring a checkpoint older than the
// one the output holds is refused, since it would write records again.
// The end of the job, if it comes, publishes the rest.
//
// Overwrite semantics: each run replaces the snapshot. Files Sluice did
// not write are never deleted, and a directory that holds such files and
// no manifest is refused. Read (below) reads a directory by its manifest.
//
// # Reading
//
// Read (or Source) reads the files that a path or glob names, one split per
// file. Blank lines are skipped, a byte-order mark at the start of a file is
// ignored, lines may end in \n or \r\n and may be of any length. Unknown
// object fields are ignored, as encoding/json does.
//
// A line that does not parse (bad JSON, two values, a value of the wrong
// type) is never dropped silently. Nor is one that encoding/json would
// decode without an error into something other than what it holds:
//
//   - a line that is not valid UTF-8, or escapes a lone surrogate (\ud800
//     without a low surrogate after it), which encoding/json decodes into
//     U+FFFD: `field "user.name" is not valid UTF-8 (byte 0xff)` (see
//     ErrInvalidUTF8). The whole line is checked, fields that the record
//     type does not read included: JSON text is UTF-8 (RFC 8259), and a line
//     that is not is damaged. A lone surrogate is refused rather than kept
//     because a Go string cannot hold it and U+FFFD would replace it;
//   - a line that holds null, which would decode into a zero record, and,
//     for a record type read from objects (a struct, a map, an interface,
//     or a pointer to one, unless it has an UnmarshalJSON or UnmarshalText
//     method), a line that holds a number, an array, a string or a boolean:
//     "the line holds null, not an object" (see ErrNotRecord).
//
// The checks cost a pass over each line (utf8.Valid, and a search for
// backslashes); finding the field to name only runs for a bad line. Two
// policies:
//
//   - Read (Source with Fail) fails the job with a *LineError naming the
//     file and line: "jsonl: FILE:LINE: REASON".
//   - ReadOrDeadLetter decodes in a parse stage fused with a source of raw
//     lines (Lines) and sends each bad line to a dead-letter stream as a
//     stages.DeadLetter with Where "FILE:LINE", the line (up to MaxRecord
//     bytes, each byte that is not valid UTF-8 as the four characters \xNN,
//     so that a dead letter can be written to any sink) and the reason; the
//     job summary counts them as the parse stage's side output.
//
// Under either policy a file that cannot be read fails the job.
package jsonl
