package parquetio_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

func TestRoundTripLocal(t *testing.T) {
	base := t.TempDir()
	out := filepath.Join(base, "events")
	in := events(50_000)
	var ws parquetio.Stats
	write(t, in, out, parquetio.RowGroupRows(4096), parquetio.WithStats(&ws))

	var rs parquetio.Stats
	got := read[Event](t, out, parquetio.WithStats(&rs))
	equalEvents(t, got, in)

	// Only the output is left beside it: staging is gone.
	entries, _ := os.ReadDir(base)
	if len(entries) != 1 || entries[0].Name() != "events" {
		t.Fatalf("left beside the output: %v", entries)
	}
	fs := files(t, out)
	var manifest struct {
		Run   string `json:"run"`
		Files []struct {
			Path string `json:"path"`
			Rows int64  `json:"rows"`
		} `json:"files"`
	}
	body, err := os.ReadFile(filepath.Join(out, "_SUCCESS"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest.Files) != len(fs)-1 || int64(len(manifest.Files)) != ws.FilesWritten.Load() ||
		ws.FilesCommitted.Load() != ws.FilesWritten.Load() || ws.RowsWritten.Load() != int64(len(in)) {
		t.Fatalf("manifest %v, files %v, stats written %d committed %d", manifest.Files, fs, ws.FilesWritten.Load(), ws.FilesCommitted.Load())
	}
	var rows int64
	for _, f := range manifest.Files {
		if !strings.HasPrefix(f.Path, "part-") || !strings.HasSuffix(f.Path, ".snappy.parquet") || !strings.Contains(f.Path, manifest.Run) {
			t.Errorf("file name %q", f.Path)
		}
		rows += f.Rows
	}
	if rows != int64(len(in)) {
		t.Errorf("the manifest counts %d rows, want %d", rows, len(in))
	}
	// 50 000 rows in row groups of 4096 over 3 instances.
	if rg := rs.RowGroups.Load(); rg < 50_000/4096 || rs.RowsRead.Load() != int64(len(in)) {
		t.Errorf("row groups %d, rows read %d", rg, rs.RowsRead.Load())
	}
}

func TestRoundTripZstdAndFileSizes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	in := events(40_000)
	var ws parquetio.Stats
	write(t, in, out, parquetio.Zstd(), parquetio.TargetFileSize(64<<10), parquetio.RowGroupRows(2000),
		parquetio.WithStats(&ws), parquetio.StageOptions(stages.Parallelism(1)))
	equalEvents(t, read[Event](t, out), in)
	n := 0
	for _, f := range files(t, out) {
		if strings.HasSuffix(f, ".zstd.parquet") {
			n++
		}
	}
	if n < 4 || int64(n) != ws.FilesWritten.Load() {
		t.Fatalf("%d zstd files (stats %d): TargetFileSize did not roll files", n, ws.FilesWritten.Load())
	}
}

func TestHivePartitionsPruningAndSkipping(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	in := events(60_000)
	write(t, in, out, parquetio.PartitionBy("year", "month"), parquetio.RowGroupRows(100))

	dirs := map[string]bool{}
	for _, f := range files(t, out) {
		if f != "_SUCCESS" {
			dirs[filepath.Dir(f)] = true
		}
	}
	if len(dirs) != 36 || !dirs["year=2023/month=4"] {
		t.Fatalf("partition directories: %v", dirs)
	}

	var st parquetio.Stats
	var o opens
	got := read[Event](t, out, parquetio.Where("year", "=", 2023), parquetio.Where("month", "in", []int{1, 2}),
		parquetio.Where("id", ">=", 45_000), parquetio.WithStats(&st), o.hook())
	want := keep(in, func(e Event) bool { return e.Year == 2023 && (e.Month == 1 || e.Month == 2) && e.ID >= 45_000 })
	equalEvents(t, got, want)

	for _, f := range o.list() {
		if !strings.Contains(f, "/year=2023/month=1/") && !strings.Contains(f, "/year=2023/month=2/") {
			t.Errorf("opened %s, a file of a pruned partition", f)
		}
	}
	// 2 of 3 years pruned at the first level, 10 of 12 months in the third.
	if p := st.PartitionsPruned.Load(); p != 2+10 {
		t.Errorf("pruned %d partitions, want 12", p)
	}
	if st.RowGroupsSkipped.Load() == 0 {
		t.Errorf("no row group skipped by statistics")
	}
	if st.RowsRead.Load() >= int64(len(in))/10 {
		t.Errorf("read %d rows to find %d", st.RowsRead.Load(), len(want))
	}
	t.Logf("listed %d files, opened %d times, %d row groups, %d skipped, %d rows read, %d filtered",
		st.FilesListed.Load(), st.FilesOpened.Load(), st.RowGroups.Load(), st.RowGroupsSkipped.Load(), st.RowsRead.Load(), st.RowsFiltered.Load())

	// A filter no partition passes reads nothing and opens nothing.
	var o2 opens
	if got := read[Event](t, out, parquetio.Where("year", ">", 3000), o2.hook()); len(got) != 0 || len(o2.list()) != 0 {
		t.Fatalf("got %d records, opened %v", len(got), o2.list())
	}
}

func TestFilterOperators(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	in := events(20_000)
	write(t, in, out, parquetio.RowGroupRows(1000))
	for _, tc := range []struct {
		col, op string
		v       any
		want    func(Event) bool
	}{
		{"id", "=", 777, func(e Event) bool { return e.ID == 777 }},
		{"id", "!=", 777, func(e Event) bool { return e.ID != 777 }},
		{"id", "<", 1500, func(e Event) bool { return e.ID < 1500 }},
		{"id", "<=", 1500, func(e Event) bool { return e.ID <= 1500 }},
		{"id", ">", 18_500, func(e Event) bool { return e.ID > 18_500 }},
		{"id", ">=", 18_500, func(e Event) bool { return e.ID >= 18_500 }},
		{"id", "in", []int64{3, 19_999, 50_000}, func(e Event) bool { return e.ID == 3 || e.ID == 19_999 }},
		{"user", "=", "user-0042", func(e Event) bool { return e.User == "user-0042" }},
		{"user", ">=", "user-4990", func(e Event) bool { return e.User >= "user-4990" }},
		{"year", "=", 2024, func(e Event) bool { return e.Year == 2024 }},
		{"amount_cents", "<", 100, func(e Event) bool { return e.Cents < 100 }},
		{"note", "=", "note 100", func(e Event) bool { return e.Note != nil && *e.Note == "note 100" }},
		{"note", "!=", "note 100", func(e Event) bool { return e.Note != nil && *e.Note != "note 100" }},
	} {
		var st parquetio.Stats
		got := read[Event](t, out, parquetio.Where(tc.col, tc.op, tc.v), parquetio.WithStats(&st))
		want := keep(in, tc.want)
		if len(want) == 0 {
			t.Fatalf("%s %s %v: the test wants nothing", tc.col, tc.op, tc.v)
		}
		equalEvents(t, got, want)
		t.Logf("%s %s %v: %d records, %d of %d row groups skipped", tc.col, tc.op, tc.v, len(got), st.RowGroupsSkipped.Load(), st.RowGroups.Load())
	}
}

// A file with one large row group of many small pages: the page index skips
// pages inside the row group.
func TestPageIndexSkipsPages(t *testing.T) {
	dir := t.TempDir()
	in := events(100_000)
	f, err := os.Create(filepath.Join(dir, "one.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[Event](f, parquet.PageBufferSize(4<<10))
	if _, err := w.Write(in); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var st parquetio.Stats
	got := read[Event](t, dir, parquetio.Where("id", ">=", 95_000), parquetio.Where("id", "<", 96_000), parquetio.WithStats(&st))
	equalEvents(t, got, keep(in, func(e Event) bool { return e.ID >= 95_000 && e.ID < 96_000 }))
	if st.RowGroups.Load() != 1 || st.RowsSkipped.Load() < 90_000 || st.RowsRead.Load() > 10_000 {
		t.Fatalf("row groups %d, rows skipped by the page index %d, rows read %d", st.RowGroups.Load(), st.RowsSkipped.Load(), st.RowsRead.Load())
	}
}

type narrow struct {
	ID   int64 `parquet:"id"`
	Year int32 `parquet:"year"`
}

func TestProjectionReadsOnlyTheRecordsColumns(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	in := events(30_000)
	write(t, in, out)
	var full, proj parquetio.Stats
	read[Event](t, out, parquetio.WithStats(&full))
	got := read[narrow](t, out, parquetio.WithStats(&proj))
	if len(got) != len(in) {
		t.Fatalf("got %d records", len(got))
	}
	seen := make([]bool, len(in))
	for _, g := range got {
		if g.Year != in[g.ID].Year || seen[g.ID] {
			t.Fatalf("record %+v", g)
		}
		seen[g.ID] = true
	}
	if proj.BytesRead.Load()*3 > full.BytesRead.Load() {
		t.Fatalf("projected read %d bytes, full read %d", proj.BytesRead.Load(), full.BytesRead.Load())
	}
	t.Logf("full read %d bytes, projected %d", full.BytesRead.Load(), proj.BytesRead.Load())
}

func TestSchemaMismatchNamesTheFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	write(t, events(1000), out, parquetio.StageOptions(stages.Parallelism(1)))
	type wrongType struct {
		ID string `parquet:"id"`
	}
	type missing struct {
		ID    int64 `parquet:"id"`
		Score int64 `parquet:"score"`
	}
	type optionalMissing struct {
		ID    int64  `parquet:"id"`
		Score *int64 `parquet:"score"`
	}
	type nullsIntoValue struct {
		ID   int64  `parquet:"id"`
		Note string `parquet:"note"`
	}
	for name, try := range map[string]func() error{
		"type":    func() error { _, err := tryRead[wrongType](t, out); return err },
		"missing": func() error { _, err := tryRead[missing](t, out); return err },
		"nulls":   func() error { _, err := tryRead[nullsIntoValue](t, out); return err },
	} {
		err := try()
		if !errors.Is(err, parquetio.ErrSchema) || !strings.Contains(err.Error(), out+"/part-") {
			t.Errorf("%s: want a schema error naming the file, got %v", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	got := read[optionalMissing](t, out)
	if len(got) != 1000 || got[0].Score != nil {
		t.Fatalf("optional missing column: %d records, %+v", len(got), got[0])
	}
}

func TestDamagedFilesNameTheFile(t *testing.T) {
	part, body := onePart(t, 20_000, 5000)
	out := filepath.Dir(part)

	t.Run("truncated", func(t *testing.T) {
		if err := os.WriteFile(part, body[:len(body)/2], 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := tryRead[Event](t, out)
		if !errors.Is(err, parquetio.ErrCorrupt) || !strings.Contains(err.Error(), part) {
			t.Fatalf("want a corrupt-file error naming %s, got %v", part, err)
		}
		t.Log(err)
	})
	t.Run("foreign", func(t *testing.T) {
		if err := os.WriteFile(part, []byte("id,user\n1,ann\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := tryRead[Event](t, out)
		if !errors.Is(err, parquetio.ErrCorrupt) || !strings.Contains(err.Error(), part) {
			t.Fatalf("want a corrupt-file error naming %s, got %v", part, err)
		}
	})
	t.Run("damaged pages", func(t *testing.T) {
		// Keep the footer; overwrite the data of the second row group.
		bad := append([]byte(nil), body...)
		for i := len(bad) * 3 / 10; i < len(bad)*5/10; i++ {
			bad[i] = byte(i * 31)
		}
		if err := os.WriteFile(part, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := tryRead[Event](t, out)
		if err == nil || !strings.Contains(err.Error(), part+" row group ") {
			t.Fatalf("want an error naming %s and a row group, got %v", part, err)
		}
		t.Log(err)
	})
}

// failingJob writes in to out through a map that panics on record panicAt
// (every record when panicAt < 0), with restarts off.
func failingJob(t *testing.T, in []Event, out string, panicAt int64) error {
	t.Helper()
	p := stages.NewPipeline("failing")
	s := stages.Map(stages.FromSlice(p, in), func(e Event) Event {
		if panicAt < 0 || e.ID == panicAt {
			panic("boom")
		}
		return e
	})
	parquetio.Write(s, out, parquetio.PartitionBy("year"), parquetio.RowGroupRows(1000), parquetio.TargetFileSize(32<<10))
	cfg := actors.DefaultConfig()
	cfg.Restart.MaxRestarts = 0
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := sluice.Run(ctx, p, sluice.Options{Runtime: &cfg, Parallelism: 3})
	return err
}

func TestFailedJobLeavesNothing(t *testing.T) {
	base := t.TempDir()
	out := filepath.Join(base, "events")
	in := events(60_000)
	for _, panicAt := range []int64{-1, 55_555} {
		if err := failingJob(t, in, out, panicAt); err == nil || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("panic at %d: want the job to fail with the panic, got %v", panicAt, err)
		}
		if entries, _ := os.ReadDir(base); len(entries) != 0 {
			t.Fatalf("panic at %d: left behind: %v", panicAt, files(t, base))
		}
	}
	// A rerun (the default mode fails if the output exists) succeeds.
	write(t, in, out, parquetio.PartitionBy("year"))
	equalEvents(t, read[Event](t, out), in)
}

func TestCancelledJobLeavesNothing(t *testing.T) {
	base := t.TempDir()
	out := filepath.Join(base, "events")
	in := events(200_000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen atomic.Int64
	p := stages.NewPipeline("cancelled")
	s := stages.Map(stages.FromSlice(p, in), func(e Event) Event {
		if seen.Add(1) == 20_000 {
			cancel()
		}
		return e
	})
	parquetio.Write(s, out, parquetio.RowGroupRows(1000), parquetio.TargetFileSize(64<<10))
	_, err := sluice.Run(ctx, p, sluice.Options{Parallelism: 3})
	if err == nil {
		// The job won the race with its cancellation: then it must be whole.
		equalEvents(t, read[Event](t, out), in)
		return
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want a cancelled job, got %v", err)
	}
	if entries, _ := os.ReadDir(base); len(entries) != 0 {
		t.Fatalf("left behind: %v", files(t, base))
	}
}

func TestModes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	first, second := events(3000), events(5000)[3000:]
	write(t, first, out, parquetio.PartitionBy("year"))
	before := files(t, out)

	p := stages.NewPipeline("again")
	parquetio.Write(stages.FromSlice(p, second), out)
	if _, err := runJob(t, p); !errors.Is(err, parquetio.ErrExists) {
		t.Fatalf("ErrorIfExists: got %v", err)
	}
	if after := files(t, out); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("a refused write changed the output: %v", after)
	}

	write(t, second, out, parquetio.Append, parquetio.PartitionBy("year"))
	equalEvents(t, read[Event](t, out), append(append([]Event(nil), first...), second...))

	write(t, second, out, parquetio.Overwrite)
	equalEvents(t, read[Event](t, out), second)
	for _, f := range files(t, out) {
		if strings.HasPrefix(f, "year=") {
			t.Fatalf("overwrite left %s", f)
		}
	}
}

type regional struct {
	ID     int64  `parquet:"id"`
	Region string `parquet:"region"`
	Year   int32  `parquet:"year"`
}

func TestPartitionByFuncFillsFieldsFromThePath(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	in := events(9000)
	region := func(e Event) string { return []string{"eu/west", "us", ""}[e.ID%3] }
	write(t, in, out, parquetio.PartitionByFunc("region", region))
	var names []string
	for _, f := range files(t, out) {
		names = append(names, filepath.Dir(f))
	}
	joined := strings.Join(names, " ")
	for _, d := range []string{"region=eu%2Fwest", "region=us", "region=__HIVE_DEFAULT_PARTITION__"} {
		if !strings.Contains(joined, d) {
			t.Fatalf("no directory %s in %v", d, names)
		}
	}
	got := read[regional](t, out, parquetio.Where("region", "=", "eu/west"))
	if len(got) != 3000 {
		t.Fatalf("got %d records", len(got))
	}
	for _, g := range got {
		if g.Region != "eu/west" || g.ID%3 != 0 || g.Year != in[g.ID].Year {
			t.Fatalf("record %+v", g)
		}
	}
	// The null partition matches no filter but is read without one.
	all := read[regional](t, out)
	if len(all) != len(in) {
		t.Fatalf("got %d records", len(all))
	}
}

func TestHiddenFilesAndGlobs(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	in := events(6000)
	write(t, in, out, parquetio.PartitionBy("year"))
	for _, junk := range []string{"_temporary/0/part-0.parquet", ".part-0.parquet.crc", "year=2022/_SUCCESS", "year=2022/.hidden.parquet"} {
		p := filepath.Join(out, junk)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("not parquet"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	equalEvents(t, read[Event](t, out), in)
	equalEvents(t, read[Event](t, out+"/year=202[34]/*.parquet"), keep(in, func(e Event) bool { return e.Year >= 2023 }))
	equalEvents(t, read[Event](t, out+"/year=2022"), keep(in, func(e Event) bool { return e.Year == 2022 }))
	if _, err := tryRead[Event](t, out+"/nothing-here"); !errors.Is(err, parquetio.ErrNotFound) {
		t.Fatalf("want not found, got %v", err)
	}
	if _, err := tryRead[Event](t, out+"/year=19*/*.parquet"); !errors.Is(err, parquetio.ErrNotFound) {
		t.Fatalf("want not found for a glob matching nothing, got %v", err)
	}
}

func TestMemRoundTrip(t *testing.T) {
	bucket := fmt.Sprintf("%s-%d", strings.ToLower(t.Name()), time.Now().UnixNano())
	url := "mem://" + bucket + "/lake/events"
	in := events(20_000)
	write(t, in, url, parquetio.PartitionBy("year"), parquetio.RowGroupRows(2000))
	var st parquetio.Stats
	var o opens
	got := read[Event](t, url, parquetio.Where("year", "=", 2024), parquetio.Where("id", "<", 5000), parquetio.WithStats(&st), o.hook())
	equalEvents(t, got, keep(in, func(e Event) bool { return e.Year == 2024 && e.ID < 5000 }))
	for _, f := range o.list() {
		if !strings.HasPrefix(f, "mem://"+bucket+"/lake/events/year=2024/") {
			t.Errorf("opened %s", f)
		}
	}
	if st.PartitionsPruned.Load() != 2 || st.RowGroupsSkipped.Load() == 0 {
		t.Errorf("pruned %d, skipped %d", st.PartitionsPruned.Load(), st.RowGroupsSkipped.Load())
	}
	equalEvents(t, read[Event](t, url), in)
	// Writing again fails; the failed job's staging is gone.
	p := stages.NewPipeline("again")
	parquetio.Write(stages.FromSlice(p, in), url)
	if _, err := runJob(t, p); !errors.Is(err, parquetio.ErrExists) {
		t.Fatalf("got %v", err)
	}
}

func TestFileURLRoundTrip(t *testing.T) {
	dir := t.TempDir()
	url := "file://" + filepath.ToSlash(dir) + "/events"
	in := events(30_000)
	write(t, in, url, parquetio.PartitionBy("year"), parquetio.RowGroupRows(3000))
	if fs := files(t, dir); len(fs) == 0 || !strings.HasPrefix(fs[0], "events/") {
		t.Fatalf("files: %v", fs)
	}
	var st parquetio.Stats
	got := read[narrow](t, url, parquetio.Where("year", "=", 2023), parquetio.WithStats(&st))
	if len(got) != 10_000 {
		t.Fatalf("got %d records", len(got))
	}
	// Object stores are read by ranged GETs: one for each footer, one per
	// column chunk read (two columns of each row group).
	rowGroups := st.RowGroups.Load()
	footers := st.FilesOpened.Load() / 2 // each file is opened for its footer, then per split
	if req := st.Requests.Load(); req > footers+2*rowGroups+2 {
		t.Errorf("%d GETs for %d footers and %d row groups", req, footers, rowGroups)
	}
	t.Logf("%d GETs, %d bytes for %d row groups", st.Requests.Load(), st.BytesRead.Load(), rowGroups)
	failing := failingJob(t, in, filepath.Join(dir, "failed"), 25_000)
	if failing == nil {
		t.Fatal("the failing job succeeded")
	}
	if fs := files(t, dir); strings.Contains(strings.Join(fs, " "), "failed") || strings.Contains(strings.Join(fs, " "), ".sluice") {
		t.Fatalf("left behind: %v", fs)
	}
}

func TestConfigurationErrors(t *testing.T) {
	p := stages.NewPipeline("bad")
	s := parquetio.Read[Event](p, t.TempDir(), parquetio.Where("id", "~", 3), parquetio.Where("id", "in", 3))
	parquetio.Write(s, t.TempDir(), parquetio.PartitionBy("nope"), parquetio.RowGroupRows(0))
	parquetio.Write(s, t.TempDir()+"/*")
	err := p.Err()
	for _, want := range []string{`unknown operator`, `in takes a slice`, `no top-level column "nope"`, `RowGroupRows 0`, `glob`, "parquetio_test.go:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	if err := parquetio.Sink[Event]("x", parquetio.PartitionByFunc("f", func(narrow) string { return "" })).Err(); err == nil {
		t.Errorf("PartitionByFunc of another record type: no error")
	}
}

// failCommit is a sink whose commit fails, after the Parquet sink's.
type failCommit struct{ commits *atomic.Int64 }

func (f failCommit) Open(context.Context, stages.Instance) (stages.Writer[Event], error) {
	return failCommitWriter(f), nil
}

type failCommitWriter failCommit

func (failCommitWriter) Write([]Event) error { return nil }
func (failCommitWriter) Prepare() error      { return nil }
func (w failCommitWriter) Commit() error {
	w.commits.Add(1)
	return errors.New("commit refused")
}
func (failCommitWriter) Abort() error { return nil }

// A job whose Parquet output had committed but whose other sink then failed
// to commit reverts the Parquet output: nothing is left under the base
// directory, partitions included; a rerun succeeds.
func TestFailedLaterCommitRevertsOutput(t *testing.T) {
	base := t.TempDir()
	out := filepath.Join(base, "events")
	in := events(20_000)
	var st parquetio.Stats
	var commits atomic.Int64
	p := stages.NewPipeline("revert")
	src := stages.FromSlice(p, in)
	parquetio.Write(src, out, parquetio.PartitionBy("year"), parquetio.WithStats(&st))
	stages.Write(src, failCommit{&commits}, stages.Name("refuses"))
	_, err := runJob(t, p)
	if err == nil || !strings.Contains(err.Error(), "commit refused") {
		t.Fatalf("want the job to fail in the commit, got %v", err)
	}
	if st.FilesCommitted.Load() == 0 || commits.Load() == 0 {
		t.Fatalf("Parquet files committed %d, refusing commits %d: the Parquet sink must commit first for this test",
			st.FilesCommitted.Load(), commits.Load())
	}
	if entries, _ := os.ReadDir(base); len(entries) != 0 {
		t.Fatalf("left behind: %v", files(t, base))
	}
	write(t, in, out, parquetio.PartitionBy("year"))
	equalEvents(t, read[Event](t, out), in)
}
