package checkpoints_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/internal/testenv"
)

// stores returns each kind of store, empty: in memory, a local directory,
// and a bucket of the test S3 server (VersityGW under the test script).
func stores(t *testing.T) map[string]func(t *testing.T) checkpoints.Store {
	return map[string]func(t *testing.T) checkpoints.Store{
		"mem":   func(*testing.T) checkpoints.Store { return checkpoints.NewMem() },
		"local": func(t *testing.T) checkpoints.Store { return checkpoints.NewLocal(t.TempDir()) },
		"s3": func(t *testing.T) checkpoints.Store {
			_, _, urlOf := testenv.S3Bucket(t, "chk")
			s, err := checkpoints.Open(context.Background(), urlOf("job"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

func eachStore(t *testing.T, f func(t *testing.T, s checkpoints.Store)) {
	for name, mk := range stores(t) {
		t.Run(name, func(t *testing.T) { f(t, mk(t)) })
	}
}

// chunkData is the state checkpoint id writes for stage's key groups.
func chunkData(id uint64, stage string, first int) []byte {
	return fmt.Appendf(nil, "state of %s from key group %d at checkpoint %d", stage, first, id)
}

// write writes checkpoint id: three chunks from three goroutines and two
// source positions; commit says whether to write the manifest.
func write(t *testing.T, d *checkpoints.Dir, id uint64, commit bool) error {
	t.Helper()
	ctx := context.Background()
	w := d.Begin("job", "run", "exec", id, 1, int64(id)*1000)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, c := range []struct {
		stage       string
		first, last int
	}{{"agg", 0, 63}, {"agg", 64, 127}, {"win/dow", 0, 127}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.Chunk(ctx, c.stage, c.first, c.last, []string{"fcab880f30ddca87"}, chunkData(id, c.stage, c.first))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	w.State("source", "src", 1, fmt.Appendf(nil, "offset %d", id*10+1))
	w.State("source", "src", 0, fmt.Appendf(nil, "offset %d", id*10))
	if !commit {
		return nil
	}
	_, err := w.Commit(ctx)
	return err
}

// check says what is wrong with r as checkpoint id as write wrote it.
func check(r *checkpoints.Restored, id uint64) error {
	if r == nil {
		return fmt.Errorf("no checkpoint restored, want %d", id)
	}
	if r.ID != id || r.Job != "job" || r.Epoch != 1 || r.Time != int64(id)*1000 {
		return fmt.Errorf("restored %+v, want checkpoint %d", r.Manifest, id)
	}
	if len(r.Chunks) != 3 || len(r.States) != 2 {
		return fmt.Errorf("checkpoint %d: %d chunks and %d sources, want 3 and 2", id, len(r.Chunks), len(r.States))
	}
	for _, c := range r.Chunks {
		if want := chunkData(id, c.Stage, c.First); !bytes.Equal(r.Data(c), want) {
			return fmt.Errorf("checkpoint %d chunk %s: %q, want %q", id, c.Key, r.Data(c), want)
		}
	}
	if s := r.States[0]; s.Stage != "src" || s.Instance != 0 || string(s.Data) != fmt.Sprintf("offset %d", id*10) {
		return fmt.Errorf("checkpoint %d: first source %+v", id, s)
	}
	return nil
}

func latest(t *testing.T, d *checkpoints.Dir) (*checkpoints.Restored, []string) {
	t.Helper()
	r, skipped, err := d.Latest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, k := range skipped {
		s = append(s, k.String())
	}
	return r, s
}

func TestRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, s checkpoints.Store) {
		d := checkpoints.New(s)
		if r, skipped := latest(t, d); r != nil || skipped != nil {
			t.Fatalf("an empty store restored %v, skipping %v", r, skipped)
		}
		for id := uint64(1); id <= 2; id++ {
			if err := write(t, d, id, true); err != nil {
				t.Fatal(err)
			}
		}
		if err := write(t, d, 3, false); err != nil { // in progress, or torn
			t.Fatal(err)
		}
		r, skipped := latest(t, d)
		if err := check(r, 2); err != nil {
			t.Fatal(err)
		}
		if want := []string{"checkpoint 3: no manifest: it never completed"}; !slices.Equal(skipped, want) {
			t.Fatalf("skipped %q, want %q", skipped, want)
		}
	})
}

// TestTornAndCorrupt: a flipped byte in a chunk, a deleted manifest and a
// torn one each make recovery pass over the checkpoint, to the newest one
// that checks out, saying why.
func TestTornAndCorrupt(t *testing.T) {
	eachStore(t, func(t *testing.T, s checkpoints.Store) {
		ctx := context.Background()
		d := checkpoints.New(s)
		for id := uint64(1); id <= 4; id++ {
			if err := write(t, d, id, true); err != nil {
				t.Fatal(err)
			}
		}
		keys, err := s.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		find := func(id uint64, suffix string) string {
			for _, k := range keys {
				if strings.HasPrefix(k, fmt.Sprintf("chk-%020d/", id)) && strings.HasSuffix(k, suffix) {
					return k
				}
			}
			t.Fatalf("no key of checkpoint %d ending %q in %q", id, suffix, keys)
			return ""
		}
		// 4: a flipped byte in a chunk.
		k := find(4, "/agg/64-127")
		b, err := s.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		b[3] ^= 0x40
		if err := s.Put(ctx, k, b, false); err != nil {
			t.Fatal(err)
		}
		// 3: no manifest.
		if err := s.Delete(ctx, find(3, "/MANIFEST")); err != nil {
			t.Fatal(err)
		}
		// 2: a torn manifest.
		m := find(2, "/MANIFEST")
		if b, err = s.Get(ctx, m); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, m, b[:len(b)*2/3], false); err != nil {
			t.Fatal(err)
		}
		r, skipped := latest(t, d)
		if err := check(r, 1); err != nil {
			t.Fatal(err)
		}
		want := []string{
			fmt.Sprintf("checkpoint 4: chunk %s has CRC-32C", k),
			"checkpoint 3: no manifest: it never completed",
			"checkpoint 2: manifest: ",
		}
		if len(skipped) != len(want) {
			t.Fatalf("skipped %q, want %d", skipped, len(want))
		}
		for i := range want {
			if !strings.HasPrefix(skipped[i], want[i]) {
				t.Errorf("skipped %q, want it to start %q", skipped[i], want[i])
			}
		}
		if !strings.Contains(skipped[0], "corrupt") || !strings.Contains(skipped[2], "torn") {
			t.Errorf("the reasons do not say corrupt and torn: %q", skipped)
		}
	})
}

// TestCommitIsExclusive: of writers racing to commit the same checkpoint,
// exactly one wins; the others get ErrExist.
func TestCommitIsExclusive(t *testing.T) {
	eachStore(t, func(t *testing.T, s checkpoints.Store) {
		d := checkpoints.New(s)
		const writers = 8
		for id := uint64(1); id <= 5; id++ {
			var wg sync.WaitGroup
			errs := make([]error, writers)
			for i := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					w := d.Begin("job", "run", "exec", id, uint64(i), 0)
					_, errs[i] = w.Commit(context.Background())
				}()
			}
			wg.Wait()
			won := 0
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, checkpoints.ErrExist):
					t.Fatalf("checkpoint %d: %v, want nil or ErrExist", id, err)
				}
			}
			if won != 1 {
				t.Fatalf("checkpoint %d: %d writers committed, want 1: %v", id, won, errs)
			}
		}
	})
}

// TestRetain keeps the newest complete checkpoints, deletes older ones and
// torn ones older than those, and leaves a newer one in progress alone.
func TestRetain(t *testing.T) {
	eachStore(t, func(t *testing.T, s checkpoints.Store) {
		ctx := context.Background()
		d := checkpoints.New(s)
		for id := uint64(1); id <= 7; id++ {
			if err := write(t, d, id, id != 4 && id != 7); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Retain(ctx, 2); err != nil {
			t.Fatal(err)
		}
		keys, err := s.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var dirs []string
		for _, k := range keys {
			dir, _, _ := strings.Cut(k, "/")
			if len(dirs) == 0 || dirs[len(dirs)-1] != dir {
				dirs = append(dirs, dir)
			}
		}
		want := []string{fmt.Sprintf("chk-%020d", 5), fmt.Sprintf("chk-%020d", 6), fmt.Sprintf("chk-%020d", 7)}
		if !slices.Equal(dirs, want) {
			t.Fatalf("after Retain(2): %q, want %q", dirs, want)
		}
		r, _ := latest(t, d)
		if err := check(r, 6); err != nil {
			t.Fatal(err)
		}
		if err := d.Retain(ctx, 0); err == nil {
			t.Fatal("Retain(0) did not fail")
		}
	})
}

var faultSeeds = flag.Int("checkpoints.seeds", 300, "TestFaults: how many seeds")

// TestFaults writes, commits and retains checkpoints through a store that
// fails, tears and loses the acknowledgement of random operations, and
// checks recovery after each: it restores a checkpoint whose manifest was
// written (never one that was not) with exactly the data written for it,
// no older than the newest commit that succeeded.
func TestFaults(t *testing.T) {
	for seed := uint64(1); seed <= uint64(*faultSeeds); seed++ {
		if err := faults(seed); err != nil {
			t.Fatalf("seed %d (replay: go test ./checkpoints -run TestFaults -checkpoints.seeds=%d): %v", seed, seed, err)
		}
	}
}

func faults(seed uint64) error {
	ctx := context.Background()
	clean := checkpoints.NewMem()
	all := []checkpoints.Op{checkpoints.OpPut, checkpoints.OpGet, checkpoints.OpList, checkpoints.OpDelete}
	kinds := []checkpoints.Fault{checkpoints.FailBefore, checkpoints.FailAfter, checkpoints.Torn, checkpoints.Slow}
	faulty := &checkpoints.Faulty{Store: clean, Inject: checkpoints.Random(seed, 0.15, all, kinds)}
	fd, cd := checkpoints.New(faulty), checkpoints.New(clean)
	rng := rand.New(rand.NewPCG(seed, 1))
	var committed uint64 // the newest checkpoint whose Commit returned nil
	tried := map[uint64]bool{}
	for id := uint64(1); id <= 25; id++ {
		w := fd.Begin("job", "run", "exec", id, 1, int64(id)*1000)
		failed := false
		for _, c := range []struct {
			stage string
			first int
		}{{"agg", 0}, {"agg", 64}, {"win/dow", 0}} {
			if err := w.Chunk(ctx, c.stage, c.first, c.first+63, nil, chunkData(id, c.stage, c.first)); err != nil {
				failed = true
				break
			}
		}
		w.State("source", "src", 0, fmt.Appendf(nil, "offset %d", id*10))
		w.State("source", "src", 1, fmt.Appendf(nil, "offset %d", id*10+1))
		switch {
		case failed:
			_ = w.Abandon(ctx) // may fail too: torn leftovers
		default:
			tried[id] = true
			if _, err := w.Commit(ctx); err == nil {
				committed = id
			} else if errors.Is(err, checkpoints.ErrExist) {
				return fmt.Errorf("checkpoint %d: %v", id, err)
			}
		}
		if rng.IntN(3) == 0 {
			_ = fd.Retain(ctx, 1+rng.IntN(3))
		}
		// Recovery through the faulty store may fail; through the clean
		// view of the same objects it must find the right one.
		r, skipped, err := cd.Latest(ctx)
		if err != nil {
			return err
		}
		if committed == 0 && r == nil {
			continue
		}
		if r == nil {
			return fmt.Errorf("after checkpoint %d: nothing restored, but %d committed; skipped %v", id, committed, skipped)
		}
		if !tried[r.ID] {
			return fmt.Errorf("after checkpoint %d: restored %d, whose manifest was never written", id, r.ID)
		}
		if r.ID < committed {
			return fmt.Errorf("after checkpoint %d: restored %d, older than %d which committed; skipped %v", id, r.ID, committed, skipped)
		}
		for _, c := range r.Chunks {
			if want := chunkData(r.ID, c.Stage, c.First); !bytes.Equal(r.Data(c), want) {
				return fmt.Errorf("checkpoint %d chunk %s: %q, want %q", r.ID, c.Key, r.Data(c), want)
			}
		}
		if len(r.Chunks) != 3 || len(r.States) != 2 {
			return fmt.Errorf("checkpoint %d: %d chunks, %d sources", r.ID, len(r.Chunks), len(r.States))
		}
	}
	if len(faulty.Injected()) == 0 {
		return errors.New("no fault was injected")
	}
	return nil
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct{ url, want string }{
		{dir, "file://" + dir},
		{"file://" + dir, "file://" + dir},
		{"mem://", "mem://"},
	} {
		s, err := checkpoints.Open(ctx, tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if s.String() != tc.want {
			t.Errorf("%s: opened %s, want %s", tc.url, s, tc.want)
		}
	}
	for _, bad := range []string{"", "gs://bucket", "file://relative/dir", "file:///x?y=1", "mem://x"} {
		if _, err := checkpoints.Open(ctx, bad); err == nil {
			t.Errorf("%q: opened", bad)
		}
	}
}

// TestSavepoints: a savepoint is kept by Retain however old, found by
// name, listed, and deleted; a request for one is listed until it is
// dropped or failed, and a second request or savepoint of the same name is
// refused, as are names that --restore would read as something else.
func TestSavepoints(t *testing.T) {
	eachStore(t, func(t *testing.T, s checkpoints.Store) {
		ctx := context.Background()
		d := checkpoints.New(s)
		for _, bad := range []string{"", "latest", "42", "-x", "a/b", strings.Repeat("x", 129)} {
			if err := d.RequestSavepoint(ctx, bad); !errors.Is(err, checkpoints.ErrSavepointName) {
				t.Errorf("RequestSavepoint(%q): %v, want ErrSavepointName", bad, err)
			}
		}
		if err := d.RequestSavepoint(ctx, "v1.2"); err != nil {
			t.Fatal(err)
		}
		if err := d.RequestSavepoint(ctx, "v1.2"); err == nil || !strings.Contains(err.Error(), "a request for one already") {
			t.Fatalf("a second request: %v", err)
		}
		if names, err := d.SavepointRequests(ctx); err != nil || !slices.Equal(names, []string{"v1.2"}) {
			t.Fatalf("requests: %q, %v", names, err)
		}
		w := d.Begin("job", "run", "exec", 1, 1, 1000)
		w.Savepoint("v1.2")
		if _, err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := d.DropRequest(ctx, "v1.2"); err != nil {
			t.Fatal(err)
		}
		for id := uint64(2); id <= 6; id++ {
			if err := write(t, d, id, true); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Retain(ctx, 2); err != nil {
			t.Fatal(err)
		}
		ids, err := d.Complete(ctx)
		if err != nil || !slices.Equal(ids, []uint64{1, 5, 6}) {
			t.Fatalf("after Retain(2): %v (%v), want the savepoint 1 and 5, 6", ids, err)
		}
		if m, err := d.FindSavepoint(ctx, "v1.2"); err != nil || m == nil || m.ID != 1 {
			t.Fatalf("FindSavepoint: %+v, %v", m, err)
		}
		if err := d.RequestSavepoint(ctx, "v1.2"); err == nil || !strings.Contains(err.Error(), "holds one already (checkpoint 1)") {
			t.Fatalf("a request for a savepoint that exists: %v", err)
		}
		if err := d.RequestSavepoint(ctx, "v2"); err != nil {
			t.Fatal(err)
		}
		if err := d.FailRequest(ctx, "v2", errors.New("the job ended first")); err != nil {
			t.Fatal(err)
		}
		if why, failed, err := d.RequestFailed(ctx, "v2"); err != nil || !failed || why != "the job ended first" {
			t.Fatalf("RequestFailed: %q %v %v", why, failed, err)
		}
		if names, _ := d.SavepointRequests(ctx); len(names) != 0 {
			t.Fatalf("requests left: %q", names)
		}
		if err := d.DeleteSavepoint(ctx, "v1.2"); err != nil {
			t.Fatal(err)
		}
		if sps, err := d.Savepoints(ctx); err != nil || len(sps) != 0 {
			t.Fatalf("after DeleteSavepoint: %d savepoints, %v", len(sps), err)
		}
		if err := d.DeleteSavepoint(ctx, "v1.2"); !errors.Is(err, checkpoints.ErrInvalid) {
			t.Fatalf("deleting it again: %v", err)
		}
	})
}
