// Package checkpoints stores a job's checkpoints: per stage and key-group
// range, the bytes of its state's snapshot (chunks), the sources'
// positions, and a manifest written last, so that a torn checkpoint is
// never restored.
//
// A Store is where they go: a local directory (with its own commit fence:
// fsync, and a hard link for the manifest's exclusive create), mem://, or
// an S3 bucket through gocloud.dev/blob. Faulty wraps any store with
// injected faults — failed, slow and torn writes, failed reads — in the
// shape of pebble's vfs/errorfs, for chaos tests and the deterministic
// executor.
//
// Recovery reads the newest checkpoint that is complete and valid (its
// manifest's CRC, every chunk's size and CRC) and says which newer ones it
// skipped and why; Retain keeps the newest N.
package checkpoints
