package parquetio_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

type smokeRec struct {
	ID   int64  `parquet:"id"`
	Name string `parquet:"name"`
	Year int32  `parquet:"year"`
}

func TestSmoke(t *testing.T) {
	dir := t.TempDir() + "/out"
	var xs []smokeRec
	for i := range 10000 {
		xs = append(xs, smokeRec{ID: int64(i), Name: "n", Year: int32(2020 + i%3)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := stages.NewPipeline("w")
	parquetio.Write(stages.FromSlice(p, xs), dir, parquetio.PartitionBy("year"), parquetio.RowGroupRows(1000))
	if _, err := sluice.Run(ctx, p, sluice.Options{}); err != nil {
		t.Fatal(err)
	}
	var st parquetio.Stats
	p = stages.NewPipeline("r")
	c := stages.Collect(parquetio.Read[smokeRec](p, dir, parquetio.Where("year", "=", 2021), parquetio.Where("id", "<", 5000), parquetio.WithStats(&st)))
	res, err := sluice.Run(ctx, p, sluice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := c.Values()
	sort.Slice(got, func(i, j int) bool { return got[i].ID < got[j].ID })
	t.Logf("%d rows; first %+v; pruned %d skipped %d filtered %d opened %d", len(got), got[0], st.PartitionsPruned.Load(), st.RowGroupsSkipped.Load(), st.RowsFiltered.Load(), st.FilesOpened.Load())
	t.Log(res.Plan)
}
