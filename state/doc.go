// Package state holds keyed state: the aggregate table, a join's build and
// held probe sides, the end-of-window table of windowed aggregation
// (Windows), the trigger driver's per-key windows (Triggered) and a
// GroupByKey's lists (Lists).
// It is deterministic (STYLE.md): no clock, no OS, no global randomness, no
// unsafe, and no map iteration order reaches an output. The hash tables'
// seed is injected (derived from plan.Instance.Seed and the stage), so a
// run replayed with the same seed visits keys in the same order in every
// process.
//
// # Key groups
//
// Every key belongs to a key group, Groups.Of(k) = Hash(k) mod Max, where
// Hash is the key's routing hash (stages' KeyBy hash: fixed, independent of
// the seed and the same in every process) and Max is the job's maximum
// parallelism (plan.Instance.MaxParallelism). The shuffle routes group g to
// instance plan.Route(Max, n)[g], so an instance owns a contiguous range of
// groups and its state can be cut by Range and moved to any parallelism.
//
// # Snapshots
//
// A state's Snapshot(r) is taken synchronously and costs, per key: for the
// tables (Aggregate, Join, Windows) a copy of the table's slots (no
// encoding, no hashing, no allocation per key); for Lists a key and a
// slice header; for Triggered a window.KeyState.Clone (two allocations:
// the key's windows and their trigger states). The returned value is
// immutable and is encoded later, off the task's hot path, by its Append
// with the key and value Coders (codec.For's codecs). An encoded snapshot
// is one chunk: a magic, a format version, the state's kind and a CRC-32C
// (Castagnoli) of the body; the body starts with a codec header (the
// schema fingerprint) per type it holds, then the key-group range. A
// restore with a Coder of another fingerprint is refused with ErrMismatch
// wrapping a *codec.MismatchError, which names the type and both
// fingerprints. Entries are in a canonical order (by key group, then the
// key's seeded hash or, for Triggered, its encoding; Lists keep their
// arrival order), so the snapshot of a restored state equals the original's
// byte for byte, whichever table layout the keys had.
//
// A snapshot copies values shallowly: a value that shares memory (a slice,
// a map) must not be modified in place after Snapshot returns until it is
// encoded. The rule is Combiner's for accumulating windows: Merge returns a
// new value rather than changing its first argument's memory.
package state
