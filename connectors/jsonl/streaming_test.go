package jsonl_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/connectors/jsonl"
	"github.com/sluice-data/sluice/internal/commit"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

type tick struct {
	ID int64 `json:"id"`
}

// streamingJob starts a job that reads a holdSource of n IDs and writes
// them as ticks into out from two sink instances, checkpointing every 10
// ms into store.
func streamingJob(t *testing.T, out string, n int64, store checkpoints.Store, restore string, chaos *actors.ChaosConfig) (*actors.Execution, chan struct{}, context.CancelFunc) {
	t.Helper()
	release := make(chan struct{})
	cfg := actors.DefaultConfig()
	cfg.BatchRecords = 256
	cfg.Linger = 2 * time.Millisecond
	cfg.Checkpoints = &actors.CheckpointConfig{Store: store, Every: 10 * time.Millisecond, Timeout: 30 * time.Second, Restore: restore,
		Recovery: actors.RestartPolicy{MaxRestarts: 10, Window: time.Minute, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}}
	cfg.Chaos = chaos
	p := stages.NewPipeline("streaming")
	ids := stages.Read[int64](p, testenv.HoldSource{N: n, Release: release}, stages.Parallelism(1))
	ticks := stages.Map(ids, func(id int64) tick { return tick{ID: id} }, stages.Parallelism(2))
	jsonl.Write(ticks, out, stages.Parallelism(2))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	x, err := sluice.Start(ctx, p, sluice.Options{Runtime: &cfg})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return x, release, cancel
}

// awaitPublished waits until out's manifest lists n records, failing if
// the job ends first or a minute passes, and returns the manifest.
func awaitPublished(t *testing.T, x *actors.Execution, out string, n int64) *commit.Manifest {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; {
		m, _, err := commit.ReadManifest(context.Background(), commit.Local{}, out)
		if err != nil {
			t.Fatal(err)
		}
		if m != nil && rowsOf(m) == n {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute the manifest is %+v, want %d records", m, n)
		}
		select {
		case <-x.Done():
			t.Fatalf("the job ended while its source held, the manifest %+v", m)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func rowsOf(m *commit.Manifest) int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Rows
	}
	return n
}

// checkTicks fails unless out holds, by its manifest, the ticks 0 to n-1
// once each, in files rolled at checkpoints, none empty.
func checkTicks(t *testing.T, out string, n int64) {
	t.Helper()
	m, _, err := commit.ReadManifest(context.Background(), commit.Local{}, out)
	if err != nil || m == nil {
		t.Fatalf("the manifest of %s: %v, %v", out, m, err)
	}
	for _, f := range m.Files {
		if ok, _ := filepath.Match("part-0000[01]_??????-*.jsonl", f.Path); !ok || f.Rows <= 0 {
			t.Fatalf("the manifest lists %s of %d records, want rolled files with records", f.Path, f.Rows)
		}
	}
	if len(m.Files) <= 2 {
		t.Fatalf("the manifest lists %d files: the two instances did not roll theirs at checkpoints", len(m.Files))
	}
	p := stages.NewPipeline("read-ticks")
	c := stages.Collect(jsonl.Read[tick](p, out))
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2}); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, x := range c.Values() {
		ids = append(ids, x.ID)
	}
	slices.Sort(ids)
	if int64(len(ids)) != n {
		t.Fatalf("%s holds %d ticks, want %d", out, len(ids), n)
	}
	for i, id := range ids {
		if id != int64(i) {
			t.Fatalf("%s holds tick %d where %d belongs: a tick is missing or twice", out, id, i)
		}
	}
}

// TestStreamingPublishesAtCheckpoints: a job that does not end by itself
// publishes its JSON lines at each completed checkpoint, in a file per
// instance and checkpoint: while it still runs, the output's manifest lists
// every record, once, at a checkpoint; when its source ends, the end's
// commit leaves the same records. Under chaos kills, and stopped at a
// checkpoint and restored in another process, too.
func TestStreamingPublishesAtCheckpoints(t *testing.T) {
	const n = 6000
	for _, tc := range []struct {
		name  string
		chaos *actors.ChaosConfig
	}{
		{"plain", nil},
		{"kills", &actors.ChaosConfig{Kills: 3, Seed: 5}},
		{"restored", &actors.ChaosConfig{StopAt: n / 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			store := checkpoints.NewMem()
			restore := ""
			if tc.chaos != nil && tc.chaos.StopAt > 0 {
				x, _, cancel := streamingJob(t, out, n, store, "", tc.chaos)
				_, err := x.Wait()
				cancel()
				var stopped *actors.StoppedError
				if !errors.As(err, &stopped) {
					t.Fatalf("stopping at record %d: %v, want a *StoppedError", tc.chaos.StopAt, err)
				}
				if m, _, err := commit.ReadManifest(context.Background(), commit.Local{}, out); err != nil || (m != nil && rowsOf(m) >= n) {
					t.Fatalf("stopped at record %d, the manifest is %+v (%v), want fewer than %d records", tc.chaos.StopAt, m, err, n)
				}
				restore = "latest"
			}
			var chaos *actors.ChaosConfig
			if restore == "" {
				chaos = tc.chaos
			}
			x, release, cancel := streamingJob(t, out, n, store, restore, chaos)
			defer cancel()
			m := awaitPublished(t, x, out, n)
			if m.Checkpoint == 0 {
				t.Fatalf("the manifest was not published at a checkpoint: %+v", m)
			}
			checkTicks(t, out, n)
			close(release)
			res, err := x.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if chaos != nil && len(res.Kills) != chaos.Kills {
				t.Fatalf("%d kills, want %d", len(res.Kills), chaos.Kills)
			}
			if m, _, err := commit.ReadManifest(context.Background(), commit.Local{}, out); err != nil || m == nil || m.Checkpoint != 0 {
				t.Fatalf("at the end the manifest is %+v (%v), want the end's checkpoint 0", m, err)
			}
			checkTicks(t, out, n)
			if es, err := os.ReadDir(filepath.Join(out, "_sluice", "staging")); err == nil && len(es) > 0 {
				t.Fatalf("staging left after the job: %v", es)
			}
			t.Logf("every record published by checkpoint %d while the job ran; %d checkpoints, %d recoveries",
				m.Checkpoint, len(res.Checkpoints), len(res.Recoveries))
		})
	}
}

// shared returns an Instance.Shared of one process.
func shared() func(string, func() (any, error)) (any, error) {
	var mu sync.Mutex
	m := map[string]any{}
	return func(key string, build func() (any, error)) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		if v, ok := m[key]; ok {
			return v, nil
		}
		v, err := build()
		if err == nil {
			m[key] = v
		}
		return v, err
	}
}

// streamInst is instance 0 of a sink in a job that does not end by itself,
// in the process that shares.
func streamInst(shares func(string, func() (any, error)) (any, error)) stages.Instance {
	return stages.Instance{Job: "stream", Run: "r1", Stage: "sink", Parallelism: 1, Unbounded: true, Shared: shares}
}

// step writes recs, passes checkpoint id's barrier and, if complete, its
// completion, and returns the checkpoint's state.
func step(t *testing.T, w stages.Writer[event], recs []event, id uint64, complete bool) []byte {
	t.Helper()
	if err := w.Write(recs); err != nil {
		t.Fatal(err)
	}
	state, err := w.(stages.Checkpointer).Checkpoint(id)
	if err != nil {
		t.Fatal(err)
	}
	if complete {
		if err := w.(stages.Publisher).Completed(id); err != nil {
			t.Fatal(err)
		}
	}
	return state
}

func reopen(t *testing.T, dir string, inst stages.Instance, at uint64, state []byte) stages.Writer[event] {
	t.Helper()
	inst.Restored = at
	w, err := jsonl.Sink[event](dir).(stages.Reopener[event]).Reopen(context.Background(), inst, state)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func manifestOf(t *testing.T, dir string) *commit.Manifest {
	t.Helper()
	m, _, err := commit.ReadManifest(context.Background(), commit.Local{}, dir)
	if err != nil || m == nil {
		t.Fatalf("the manifest of %s: %v, %v", dir, m, err)
	}
	return m
}

func finish(t *testing.T, dir string, inst stages.Instance) {
	t.Helper()
	if err := jsonl.Sink[event](dir).(stages.JobFinisher).FinishJob(context.Background(), inst, false); err != nil {
		t.Fatal(err)
	}
}

// TestReopenRefusesOlderCheckpoint: a writer reopened at a checkpoint
// older than the one the output was published at would publish its
// records again, so Reopen refuses, naming the output and both
// checkpoints; at the output's own checkpoint it counts what that
// checkpoint's completion published.
func TestReopenRefusesOlderCheckpoint(t *testing.T) {
	dir := t.TempDir()
	inst := streamInst(shared())
	w, err := jsonl.Sink[event](dir).Open(context.Background(), inst)
	if err != nil {
		t.Fatal(err)
	}
	at1 := step(t, w, events(3), 1, true)
	at2 := step(t, w, events(5)[3:], 2, true)
	if m := manifestOf(t, dir); m.Checkpoint != 2 || len(m.Files) != 2 || rowsOf(m) != 5 {
		t.Fatalf("after checkpoint 2 the manifest is %+v, want 2 files of 5 records at checkpoint 2", m)
	}
	if err := w.(stages.Checkpointer).Detach(); err != nil {
		t.Fatal(err)
	}
	inst.Restored = 1
	_, err = jsonl.Sink[event](dir).(stages.Reopener[event]).Reopen(context.Background(), inst, at1)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "at checkpoint 1") ||
		!strings.Contains(err.Error(), "checkpoint 2 published") {
		t.Fatalf("reopening checkpoint 1 after 2 was published: %v, want a refusal naming %s and both", err, dir)
	}
	w = reopen(t, dir, inst, 2, at2)
	step(t, w, events(6)[5:], 3, true)
	if m := manifestOf(t, dir); m.Checkpoint != 3 || len(m.Files) != 3 || rowsOf(m) != 6 {
		t.Fatalf("after checkpoint 3 the manifest is %+v, want 3 files of 6 records at checkpoint 3", m)
	}
	if got := readEvents(t, dir); !reflect.DeepEqual(got, events(6)) {
		t.Fatalf("read back %d events, want 6", len(got))
	}
	finish(t, dir, inst)
}

// TestReopenAfterPublishingCrashed: a process that died between moving a
// checkpoint's files into the output and writing the manifest left them
// there unlisted. Reopened at that checkpoint, the writer counts them as
// published; the files begun after the checkpoint go, published or not.
func TestReopenAfterPublishingCrashed(t *testing.T) {
	dir := t.TempDir()
	inst := streamInst(shared())
	w, err := jsonl.Sink[event](dir).Open(context.Background(), inst)
	if err != nil {
		t.Fatal(err)
	}
	step(t, w, events(3), 1, true)
	at2 := step(t, w, events(5)[3:], 2, false)
	publishStaged(t, dir)
	step(t, w, events(7)[5:], 3, false)
	publishStaged(t, dir)
	step(t, w, events(9)[7:], 5, false)
	publishStaged(t, dir)
	if err := w.(stages.Checkpointer).Detach(); err != nil {
		t.Fatal(err)
	}
	w = reopen(t, dir, inst, 2, at2)
	step(t, w, events(6)[5:], 4, true)
	m := manifestOf(t, dir)
	if m.Checkpoint != 4 || rowsOf(m) != 6 {
		t.Fatalf("after checkpoint 4 the manifest is %+v, want 6 records at checkpoint 4", m)
	}
	var files []string
	for _, e := range entries(t, dir) {
		if strings.HasPrefix(e, "part-") {
			files = append(files, e)
		}
	}
	if len(files) != len(m.Files) {
		t.Fatalf("the output holds %d part files, its manifest lists %d: %+v", len(files), len(m.Files), m.Files)
	}
	if got := readEvents(t, dir); !reflect.DeepEqual(got, events(6)) {
		t.Fatalf("read back %d events, want 6", len(got))
	}
	finish(t, dir, inst)
}

// publishStaged moves the one file that instance 0 has staged into the
// output, as a completion does before it writes the manifest.
func publishStaged(t *testing.T, dir string) {
	t.Helper()
	staged, err := filepath.Glob(filepath.Join(dir, "_sluice", "staging", "*", "00000", "*.inprogress"))
	if err != nil || len(staged) != 1 {
		t.Fatalf("staged %q (%v), want one file", staged, err)
	}
	if err := os.Rename(staged[0], filepath.Join(dir, strings.TrimSuffix(filepath.Base(staged[0]), ".inprogress"))); err != nil {
		t.Fatal(err)
	}
}

// checkListed fails unless the output holds exactly the part files its
// manifest lists, and reads back as want.
func checkListed(t *testing.T, dir string, want []event) {
	t.Helper()
	m := manifestOf(t, dir)
	files, err := filepath.Glob(filepath.Join(dir, "part-*"))
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	if !slices.Equal(files, m.Paths()) {
		t.Fatalf("the output holds the part files %q, its manifest lists %q", files, m.Paths())
	}
	if got := readEvents(t, dir); !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %d events, want %d", len(got), len(want))
	}
}

// TestRestoreAfterResumedRunEndsAgain: a process died between moving
// checkpoint 2's file into the output and writing the manifest. A new
// process restores checkpoint 2, which lists the file at once, before the
// writer goes on; it then ends again before writing another manifest:
// stopped at checkpoint 3, which has nothing new to publish, or killed in
// the same way at checkpoint 3's completion. A third process restores
// checkpoint 3, whose state no longer names checkpoint 2's file: its
// manifest lists every record once, and the output holds nothing else.
func TestRestoreAfterResumedRunEndsAgain(t *testing.T) {
	for _, killed := range []bool{false, true} {
		t.Run(fmt.Sprintf("killed=%v", killed), func(t *testing.T) {
			dir := t.TempDir()
			inst := streamInst(shared())
			w, err := jsonl.Sink[event](dir).Open(context.Background(), inst)
			if err != nil {
				t.Fatal(err)
			}
			step(t, w, events(3), 1, true)
			at2 := step(t, w, events(5)[3:], 2, false)
			publishStaged(t, dir)
			jsonl.Sink[event](dir).(stages.JobSuspender).SuspendJob(context.Background(), inst)

			inst = streamInst(shared())
			inst.Resumed = true
			w = reopen(t, dir, inst, 2, at2)
			if m := manifestOf(t, dir); m.Checkpoint != 2 || rowsOf(m) != 5 {
				t.Fatalf("restored at checkpoint 2, the manifest is %+v, want 5 records at checkpoint 2", m)
			}
			checkListed(t, dir, events(5))
			n := int64(5)
			var at3 []byte
			if killed {
				n = 7
				at3 = step(t, w, events(n)[5:], 3, false)
				publishStaged(t, dir)
			} else {
				at3 = step(t, w, nil, 3, true)
			}
			jsonl.Sink[event](dir).(stages.JobSuspender).SuspendJob(context.Background(), inst)

			inst = streamInst(shared())
			inst.Resumed = true
			w = reopen(t, dir, inst, 3, at3)
			step(t, w, events(n + 1)[n:], 4, true)
			if m := manifestOf(t, dir); m.Checkpoint != 4 || rowsOf(m) != n+1 {
				t.Fatalf("after checkpoint 4 the manifest is %+v, want %d records at checkpoint 4", m, n+1)
			}
			checkListed(t, dir, events(n+1))
			finish(t, dir, inst)
		})
	}
}

// TestStaleWriterCannotPublish: a writer of an attempt that was rolled
// back cannot publish: in its process the output holds a later checkpoint
// (commit.ErrStale, refused before any file moves), or it was detached;
// in a process that another took the output's lease from, the manifest's
// write is fenced (commit.ErrLeaseLost). The manifest stays as the live
// writer left it.
func TestStaleWriterCannotPublish(t *testing.T) {
	dir := t.TempDir()
	inst := streamInst(shared())
	old, err := jsonl.Sink[event](dir).Open(context.Background(), inst)
	if err != nil {
		t.Fatal(err)
	}
	at3 := step(t, old, events(3), 3, true)
	step(t, old, events(5)[3:], 4, false)
	// The job recovers from checkpoint 3; the old attempt's writer lingers.
	w := reopen(t, dir, inst, 3, at3)
	at7 := step(t, w, events(4)[3:], 7, true)
	want := manifestOf(t, dir)
	if err := old.(stages.Publisher).Completed(4); !errors.Is(err, commit.ErrStale) {
		t.Fatalf("the old attempt publishing checkpoint 4 after 7: %v, want ErrStale", err)
	}
	if err := old.(stages.Checkpointer).Detach(); err != nil {
		t.Fatal(err)
	}
	if err := old.(stages.Publisher).Completed(8); !errors.Is(err, jsonl.ErrState) {
		t.Fatalf("a detached writer publishing: %v, want ErrState", err)
	}
	if m := manifestOf(t, dir); m.Checkpoint != 7 || !slices.Equal(m.Paths(), want.Paths()) {
		t.Fatalf("after the stale writers the manifest is %+v, want %+v", m, want)
	}
	if got := readEvents(t, dir); !reflect.DeepEqual(got, events(4)) {
		t.Fatalf("read back %d events, want 4", len(got))
	}

	// The process stops; another resumes the run from checkpoint 7 and
	// takes the lease, while the first one's writer goes on.
	jsonl.Sink[event](dir).(stages.JobSuspender).SuspendJob(context.Background(), inst)
	next := streamInst(shared())
	next.Resumed = true
	resumed := reopen(t, dir, next, 7, at7)
	if err := w.Write(events(6)[4:]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.(stages.Checkpointer).Checkpoint(8); err != nil {
		t.Fatal(err)
	}
	if err := w.(stages.Publisher).Completed(8); !errors.Is(err, commit.ErrLeaseLost) {
		t.Fatalf("the stopped process publishing checkpoint 8: %v, want ErrLeaseLost", err)
	}
	if m := manifestOf(t, dir); m.Checkpoint != 7 || !slices.Equal(m.Paths(), want.Paths()) {
		t.Fatalf("after the stopped process's writer the manifest is %+v, want %+v", m, want)
	}
	step(t, resumed, events(5)[4:], 9, true)
	if got := readEvents(t, dir); !reflect.DeepEqual(got, events(5)) {
		t.Fatalf("read back %d events, want 5", len(got))
	}
	finish(t, dir, next)
}

// TestReopenEarlierStateRolls: a checkpoint of a job that did not end by
// itself taken by an earlier version, whose writer staged one file, is
// reopened cut back to its size; the file is closed at the next barrier
// and published at its completion.
func TestReopenEarlierStateRolls(t *testing.T) {
	dir := t.TempDir()
	inst := streamInst(shared())
	inst.Unbounded = false // as the earlier version wrote it
	w, err := jsonl.Sink[event](dir).Open(context.Background(), inst)
	if err != nil {
		t.Fatal(err)
	}
	at1 := step(t, w, events(3), 1, true)
	if err := w.Write(events(9)[3:]); err != nil { // after the checkpoint: dropped
		t.Fatal(err)
	}
	if err := w.(stages.Checkpointer).Detach(); err != nil {
		t.Fatal(err)
	}
	inst.Unbounded = true
	w = reopen(t, dir, inst, 1, at1)
	step(t, w, events(4)[3:], 2, true)
	step(t, w, events(6)[4:], 3, true)
	m := manifestOf(t, dir)
	if want := []string{jsonl.PartName(0, "r1"), "part-00000_000000-r1.jsonl"}; m.Checkpoint != 3 || !slices.Equal(m.Paths(), want) {
		t.Fatalf("the manifest lists %q at checkpoint %d, want %q at 3", m.Paths(), m.Checkpoint, want)
	}
	if got := readEvents(t, dir); !reflect.DeepEqual(got, events(6)) {
		t.Fatalf("read back %d events, want 6", len(got))
	}
	finish(t, dir, inst)
}
