package checkpoints

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Version is the version of the manifest format this package writes.
const Version = 1

// The layout of a store:
//
//	chk-00000000000000000007/MANIFEST          written last: the checkpoint is complete
//	chk-00000000000000000007/STAGE/FIRST-LAST  a chunk: STAGE's key groups FIRST..LAST
//
// IDs are zero-padded so that keys sort by ID. A checkpoint is complete if
// and only if its manifest is present and valid: its own CRC and every
// chunk's size and CRC as the manifest records them. A writer that could
// not tell whether its manifest landed (the write failed after the store
// took it) must treat the checkpoint as possibly complete: restoring it is
// consistent, since sinks commit a checkpoint's output again on restore.
const (
	dirPrefix    = "chk-"
	manifestName = "MANIFEST"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Manifest describes one complete checkpoint.
type Manifest struct {
	Version int    `json:"version"`
	Job     string `json:"job"`
	// Run is the run of the job that took it (its ID names the run's
	// output files), Execution the process's execution of it: a job
	// recovers only from its own execution's checkpoints.
	Run       string `json:"run,omitempty"`
	Execution string `json:"execution,omitempty"`
	// ID numbers the job's checkpoints, increasing.
	ID uint64 `json:"id"`
	// Epoch is the attempt of the job that took it: a writer of an older
	// epoch is fenced.
	Epoch uint64 `json:"epoch"`
	// Time is when the checkpoint was triggered, in unix ms on the job's
	// clock.
	Time int64 `json:"time_unix_ms"`
	// Savepoint names a checkpoint taken on request (Execution.Savepoint,
	// sluice savepoint take): Retain keeps it until it is deleted.
	Savepoint string `json:"savepoint,omitempty"`
	// MaxParallelism is the job's number of key groups, and Parallelism
	// the instances of each vertex, by the stage ID of its head: a
	// restore checks the plan against them.
	MaxParallelism int            `json:"max_parallelism,omitempty"`
	Parallelism    map[string]int `json:"parallelism,omitempty"`
	// Graph fingerprints the plan's stages and how they connect, to tell
	// whether a checkpoint was taken of the same graph.
	Graph string `json:"graph,omitempty"`
	// States are the small pieces of state that belong to an instance,
	// not to key groups: where a source was, an operator's watermarks,
	// what a sink had written. They are held in the manifest itself.
	States []State `json:"states,omitempty"`
	Chunks []Chunk `json:"chunks,omitempty"`
}

// Size returns the bytes of the checkpoint's state: its chunks and the
// pieces in the manifest.
func (m *Manifest) Size() int64 {
	var n int64
	for _, c := range m.Chunks {
		n += c.Size
	}
	for _, s := range m.States {
		n += int64(len(s.Data))
	}
	return n
}

// State is one instance's piece of state of one kind ("source", "time",
// "sink"), in its owner's encoding.
type State struct {
	Kind     string `json:"kind"`
	Stage    string `json:"stage"`
	Instance int    `json:"instance"`
	Data     []byte `json:"data"`
}

// Chunk is one piece of a stage's state: the snapshot of key groups First
// to Last (inclusive).
type Chunk struct {
	Stage string `json:"stage"`
	First int    `json:"first"`
	Last  int    `json:"last"`
	// Instance is the instance that wrote it, where several instances
	// hold state of the same key groups (ChunkOf); else nil.
	Instance *int   `json:"instance,omitempty"`
	Key      string `json:"key"`
	Size     int64  `json:"size"`
	CRC      uint32 `json:"crc32c"`
	// Fingerprints are the codec's schema fingerprints of the chunk's key
	// and value types, so that a restore into other types is refused.
	Fingerprints []string `json:"fingerprints,omitempty"`
}

// Dir is a job's checkpoints in a store.
type Dir struct{ store Store }

// New returns the checkpoints in store.
func New(store Store) *Dir { return &Dir{store: store} }

// Store returns the store.
func (d *Dir) Store() Store { return d.store }

func dirOf(id uint64) string { return fmt.Sprintf("%s%020d/", dirPrefix, id) }

// Writer writes one checkpoint: chunks and source positions in any order
// and from any goroutine, then Commit.
type Writer struct {
	d  *Dir
	mu sync.Mutex
	m  Manifest
}

// Begin starts checkpoint id of execution exec of run of job, taken by
// attempt epoch at time (unix ms on the job's clock).
func (d *Dir) Begin(job, run, exec string, id, epoch uint64, time int64) *Writer {
	return &Writer{d: d, m: Manifest{Version: Version, Job: job, Run: run, Execution: exec, ID: id, Epoch: epoch, Time: time}}
}

// Chunk writes the state of stage's key groups first..last.
func (w *Writer) Chunk(ctx context.Context, stage string, first, last int, fingerprints []string, data []byte) error {
	return w.chunk(ctx, stage, first, last, nil, fingerprints, data)
}

// ChunkOf writes instance's state of stage's key groups first..last, where
// other instances hold state of the same key groups (a broadcast join's
// probe records, which are not routed by key).
func (w *Writer) ChunkOf(ctx context.Context, stage string, instance, first, last int, fingerprints []string, data []byte) error {
	return w.chunk(ctx, stage, first, last, &instance, fingerprints, data)
}

func (w *Writer) chunk(ctx context.Context, stage string, first, last int, instance *int, fingerprints []string, data []byte) error {
	if first < 0 || last < first {
		return fmt.Errorf("checkpoints: chunk of %s: key groups %d..%d are not a range", stage, first, last)
	}
	key := fmt.Sprintf("%s%s/%d-%d", dirOf(w.m.ID), url.PathEscape(stage), first, last)
	if instance != nil {
		key += fmt.Sprintf("@%d", *instance)
	}
	if err := w.d.store.Put(ctx, key, data, false); err != nil {
		return fmt.Errorf("checkpoint %d: writing %s's key groups %d..%d to %s: %w", w.m.ID, stage, first, last, w.d.store, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.m.Chunks = append(w.m.Chunks, Chunk{Stage: stage, First: first, Last: last, Instance: instance, Key: key, Size: int64(len(data)),
		CRC: crc32.Checksum(data, castagnoli), Fingerprints: fingerprints})
	return nil
}

// Shape records the plan's number of key groups and each vertex's
// parallelism, by the stage ID of its head.
func (w *Writer) Shape(maxParallelism int, parallelism map[string]int, graph string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.m.MaxParallelism, w.m.Parallelism, w.m.Graph = maxParallelism, parallelism, graph
}

// State records a piece of an instance's state of a kind ("source": its
// position). A second of the same kind, stage and instance replaces the
// first.
func (w *Writer) State(kind, stage string, instance int, data []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := State{Kind: kind, Stage: stage, Instance: instance, Data: slices.Clone(data)}
	for i, o := range w.m.States {
		if o.Kind == kind && o.Stage == stage && o.Instance == instance {
			w.m.States[i] = st
			return
		}
	}
	w.m.States = append(w.m.States, st)
}

// Commit writes the manifest, exclusively: the checkpoint is complete once
// it returns nil. If another writer committed the same ID, it fails with
// ErrExist.
func (w *Writer) Commit(ctx context.Context) (*Manifest, error) {
	w.mu.Lock()
	m := w.m
	m.Chunks = slices.Clone(w.m.Chunks)
	m.States = slices.Clone(w.m.States)
	w.mu.Unlock()
	// Deterministic bytes, whatever order the uploaders finished in.
	slices.SortFunc(m.Chunks, func(a, b Chunk) int {
		return cmpOr(strings.Compare(a.Stage, b.Stage), cmpOr(a.First-b.First, strings.Compare(a.Key, b.Key)))
	})
	slices.SortFunc(m.States, func(a, b State) int {
		return cmpOr(cmpOr(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Stage, b.Stage)), a.Instance-b.Instance)
	})
	data, err := encodeManifest(&m)
	if err != nil {
		return nil, err
	}
	if err := w.d.store.Put(ctx, dirOf(m.ID)+manifestName, data, true); err != nil {
		return nil, fmt.Errorf("checkpoint %d: writing its manifest to %s: %w", m.ID, w.d.store, err)
	}
	return &m, nil
}

// Abandon deletes the chunks written: the checkpoint will not complete.
func (w *Writer) Abandon(ctx context.Context) error {
	return w.d.deleteAll(ctx, w.m.ID)
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// encodeManifest writes m as JSON followed by a line with the CRC-32C of
// the JSON.
func encodeManifest(m *Manifest) ([]byte, error) {
	j, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	j = append(j, '\n')
	return fmt.Appendf(j, "crc32c %08x\n", crc32.Checksum(j, castagnoli)), nil
}

func decodeManifest(data []byte) (*Manifest, error) {
	i := bytes.LastIndex(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if i < 0 {
		return nil, errors.New("no checksum line: the manifest is torn")
	}
	j, trailer := data[:i+1], strings.TrimSpace(string(data[i+1:]))
	sum, ok := strings.CutPrefix(trailer, "crc32c ")
	want, err := strconv.ParseUint(sum, 16, 32)
	if !ok || err != nil {
		return nil, fmt.Errorf("no checksum line (%q): the manifest is torn", trailer)
	}
	if got := crc32.Checksum(j, castagnoli); got != uint32(want) {
		return nil, fmt.Errorf("its CRC-32C is %08x, its checksum line says %08x: the manifest is torn or corrupt", got, want)
	}
	var m Manifest
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, fmt.Errorf("decoding it: %w", err)
	}
	if m.Version != Version {
		return nil, fmt.Errorf("format version %d; this build reads version %d", m.Version, Version)
	}
	return &m, nil
}

// Skipped is a checkpoint that recovery passed over, and why.
type Skipped struct {
	ID     uint64
	Reason string
}

func (s Skipped) String() string { return fmt.Sprintf("checkpoint %d: %s", s.ID, s.Reason) }

// Restored is a complete checkpoint read back, its chunks verified.
type Restored struct {
	*Manifest
	data map[string][]byte
}

// Data returns the bytes of chunk c.
func (r *Restored) Data(c Chunk) []byte { return r.data[c.Key] }

// Latest reads the newest complete, valid checkpoint, and says which newer
// ones it skipped and why (no manifest: torn; a manifest or a chunk that
// does not check out). It returns nil and no error when there is none.
func (d *Dir) Latest(ctx context.Context) (*Restored, []Skipped, error) {
	return d.latest(ctx, func(*Manifest) string { return "" })
}

// LatestOf is Latest among the checkpoints of the executions execs: a
// job that recovers does so from its own (and the one it was restored
// from), never from another run's left in the same store (restoring
// another's is a choice of the user's).
func (d *Dir) LatestOf(ctx context.Context, execs ...string) (*Restored, []Skipped, error) {
	return d.latest(ctx, func(m *Manifest) string {
		if !slices.Contains(execs, m.Execution) {
			return fmt.Sprintf("it is of job %q run %q, execution %q: not this one", m.Job, m.Run, m.Execution)
		}
		return ""
	})
}

// LatestOfJob is Latest among the checkpoints of job, of any run.
func (d *Dir) LatestOfJob(ctx context.Context, job string) (*Restored, []Skipped, error) {
	return d.latest(ctx, func(m *Manifest) string {
		if m.Job != job {
			return fmt.Sprintf("it is of job %q, not %q", m.Job, job)
		}
		return ""
	})
}

func (d *Dir) latest(ctx context.Context, foreign func(*Manifest) string) (*Restored, []Skipped, error) {
	ids, keys, err := d.ids(ctx)
	if err != nil {
		return nil, nil, err
	}
	var skipped []Skipped
	for _, id := range slices.Backward(ids) {
		if !hasManifest(id, keys[id]) {
			skipped = append(skipped, Skipped{id, "no manifest: it never completed"})
			continue
		}
		r, reason, err := d.read(ctx, id)
		if err != nil {
			return nil, skipped, err
		}
		if reason == "" {
			reason = foreign(r.Manifest)
		}
		if reason != "" {
			skipped = append(skipped, Skipped{id, reason})
			continue
		}
		return r, skipped, nil
	}
	return nil, skipped, nil
}

// read reads and verifies checkpoint id; reason says why it is not valid.
func (d *Dir) read(ctx context.Context, id uint64) (r *Restored, reason string, err error) {
	data, err := d.store.Get(ctx, dirOf(id)+manifestName)
	if errors.Is(err, ErrNotFound) {
		return nil, "no manifest: it never completed", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("checkpoint %d: reading its manifest from %s: %w", id, d.store, err)
	}
	m, derr := decodeManifest(data)
	if derr != nil {
		return nil, "manifest: " + derr.Error(), nil
	}
	if m.ID != id {
		return nil, fmt.Sprintf("manifest: it names checkpoint %d", m.ID), nil
	}
	r = &Restored{Manifest: m, data: map[string][]byte{}}
	for _, c := range m.Chunks {
		b, err := d.store.Get(ctx, c.Key)
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Sprintf("chunk %s (%s key groups %d..%d) is missing", c.Key, c.Stage, c.First, c.Last), nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("checkpoint %d: reading chunk %s from %s: %w", id, c.Key, d.store, err)
		}
		if int64(len(b)) != c.Size {
			return nil, fmt.Sprintf("chunk %s has %d bytes, the manifest says %d", c.Key, len(b), c.Size), nil
		}
		if got := crc32.Checksum(b, castagnoli); got != c.CRC {
			return nil, fmt.Sprintf("chunk %s has CRC-32C %08x, the manifest says %08x: it is corrupt", c.Key, got, c.CRC), nil
		}
		r.data[c.Key] = b
	}
	return r, "", nil
}

// NextID returns an ID above every checkpoint the store holds, complete or
// not, so that a new checkpoint never mixes its chunks with a torn one's.
func (d *Dir) NextID(ctx context.Context) (uint64, error) {
	ids, _, err := d.ids(ctx)
	if err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 1, nil
	}
	return ids[len(ids)-1] + 1, nil
}

// ids lists the checkpoints in the store, in increasing order, with the
// keys of each.
func (d *Dir) ids(ctx context.Context) ([]uint64, map[uint64][]string, error) {
	keys, err := d.store.List(ctx, dirPrefix)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoints: listing %s: %w", d.store, err)
	}
	byID := map[uint64][]string{}
	var ids []uint64
	for _, k := range keys {
		dir, _, ok := strings.Cut(strings.TrimPrefix(k, dirPrefix), "/")
		id, err := strconv.ParseUint(dir, 10, 64)
		if !ok || err != nil {
			continue // not ours
		}
		if len(ids) == 0 || ids[len(ids)-1] != id {
			ids = append(ids, id)
		}
		byID[id] = append(byID[id], k)
	}
	return ids, byID, nil
}

func hasManifest(id uint64, keys []string) bool { return slices.Contains(keys, dirOf(id)+manifestName) }

// Retain keeps the newest n complete checkpoints and every savepoint, and
// deletes the other older ones, and every checkpoint older than the newest
// complete one that never completed (an abandoned or torn one). Checkpoints newer than that are
// left alone: they may be in progress. Complete here means a manifest that
// checks out and names chunks that are all present; a chunk corrupted in
// place is found only by Latest, which then falls back to an older
// retained checkpoint. A read that fails stops Retain with its error
// rather than delete what it could not check.
func (d *Dir) Retain(ctx context.Context, n int) error {
	if n < 1 {
		return fmt.Errorf("checkpoints: retaining %d checkpoints: at least 1 must be kept", n)
	}
	ids, keys, err := d.ids(ctx)
	if err != nil {
		return err
	}
	kept := 0
	var errs []error
	for _, id := range slices.Backward(ids) {
		del := kept == n
		if hasManifest(id, keys[id]) {
			m, err := d.complete(ctx, id, keys[id])
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			if m != nil && m.Savepoint != "" {
				continue
			}
			if m != nil && !del {
				kept++
				continue
			}
		}
		if del || kept > 0 {
			if err := d.deleteAll(ctx, id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// complete returns the manifest of checkpoint id, whose keys are keys, if
// it is valid and its chunks are all present; else nil.
func (d *Dir) complete(ctx context.Context, id uint64, keys []string) (*Manifest, error) {
	data, err := d.store.Get(ctx, dirOf(id)+manifestName)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d: reading its manifest from %s: %w", id, d.store, err)
	}
	m, err := decodeManifest(data)
	if err != nil || m.ID != id {
		return nil, nil
	}
	for _, c := range m.Chunks {
		if !slices.Contains(keys, c.Key) {
			return nil, nil
		}
	}
	return m, nil
}

// deleteAll deletes checkpoint id, its manifest first, so that a
// checkpoint left half deleted is never restored.
func (d *Dir) deleteAll(ctx context.Context, id uint64) error {
	keys, err := d.store.List(ctx, dirOf(id))
	if err != nil {
		return fmt.Errorf("checkpoint %d: listing %s: %w", id, d.store, err)
	}
	m := dirOf(id) + manifestName
	if i := slices.Index(keys, m); i > 0 {
		keys[0], keys[i] = keys[i], keys[0]
	}
	for _, k := range keys {
		if err := d.store.Delete(ctx, k); err != nil {
			return fmt.Errorf("checkpoint %d: deleting %s from %s: %w", id, k, d.store, err)
		}
	}
	return nil
}

// Complete lists the checkpoints that have a manifest, oldest first
// (without checking them: Read does).
func (d *Dir) Complete(ctx context.Context) ([]uint64, error) {
	ids, keys, err := d.ids(ctx)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, id := range ids {
		if hasManifest(id, keys[id]) {
			out = append(out, id)
		}
	}
	return out, nil
}

// Read reads and verifies checkpoint id; an invalid one is an error that
// says why.
func (d *Dir) Read(ctx context.Context, id uint64) (*Restored, error) {
	r, reason, err := d.read(ctx, id)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		return nil, fmt.Errorf("%w: checkpoint %d in %s: %s", ErrInvalid, id, d.store, reason)
	}
	return r, nil
}

// ErrInvalid is wrapped by Read's error for a checkpoint that is not
// complete and valid (torn, corrupt, absent).
var ErrInvalid = errors.New("no complete, valid checkpoint")
