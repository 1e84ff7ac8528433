package csvio_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/csvio"
	"github.com/sluice-data/sluice/stages"
)

// click is the record type of the benchmarks: six columns, one nullable.
type click struct {
	ID    int64     `csv:"id"`
	User  string    `csv:"user"`
	Score float64   `csv:"score"`
	At    time.Time `csv:"at"`
	OK    bool      `csv:"ok"`
	Ref   *string   `csv:"ref"`
}

const benchRows = 1_000_000

// clickFile writes a CSV of n clicks and returns its path and size.
func clickFile(b *testing.B, n int) (string, int64) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "clicks.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "id,user,score,at,ok,ref")
	at := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		ref := ""
		if i%3 == 0 {
			ref = "https://example.com/p/" + strconv.Itoa(i%1000)
		}
		fmt.Fprintf(w, "%d,user-%d,%s,%s,%t,%s\n", i, i%5000, strconv.FormatFloat(float64(i%997)/7, 'g', -1, 64),
			at.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i%2 == 0, ref)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return path, fi.Size()
}

// BenchmarkRead decodes a file of a million rows with one reader and a
// buffer of 1024 records: the connector alone.
func BenchmarkRead(b *testing.B) {
	path, size := clickFile(b, benchRows)
	src := csvio.Source[click](path)
	splits, err := src.Splits(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]click, 1024)
	b.ReportAllocs()
	var rows int64
	for b.Loop() {
		r, err := src.Open(context.Background(), stages.Instance{Parallelism: 1}, splits[0])
		if err != nil {
			b.Fatal(err)
		}
		for {
			n, err := r.Read(buf)
			rows += int64(n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		r.Close()
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(size)/benchRows, "B/row")
}

// BenchmarkJob runs jobs that read the same file under each policy into a
// counting sink, through the runtime.
func BenchmarkJob(b *testing.B) {
	path, size := clickFile(b, benchRows)
	for _, policy := range []string{"fail", "dead-letter"} {
		b.Run(policy, func(b *testing.B) {
			b.ReportAllocs()
			var rows atomic.Int64
			count := func(click) error { rows.Add(1); return nil }
			for b.Loop() {
				p := stages.NewPipeline("bench")
				if policy == "fail" {
					stages.ForEach(csvio.Read[click](p, path), count)
				} else {
					good, dead := csvio.ReadOrDeadLetter[click](p, path)
					stages.ForEach(good, count)
					stages.ForEach(dead, func(d stages.DeadLetter) error { return fmt.Errorf("dead letter %+v", d) })
				}
				if _, err := sluice.Run(context.Background(), p, sluice.Options{}); err != nil {
					b.Fatal(err)
				}
			}
			if rows.Load()%benchRows != 0 {
				b.Fatalf("read %d rows, not a multiple of %d", rows.Load(), benchRows)
			}
			b.ReportMetric(float64(rows.Load())/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(size)/benchRows, "B/row")
		})
	}
}
