package postgres_test

import (
	"testing"

	"github.com/sluice-data/sluice/connectors/postgres"
)

// BenchmarkRead reads a 200k-row table of the items shape in 1, 2 and 4
// splits at once, ranges found by count (a sort of the column first) or by
// given bounds, against pgx's rows.Scan into the same records in one
// connection (the baseline: what an application does without a source).
func BenchmarkRead(b *testing.B) {
	d := server(b)
	const rows = 200_000
	tbl := d.makeItems(rows)
	b.Run("pgx-scan", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			rs, err := d.conn.Query(ctxT(b), "SELECT "+itemColumns+" FROM "+tbl)
			if err != nil {
				b.Fatal(err)
			}
			var got []item
			for rs.Next() {
				var it item
				if err := rs.Scan(&it.ID, &it.K, &it.Name, &it.Amount, &it.Score, &it.Flag, &it.TS, &it.Day,
					&it.LocalTS, &it.Note, &it.MaybeN); err != nil {
					b.Fatal(err)
				}
				got = append(got, it)
			}
			if rs.Err() != nil || len(got) != rows {
				b.Fatalf("%d rows: %v", len(got), rs.Err())
			}
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "records/s")
	})
	for _, c := range []struct {
		name string
		part postgres.Partitioning
	}{
		{"splits=1", postgres.PartitionBy("id", 1)},
		{"splits=2/count", postgres.PartitionBy("id", 2)},
		{"splits=4/count", postgres.PartitionBy("id", 4)},
		{"splits=2/bounds", postgres.PartitionBy("id", 2).IntBounds(1, rows+1)},
		{"splits=4/bounds", postgres.PartitionBy("id", 4).IntBounds(1, rows+1)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				src := postgres.NewSource[item](d.url, postgres.Table(tbl), c.part)
				_, parts := readSplits(b, src)
				total := 0
				for _, p := range parts {
					total += len(p)
				}
				if total != rows {
					b.Fatalf("%d rows", total)
				}
			}
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
