package sluice_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

// TestPipelineRunsOnce: running a Pipeline a second time is an error naming
// it, and its Collection keeps the first run's records only.
func TestPipelineRunsOnce(t *testing.T) {
	p := stages.NewPipeline("twice")
	out := stages.Collect(stages.FromSlice(p, []int{1, 2, 3}))
	if _, err := sluice.Run(context.Background(), p, sluice.Options{}); err != nil {
		t.Fatal(err)
	}
	_, err := sluice.Run(context.Background(), p, sluice.Options{})
	if !errors.Is(err, stages.ErrRanAlready) || !strings.Contains(err.Error(), `pipeline "twice"`) {
		t.Errorf("second run: %v, want stages.ErrRanAlready naming the pipeline", err)
	}
	if n := len(out.Values()); n != 3 {
		t.Errorf("%d records collected, want 3", n)
	}
}

type seededRow struct {
	K int64 `parquet:"k"`
	V int64 `parquet:"v"`
}

// runSeeded runs job, writing Parquet into dir with seed, and returns the
// run's Result and the file names its _SUCCESS manifest lists.
func runSeeded(t *testing.T, job, dir string, seed uint64) (*sluice.Result, []string) {
	t.Helper()
	p := stages.NewPipeline(job)
	rows := stages.Map(stages.Sequence(p, 0, 1000), func(i int64) seededRow { return seededRow{K: i % 7, V: i} })
	parquetio.Write(rows, dir)
	res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "_SUCCESS"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Run   string
		Files []struct{ Path string }
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", filepath.Join(dir, "_SUCCESS"), err)
	}
	if m.Run != res.Run {
		t.Errorf("manifest of %s names run %q, the Result %q", dir, m.Run, res.Run)
	}
	var names []string
	for _, f := range m.Files {
		names = append(names, f.Path)
	}
	if len(names) == 0 {
		t.Fatalf("%s lists no files", filepath.Join(dir, "_SUCCESS"))
	}
	return res, names
}

// TestSeedReplaysRunID: two runs of a job with one seed have the same run
// ID and write Parquet files of the same names; another seed, or another
// job with the seed, gives another run ID and other names.
func TestSeedReplaysRunID(t *testing.T) {
	tmp := t.TempDir()
	a, namesA := runSeeded(t, "seeded", filepath.Join(tmp, "a"), 42)
	b, namesB := runSeeded(t, "seeded", filepath.Join(tmp, "b"), 42)
	c, namesC := runSeeded(t, "seeded", filepath.Join(tmp, "c"), 43)
	d, _ := runSeeded(t, "seeded-too", filepath.Join(tmp, "d"), 42)
	if a.Seed != 42 || b.Seed != 42 || c.Seed != 43 {
		t.Errorf("Result.Seed = %d, %d, %d; want 42, 42, 43", a.Seed, b.Seed, c.Seed)
	}
	if len(a.Run) != 12 || a.Run != b.Run {
		t.Errorf("seed 42 twice: run IDs %q and %q, want one of 12 hex digits", a.Run, b.Run)
	}
	if !slices.Equal(namesA, namesB) {
		t.Errorf("seed 42 twice: files\n%q\n%q", namesA, namesB)
	}
	if c.Run == a.Run || d.Run == a.Run {
		t.Errorf("run IDs %q (seed 43), %q (another job) equal seed 42's %q", c.Run, d.Run, a.Run)
	}
	for _, n := range namesC {
		if slices.Contains(namesA, n) {
			t.Errorf("seeds 42 and 43 both wrote %s", n)
		}
	}
}

// TestSeedPicked: a run given no seed picks one, says which in its Result,
// and a run given that seed replays its run ID.
func TestSeedPicked(t *testing.T) {
	tmp := t.TempDir()
	a, namesA := runSeeded(t, "picked", filepath.Join(tmp, "a"), 0)
	if a.Seed == 0 {
		t.Fatal("Result.Seed = 0, want the seed picked")
	}
	b, namesB := runSeeded(t, "picked", filepath.Join(tmp, "b"), a.Seed)
	if b.Run != a.Run || !slices.Equal(namesA, namesB) {
		t.Errorf("rerun with seed %d: run %q files %q, want run %q files %q", a.Seed, b.Run, namesB, a.Run, namesA)
	}
}
