// Package jsonl reads and writes JSON lines: one JSON value per line,
// encoded and decoded with encoding/json.
//
// # Writing
//
// Write (or Sink) writes a stream into a directory, one file per sink
// instance, named part-NNNNN.jsonl after the instance index (zero padded to
// five digits). Output is committed atomically with the job:
//
//   - Open creates a staging file dir/.sluice-staging/<job>-NNNNN-<random>.jsonl.tmp;
//   - Write encodes each record as one line through a buffered writer;
//   - Prepare flushes, fsyncs and closes the staging file;
//   - Commit renames it to dir/part-NNNNN.jsonl and fsyncs dir;
//   - Abort (a failed or cancelled job) deletes it.
//
// The staging directory is removed once empty. A job that fails or is
// cancelled leaves no part file of its own: an earlier run's part files stay
// as they were. The random suffix keeps two runs of one job from writing
// into the same staging file.
//
// Overwrite semantics: the directory belongs to the sink. Committing
// replaces the part files of an earlier run: each instance's rename replaces
// the part file of its index, and instance 0 deletes every part-NNNNN.jsonl
// whose index is not below the job's parallelism, so that a run with fewer
// instances leaves no stale parts. Other files are left alone. Do not point
// two sinks at one directory.
//
// The runtime commits instance by instance once all have prepared; if a
// Commit fails part way (this sink's or another's), the instances committed
// before it revert: their part files are deleted. The part files of an
// earlier run that they had replaced are gone too.
//
// # Reading
//
// Read (or Source) reads the files that a path or glob names, one split per
// file. Blank lines are skipped, a byte-order mark at the start of a file is
// ignored, lines may end in \n or \r\n and may be of any length. Unknown
// object fields are ignored, as encoding/json does.
//
// A line that does not parse (bad JSON, two values, a value of the wrong
// type) is never dropped silently. Two policies:
//
//   - Read (Source with Fail) fails the job with a *LineError naming the
//     file and line: "jsonl: FILE:LINE: REASON".
//   - ReadOrDeadLetter decodes in a parse stage fused with a source of raw
//     lines (Lines) and sends each bad line to a dead-letter stream as a
//     stages.DeadLetter with Where "FILE:LINE", the line (up to MaxRecord
//     bytes) and the reason; the job summary counts them as the parse
//     stage's side output.
//
// Under either policy a file that cannot be read fails the job.
package jsonl
