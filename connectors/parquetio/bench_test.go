package parquetio_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

// Order is the benchmark record: the shape of the peers' orders table.
type Order struct {
	ID     int64  `parquet:"id"`
	UserID int64  `parquet:"user_id"`
	Cents  int64  `parquet:"amount_cents"`
	TS     int64  `parquet:"ts"`
	Status string `parquet:"status"`
}

func orders(n int) []Order {
	out := make([]Order, n)
	for i := range out {
		out[i] = Order{ID: int64(i), UserID: int64((i * 7919) % 1_000_000), Cents: int64((i * 104729) % 100_000),
			TS: 1_700_000_000_000 + int64(i)*10, Status: []string{"new", "paid", "shipped", "returned"}[i%4]}
	}
	return out
}

const benchRows = 1_000_000

func runBench(b *testing.B, p *stages.Pipeline) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := sluice.Run(ctx, p, sluice.Options{}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkWrite1M writes 1M orders to one local directory through the
// sink (staging, fsync and rename included).
func BenchmarkWrite1M(b *testing.B) {
	for _, codec := range []struct {
		name string
		opt  parquetio.WriteOption
	}{
		{"snappy", parquetio.Snappy()},
		{"snappy-parquet-go", parquetio.Compression(&parquet.Snappy)}, // the baseline: "better" mode
		{"zstd", parquetio.Zstd()},
		{"snappy-partitioned", parquetio.PartitionBy("status")}, // 4 partitions
	} {
		b.Run(codec.name, func(b *testing.B) {
			in := orders(benchRows)
			dir := b.TempDir()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				p := stages.NewPipeline("bench-write")
				parquetio.Write(stages.FromSlice(p, in), filepath.Join(dir, "out", string(rune('a'+i%26))), codec.opt, parquetio.Overwrite)
				runBench(b, p)
			}
			b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkRead1M reads a 1M-row file (8 row groups) through the source,
// counting records in a sink.
func BenchmarkRead1M(b *testing.B) {
	dir := b.TempDir()
	f, err := os.Create(filepath.Join(dir, "orders.parquet"))
	if err != nil {
		b.Fatal(err)
	}
	w := parquet.NewGenericWriter[Order](f, parquet.MaxRowsPerRowGroup(128<<10), parquet.Compression(&parquet.Snappy))
	if _, err := w.Write(orders(benchRows)); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	_ = f.Close()
	for _, tc := range []struct {
		name    string
		opts    []parquetio.ReadOption
		general bool
	}{
		{"all", nil, false},
		{"all-general", nil, true}, // the baseline: parquet-go's row reader
		{"where-10pct", []parquetio.ReadOption{parquetio.Where("id", ">=", benchRows*9/10)}, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			defer parquetio.SetDirect(!tc.general)()
			b.ReportAllocs()
			var rows int64
			for range b.N {
				p := stages.NewPipeline("bench-read")
				stages.ForEach(parquetio.Read[Order](p, dir, tc.opts...), func(Order) error { return nil })
				res, err := sluice.Run(context.Background(), p, sluice.Options{})
				if err != nil {
					b.Fatal(err)
				}
				rows += res.Stages[0].Records
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
