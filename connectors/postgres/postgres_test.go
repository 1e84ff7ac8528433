package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/postgres"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

func TestPartitionCountsReadTheSameRows(t *testing.T) {
	d := server(t)
	tbl := d.makeItems(10_000)
	want := d.reference("SELECT " + itemColumns + " FROM " + tbl)
	for _, n := range []int{1, 2, 3, 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			src := postgres.NewSource[item](d.url, postgres.Table(tbl), postgres.PartitionBy("id", n))
			splits, parts := readSplits(t, src)
			if len(splits) != n {
				t.Errorf("%d splits, want %d", len(splits), n)
			}
			sameRows(t, "partitioned read", sortedStrings(parts...), want)
			for i, sp := range splits {
				// percentile_disc's boundary is the first value at or past
				// each fraction: a split may have one row more or less.
				if got := int64(len(parts[i])); got < sp.Records-1 || got > sp.Records+1 {
					t.Errorf("split %d (%s): %d rows, estimated %d", i, sp.Desc, got, sp.Records)
				}
				if sp.Bytes <= 0 {
					t.Errorf("split %d: no size estimate (Bytes %d)", i, sp.Bytes)
				}
			}
		})
	}
}

func TestUnpartitionedTableEstimatesFromStatistics(t *testing.T) {
	d := server(t)
	tbl := d.makeItems(5_000)
	splits, err := postgres.NewSource[item](d.url, postgres.Table(tbl)).Splits(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) != 1 || splits[0].Records != 5_000 || splits[0].Bytes <= 0 {
		t.Fatalf("splits %+v: want one of 5000 records (pg_class.reltuples after ANALYZE) with a size", splits)
	}
}

// A column whose values crowd into a narrow range (90% of the rows in 0.002%
// of the span) still splits evenly by row count; even-width ranges over the
// same bounds, Spark's way, put nearly everything in one split.
func TestSkewedColumnSplitsEvenlyByCount(t *testing.T) {
	d := server(t)
	tbl := d.table("skewed")
	d.exec(fmt.Sprintf(`CREATE TABLE %s AS
		SELECT 1000000 + g AS id, g AS k, 'n' || g AS name FROM generate_series(1, 18000) g
		UNION ALL SELECT g * 500000000::bigint, g, 'far' || g FROM generate_series(1, 2000) g`, tbl))
	type row struct {
		ID   int64
		K    int64
		Name string
	}
	const total, n = 20_000, 8
	splits, parts := readSplits(t, postgres.NewSource[row](d.url, postgres.Table(tbl), postgres.PartitionBy("id", n)))
	if len(splits) != n {
		t.Fatalf("%d splits, want %d", len(splits), n)
	}
	seen := map[int64]bool{}
	for i, p := range parts {
		if got, want := float64(len(p)), float64(total)/n; math.Abs(got-want) > 0.01*want {
			t.Errorf("split %d (%s): %d rows, want %v ± 1%%", i, splits[i].Desc, len(p), want)
		}
		for _, r := range p {
			if seen[r.ID] {
				t.Fatalf("id %d read twice", r.ID)
			}
			seen[r.ID] = true
		}
	}
	if len(seen) != total {
		t.Fatalf("%d rows read, want %d", len(seen), total)
	}

	byWidth := postgres.NewSource[row](d.url, postgres.Table(tbl), postgres.PartitionBy("id", n).IntBounds(1_000_001, 1_000_000_000_001))
	splits, parts = readSplits(t, byWidth)
	largest := 0
	for _, p := range parts {
		largest = max(largest, len(p))
	}
	if len(splits) != n || largest < 18_000 {
		t.Errorf("even-width ranges: %d splits, the largest with %d rows; want %d splits, one with the 18000 crowded rows", len(splits), largest, n)
	}
	if got := sortedStrings(rowsOf(parts)...); len(got) != total {
		t.Errorf("even-width ranges read %d rows, want %d", len(got), total)
	}
}

// A large table's boundaries come from a sample of its pages instead of a
// sort of the whole column: the splits are even to within the sample's
// error, and every row is still read once.
func TestSampledBoundariesOfALargeTable(t *testing.T) {
	d := server(t)
	tbl := d.table("sampled")
	d.exec(fmt.Sprintf(`CREATE TABLE %s AS SELECT * FROM (
		SELECT 1000000 + g AS id FROM generate_series(1, 18000) g
		UNION ALL SELECT g * 500000000::bigint FROM generate_series(1, 2000) g) ids ORDER BY random()`, tbl))
	d.exec("ANALYZE " + tbl)
	type row struct{ ID int64 }
	const total, n = 20_000, 4
	splits, parts := readSplits(t, postgres.NewSource[row](d.url, postgres.Table(tbl), postgres.PartitionBy("id", n).SampleRows(4_000)))
	if len(splits) != n {
		t.Fatalf("%d splits, want %d", len(splits), n)
	}
	seen := map[int64]bool{}
	var estimated int64
	for i, p := range parts {
		if got, want := float64(len(p)), float64(total)/n; math.Abs(got-want) > 0.15*want {
			t.Errorf("split %d (%s): %d rows, want %v ± 15%%", i, splits[i].Desc, len(p), want)
		}
		for _, r := range p {
			if seen[r.ID] {
				t.Fatalf("id %d read twice", r.ID)
			}
			seen[r.ID] = true
		}
		estimated += splits[i].Records
	}
	if len(seen) != total {
		t.Fatalf("%d rows read, want %d", len(seen), total)
	}
	if math.Abs(float64(estimated-total)) > 0.1*total {
		t.Errorf("the splits' estimates add up to %d, want about %d", estimated, total)
	}
}

// rowsOf turns records into printable rows, for sortedStrings.
func rowsOf[T any](parts [][]T) [][]printed {
	out := make([][]printed, len(parts))
	for i, p := range parts {
		for _, r := range p {
			out[i] = append(out[i], printed(fmt.Sprintf("%+v", r)))
		}
	}
	return out
}

type printed string

func (p printed) String() string { return string(p) }

func TestNullPartitionValuesAreReadOnce(t *testing.T) {
	d := server(t)
	tbl := d.makeItems(5_000) // maybe_n is NULL in every tenth row
	want := d.reference("SELECT " + itemColumns + " FROM " + tbl)
	for _, part := range []postgres.Partitioning{
		postgres.PartitionBy("maybe_n", 4),
		postgres.PartitionBy("maybe_n", 4).IntBounds(0, 15_000),
	} {
		splits, parts := readSplits(t, postgres.NewSource[item](d.url, postgres.Table(tbl), part))
		sameRows(t, "read by maybe_n", sortedStrings(parts...), want)
		for i, p := range parts {
			nulls := 0
			for _, it := range p {
				if it.MaybeN == nil {
					nulls++
				}
			}
			if (i == 0) != (nulls == 500) || (i != 0 && nulls != 0) {
				t.Errorf("split %d (%s) has %d of the 500 NULLs; want all in the first", i, splits[i].Desc, nulls)
			}
		}
	}
}

// A table without a column to partition by is read in ranges of its pages,
// each split scanning only its own (a TID range scan).
func TestBlockPartitionsOfATable(t *testing.T) {
	d := server(t)
	tbl := d.makeItems(10_000)
	want := d.reference("SELECT " + itemColumns + " FROM " + tbl)
	splits, parts := readSplits(t, postgres.NewSource[item](d.url, postgres.Table(tbl), postgres.PartitionByBlocks(4)))
	sameRows(t, "read by blocks", sortedStrings(parts...), want)
	if len(splits) != 4 {
		t.Fatalf("%d splits, want 4", len(splits))
	}
	for i, sp := range splits {
		if got := float64(len(parts[i])); math.Abs(got-2500) > 0.05*2500 || math.Abs(got-float64(sp.Records)) > 0.05*2500 {
			t.Errorf("split %d (%s): %d rows, estimated %d; want about 2500", i, sp.Desc, len(parts[i]), sp.Records)
		}
		_, where, _ := strings.Cut(sp.Desc, " WHERE ")
		var plan string
		if err := d.conn.QueryRow(ctxT(t), "EXPLAIN SELECT * FROM "+tbl+" WHERE "+where).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan, "Tid Range Scan") {
			t.Errorf("split %d (%s) is planned as %s, not a TID range scan", i, where, plan)
		}
	}
	d.exec("CREATE VIEW " + d.table("v") + " AS SELECT * FROM " + tbl)
	for _, c := range []struct {
		err  func() error
		want string
	}{
		{splitsErr[item](d.url, postgres.Table(d.table("v")), postgres.PartitionByBlocks(2)), "needs a table or materialized view"},
		{splitsErr[item](d.url, postgres.Query("SELECT * FROM "+tbl), postgres.PartitionByBlocks(2)), "a query has none"},
		{splitsErr[item](d.url, postgres.Table(tbl), postgres.PartitionByBlocks(2), postgres.SnapshotPerSplit), "needs OneSnapshot"},
		{splitsErr[item](d.url, postgres.Table(tbl), postgres.PartitionByBlocks(2), postgres.PartitionBy("id", 2)), "a second partitioning"},
	} {
		if err := c.err(); !errors.Is(err, postgres.ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want ErrConfig saying %q", err, c.want)
		}
	}
}

func TestQuerySource(t *testing.T) {
	d := server(t)
	tbl := d.makeItems(5_000)
	sql := `SELECT id * 2 AS id, k, upper(name) AS name, amount, score, flag, ts, day, local_ts, note, maybe_n,
		id % 7 AS bucket FROM ` + tbl + ` WHERE k <> $1 AND note IS DISTINCT FROM $2 -- a trailing comment`
	want := d.reference("SELECT "+itemColumns+" FROM ("+strings.TrimSuffix(sql, " -- a trailing comment")+") q", 3, "note '5'")
	if len(want) != 4_500 {
		t.Fatalf("the reference has %d rows", len(want))
	}
	for _, part := range []postgres.Partitioning{postgres.PartitionBy("id", 5), postgres.PartitionBy("bucket", 3), postgres.PartitionBy("name", 4)} {
		splits, parts := readSplits(t, postgres.NewSource[item](d.url, postgres.Query(sql, 3, "note '5'"), part))
		sameRows(t, fmt.Sprintf("query in %d splits", len(splits)), sortedStrings(parts...), want)
		if len(splits) < 3 {
			t.Errorf("%d splits", len(splits))
		}
	}
}

func TestTimePartitionColumns(t *testing.T) {
	d := server(t)
	tbl := d.makeItems(5_000)
	want := d.reference("SELECT " + itemColumns + " FROM " + tbl)
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, part := range []postgres.Partitioning{
		postgres.PartitionBy("ts", 6),       // timestamptz
		postgres.PartitionBy("local_ts", 6), // timestamp, with microseconds
		postgres.PartitionBy("day", 6),      // date
		postgres.PartitionBy("ts", 6).TimeBounds(start, start.Add(5_000*time.Minute)),
		postgres.PartitionBy("local_ts", 6).TimeBounds(start, start.Add(5_000*time.Second)),
		postgres.PartitionBy("day", 6).TimeBounds(start, start.AddDate(0, 0, 50)),
	} {
		splits, parts := readSplits(t, postgres.NewSource[item](d.url, postgres.Table(tbl), part))
		sameRows(t, splits[len(splits)-1].Desc, sortedStrings(parts...), want)
		if len(splits) < 5 {
			t.Errorf("%s: %d splits", splits[0].Desc, len(splits))
		}
		for i, p := range parts {
			if len(p) == 0 || len(p) > 2*5_000/5 {
				t.Errorf("split %s: %d rows", splits[i].Desc, len(p))
			}
		}
	}
}

func TestSchemaErrors(t *testing.T) {
	d := server(t)
	tbl := d.makeItems(100)
	type missing struct {
		ID    int64
		Color string
		Size  int
	}
	type numericIntoInt struct{ Amount int64 }
	type textIntoInt struct{ Name int64 }
	type bigIntoSmall struct{ ID int32 }
	type doubleIntoSingle struct{ Score float32 }
	type nullIntoValue struct {
		ID     int64
		MaybeN int64 `pg:"maybe_n"`
	}
	cases := []struct {
		name  string
		err   func() error
		is    error
		words []string
	}{
		{"missing columns", splitsErr[missing](d.url, postgres.Table(tbl)), postgres.ErrSchema,
			[]string{"table " + tbl, "column color (field Color) is missing", "column size (field Size) is missing"}},
		{"numeric into int64", splitsErr[numericIntoInt](d.url, postgres.Table(tbl)), postgres.ErrSchema,
			[]string{"column amount is numeric", "Amount (int64)"}},
		{"text into int64", splitsErr[textIntoInt](d.url, postgres.Table(tbl)), postgres.ErrSchema,
			[]string{"column name is text", "Name (int64)"}},
		{"bigint into int32", splitsErr[bigIntoSmall](d.url, postgres.Table(tbl)), postgres.ErrSchema,
			[]string{"column id is bigint", "overflow"}},
		{"double into float32", splitsErr[doubleIntoSingle](d.url, postgres.Query("SELECT score FROM "+tbl)), postgres.ErrSchema,
			[]string{"query", "column score is double precision", "round"}},
		{"NULL into int64", readErr[nullIntoValue](d.url, postgres.Table(tbl), postgres.PartitionBy("id", 2)), postgres.ErrNull,
			[]string{"table " + tbl, "row 10 (id = 10)", "column maybe_n is NULL", "MaybeN (int64) is not a pointer"}},
		{"NULL into int64 in a query", readErr[nullIntoValue](d.url, postgres.Query("SELECT * FROM "+tbl+" ORDER BY id;\n")), postgres.ErrNull,
			[]string{"query", "row 10:", "column maybe_n is NULL"}},
		{"a column twice", splitsErr[bigIntoSmall](d.url, postgres.Query("SELECT a.id, b.id FROM "+tbl+" a JOIN "+tbl+" b USING (k)")), postgres.ErrSchema,
			[]string{"column id (field ID) appears 2 times"}},
		{"no such table", splitsErr[item](d.url, postgres.Table(d.table("nothing"))), nil,
			[]string{"table " + d.table("nothing") + " does not exist"}},
		{"no such partition column", splitsErr[item](d.url, postgres.Table(tbl), postgres.PartitionBy("nothing", 3)), postgres.ErrSchema,
			[]string{"partition column nothing is not in the result"}},
		{"time bounds on an integer", splitsErr[item](d.url, postgres.Table(tbl), postgres.PartitionBy("id", 3).TimeBounds(time.Unix(0, 0), time.Now())), postgres.ErrSchema,
			[]string{"TimeBounds needs a date, timestamp or timestamptz partition column; id is bigint"}},
		{"bad options", splitsErr[item](d.url, postgres.Table(tbl), postgres.PartitionBy("", 0), postgres.PartitionBy("id", 2).IntBounds(5, 5).SampleRows(10)), postgres.ErrConfig,
			[]string{"needs a column", "at least 1", "lower bound must be below", "a second partitioning", "SampleRows finds boundaries by count"}},
		{"a sampled query", splitsErr[item](d.url, postgres.Query("SELECT * FROM "+tbl), postgres.PartitionBy("id", 2).SampleRows(10)), postgres.ErrConfig,
			[]string{"SampleRows samples tables"}},
		{"not a struct", splitsErr[int](d.url, postgres.Table(tbl)), postgres.ErrConfig, []string{"int is not a struct"}},
		{"bad connection string", splitsErr[item]("postgres://x:y@:bad", postgres.Table(tbl)), postgres.ErrConfig, nil},
		{"nil From", splitsErr[item](d.url, nil), postgres.ErrConfig, []string{"nil From"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.err()
			if err == nil {
				t.Fatal("no error")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q is not %q", err, c.is)
			}
			for _, w := range c.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if postgres.NewSource[item](d.url, postgres.Table(tbl)).Transient(err) {
				t.Errorf("error %q counts as transient", err)
			}
		})
	}
}

func splitsErr[T any](url string, from postgres.From, opts ...postgres.Option) func() error {
	return func() error {
		src := postgres.NewSource[T](url, from, opts...)
		_, err := src.Splits(context.Background())
		if err == nil {
			src.Close()
		}
		return err
	}
}

func readErr[T any](url string, from postgres.From, opts ...postgres.Option) func() error {
	return func() error {
		src := postgres.NewSource[T](url, from, opts...)
		defer src.Close()
		splits, err := src.Splits(context.Background())
		if err != nil {
			return fmt.Errorf("Splits: %w", err)
		}
		for _, sp := range splits {
			if _, err := readSplit(context.Background(), src, sp); err != nil {
				return err
			}
		}
		return nil
	}
}

// Every split reads the snapshot exported when the splits were listed:
// rows inserted, updated and deleted afterwards are not seen, by splits
// opened before or after the change. The coordinating transaction ends once
// every split has been read.
func TestSplitsShareOneSnapshot(t *testing.T) {
	t.Run("by id", func(t *testing.T) { splitsShareOneSnapshot(t, postgres.PartitionBy("id", 4)) })
	// Updated rows move to other pages: the snapshot still finds their old
	// versions where the splits' ranges were drawn.
	t.Run("by blocks", func(t *testing.T) { splitsShareOneSnapshot(t, postgres.PartitionByBlocks(4)) })
}

func splitsShareOneSnapshot(t *testing.T, part postgres.Option) {
	d := server(t)
	tbl := d.makeItems(10_000)
	want := d.reference("SELECT " + itemColumns + " FROM " + tbl)
	src := postgres.NewSource[item](d.url, postgres.Table(tbl), part)
	ctx := ctxT(t)
	splits, err := src.Splits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, idle := d.sessions(); idle != 1 {
		t.Errorf("%d sessions idle in a transaction after Splits; want the coordinator's", idle)
	}
	first, err := readSplit(ctx, src, splits[0])
	if err != nil {
		t.Fatal(err)
	}
	d.exec("DELETE FROM " + tbl + " WHERE id % 2 = 0")
	d.exec("UPDATE " + tbl + " SET name = 'changed'")
	d.exec("INSERT INTO " + tbl + " (id, k, name, amount, score, flag, ts, day, local_ts) SELECT id + 100000, k, name, amount, score, flag, ts, day, local_ts FROM " + tbl)
	parts := [][]item{first}
	for _, sp := range splits[1:] {
		p, err := readSplit(ctx, src, sp)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p)
	}
	sameRows(t, "read across changes", sortedStrings(parts...), want)
	d.noSessions("after every split was read")
	// A second pass (the job run again) sees a new snapshot.
	again, err := readSplit(ctx, src, splits[len(splits)-1])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(again, func(it item) bool { return it.ID > 100_000 }) {
		t.Errorf("a split opened after the pass ended does not see the later rows")
	}
	src.Close()
	d.noSessions("after Close")
}

// The runtime's skew sampling reads the first records of every split in a
// run of its own, small splits to their end, before the job's run reads
// them all: both runs see the one snapshot, whatever order the job's run
// reads the splits in.
func TestSamplingRunSharesTheSnapshot(t *testing.T) {
	d := server(t)
	tbl := d.makeItems(1_000)
	want := d.reference("SELECT " + itemColumns + " FROM " + tbl)
	// Split 0 has ids below 950, split 1 the other 51.
	src := postgres.NewSource[item](d.url, postgres.Table(tbl), postgres.PartitionBy("id", 2).IntBounds(0, 1900))
	ctx := ctxT(t)
	splits, err := src.Splits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sample, job := stages.Instance{Run: "sample"}, stages.Instance{Run: "job"}
	if _, err := readSplitAs(ctx, src, sample, splits[1], -1); err != nil {
		t.Fatal(err)
	}
	if _, err := readSplitAs(ctx, src, sample, splits[0], 10); err != nil {
		t.Fatal(err)
	}
	d.exec("DELETE FROM " + tbl)
	var parts [][]item
	for _, sp := range []stages.Split{splits[0], splits[1]} {
		p, err := readSplitAs(ctx, src, job, sp, -1)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p)
	}
	sameRows(t, "the job's run after the sampling run", sortedStrings(parts...), want)
	d.noSessions("after the job's run read every split")
}

// A server whose sessions may idle in a transaction for only 100 ms (a
// common production setting) still keeps the coordinator, which idles by
// design, and splits that wait for the job between reads.
func TestSnapshotOutlivesIdleInTransactionTimeout(t *testing.T) {
	d := server(t)
	tbl := d.makeItems(1_000)
	want := d.reference("SELECT " + itemColumns + " FROM " + tbl)
	u := d.url + "&options=" + "-c%20idle_in_transaction_session_timeout%3D100"
	src := postgres.NewSource[item](u, postgres.Table(tbl), postgres.PartitionBy("id", 2))
	ctx := ctxT(t)
	splits, err := src.Splits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// What is under test: sessions idle in their transactions for longer
	// than the server's 100 ms timeout allows.
	time.Sleep(300 * time.Millisecond)
	var parts [][]item
	for _, sp := range splits {
		r, err := src.Open(ctx, stages.Instance{}, sp)
		if err != nil {
			t.Fatalf("opening %s after the coordinator idled: %v", sp.Desc, err)
		}
		buf := make([]item, 10)
		var p []item
		for {
			n, err := r.Read(buf)
			p = append(p, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(p) == 10 {
				time.Sleep(300 * time.Millisecond) // under test: the split idles past the timeout, as while the job is busy
			}
		}
		r.Close()
		parts = append(parts, p)
	}
	sameRows(t, "read with pauses", sortedStrings(parts...), want)
}

func TestSnapshotPerSplitSeesLaterChanges(t *testing.T) {
	d := server(t)
	tbl := d.makeItems(1_000)
	src := postgres.NewSource[item](d.url, postgres.Table(tbl), postgres.PartitionBy("id", 2), postgres.SnapshotPerSplit)
	ctx := ctxT(t)
	splits, err := src.Splits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d.noSessions("after Splits without a shared snapshot")
	d.exec("INSERT INTO " + tbl + " (id, k, name, amount, score, flag, ts, day, local_ts) SELECT id + 100000, k, name, amount, score, flag, ts, day, local_ts FROM " + tbl)
	var n int
	for _, sp := range splits {
		p, err := readSplit(ctx, src, sp)
		if err != nil {
			t.Fatal(err)
		}
		n += len(p)
	}
	if n != 2_000 {
		t.Errorf("read %d rows, want the 2000 there when the splits opened", n)
	}
}

func TestSplitOpenedAfterCloseFails(t *testing.T) {
	d := server(t)
	tbl := d.makeItems(100)
	src := postgres.NewSource[item](d.url, postgres.Table(tbl), postgres.PartitionBy("id", 2))
	splits, err := src.Splits(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	_, err = src.Open(ctxT(t), stages.Instance{}, splits[0])
	if !errors.Is(err, postgres.ErrSnapshot) || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("opening a split after Close: %v, want ErrSnapshot", err)
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	if splits, err = src.Splits(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	d.noSessions("after the context of Splits ended")
	if _, err = src.Open(ctxT(t), stages.Instance{}, splits[0]); !errors.Is(err, postgres.ErrSnapshot) {
		t.Fatalf("opening a split after the context of Splits ended: %v, want ErrSnapshot", err)
	}
}

// The source in a real job: splits dealt to three instances, a transform, a
// keyed aggregation.
func TestReadInPipeline(t *testing.T) {
	d := server(t)
	tbl := d.makeItems(10_000)
	want := d.reference("SELECT " + itemColumns + " FROM " + tbl)
	before := len(testenv.Goroutines())
	p := stages.NewPipeline("postgres-read")
	items := postgres.Read[item](p, d.url, postgres.Table(tbl), postgres.PartitionBy("id", 6))
	all := stages.Collect(stages.Map(items, func(it item) printed { return printed(it.String()) }))
	sums := stages.Collect(stages.Aggregate(stages.KeyBy(items, func(it item) int32 { return it.K }), window.Global(),
		stages.Sum(func(it item) int64 { return it.ID })))
	res, err := sluice.Run(ctxT(t), p, sluice.Options{Parallelism: 3})
	if err != nil {
		t.Fatal(err)
	}
	got := sortedStrings(all.Values())
	sameRows(t, "pipeline", got, want)
	var total int64
	for _, kv := range sums.Values() {
		total += kv.Value
	}
	if total != 10_000*10_001/2 {
		t.Errorf("the sum of ids is %d", total)
	}
	if !strings.Contains(res.Plan.String(), "postgres") {
		t.Errorf("the plan does not name the source stage postgres:\n%s", res.Plan)
	}
	d.noSessions("after the job")
	testenv.CheckLeaks(t, before)
}

// A shuffle join of two sources: the runtime samples the left one for hot
// keys in a run of its own before the job's run reads both.
func TestShuffleJoinOfTwoSources(t *testing.T) {
	d := server(t)
	tbl := d.makeItems(5_000)
	kinds := d.table("kinds")
	d.exec("CREATE TABLE " + kinds + " AS SELECT g AS k, 'kind ' || g AS label FROM generate_series(0, 9) g")
	type kind struct {
		K     int32
		Label string
	}
	p := stages.NewPipeline("postgres-join")
	items := postgres.Read[item](p, d.url, postgres.Table(tbl), postgres.PartitionBy("id", 4))
	labels := postgres.Read[kind](p, d.url, postgres.Table(kinds), postgres.PartitionBy("k", 2))
	joined := stages.JoinFunc(stages.KeyBy(items, func(it item) int32 { return it.K }), stages.KeyBy(labels, func(k kind) int32 { return k.K }),
		stages.Inner, func(_ int32, it item, l kind, _, _ bool) printed {
			return printed(fmt.Sprintf("%d %s", it.ID, l.Label))
		},
		stages.Strategy(plan.JoinShuffle))
	got := stages.Collect(joined)
	if _, err := sluice.Run(ctxT(t), p, sluice.Options{Parallelism: 2}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 1; i <= 5_000; i++ {
		want = append(want, fmt.Sprintf("%d kind %d", i, i%10))
	}
	slices.Sort(want)
	sameRows(t, "join", sortedStrings(got.Values()), want)
	d.noSessions("after the job")
}

// A configuration mistake is reported at the user's line when the graph is
// built, before anything connects.
func TestReadReportsConfigurationAtBuild(t *testing.T) {
	p := stages.NewPipeline("bad")
	stages.Collect(postgres.Read[item](p, "postgres://127.0.0.1:1/x", postgres.Table("t"), postgres.PartitionBy("id", 0)))
	err := p.Err()
	if !errors.Is(err, postgres.ErrConfig) && (err == nil || !strings.Contains(err.Error(), "at least 1")) {
		t.Fatalf("p.Err() = %v, want the PartitionBy mistake", err)
	}
	if !strings.Contains(err.Error(), "postgres_test.go") {
		t.Errorf("error %q does not name the user's line", err)
	}
}

// A server that ends a session in the middle of a split gives an error the
// retry policy can act on.
func TestTerminatedSessionIsTransient(t *testing.T) {
	d := server(t)
	tbl := d.makeItems(1_000)
	// Rows past the 100th come slowly, so the session is still producing
	// them when it is terminated; they are wide, so that the server sends
	// them at once instead of filling its 8 KiB output buffer first.
	type row struct {
		ID  int64
		Pad string
	}
	src := postgres.NewSource[row](d.url, postgres.Query(`SELECT id, repeat('x', 4000) AS pad FROM `+tbl+`
		CROSS JOIN LATERAL (SELECT pg_sleep(CASE WHEN id > 100 THEN 0.01 ELSE 0 END)) s`))
	defer src.Close()
	ctx := ctxT(t)
	splits, err := src.Splits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, err := src.Open(ctx, stages.Instance{}, splits[0])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]row, 10)
	if _, err := r.Read(buf); err != nil {
		t.Fatal(err)
	}
	d.exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'`, d.app)
	buf = make([]row, 1024)
	for err == nil {
		_, err = r.Read(buf)
	}
	if err == io.EOF {
		t.Fatal("the split was read to its end despite its session being terminated")
	}
	if !src.Transient(err) {
		t.Fatalf("%v is not transient", err)
	}
	t.Logf("error after pg_terminate_backend: %v", err)
}
