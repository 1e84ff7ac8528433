package parquetio_test

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

type ordered struct {
	ID int64     `parquet:"id"`
	TS time.Time `parquet:"ts,timestamp(millisecond)"`
}

// TestOrderBy: each split carries the least value of the OrderBy column in
// its row group, in unix nanoseconds (the unit of event times), which the
// planner sorts splits by; a column that is not there, or not a TIMESTAMP,
// is an error naming it.
func TestOrderBy(t *testing.T) {
	dir := t.TempDir()
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	xs := make([]ordered, 5000)
	for i := range xs {
		xs[i] = ordered{ID: int64(i), TS: base.Add(time.Duration(len(xs)-i) * time.Second)}
	}
	p := stages.NewPipeline("write")
	parquetio.Write(stages.FromSlice(p, xs), dir, parquetio.RowGroupRows(1000))
	mustRun(t, p)

	src := parquetio.Source[ordered](dir, parquetio.OrderBy("ts"))
	splits, err := src.Splits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) < 5 {
		t.Fatalf("%d splits, want at least 5 row groups", len(splits))
	}
	for _, s := range splits {
		r, err := src.Open(context.Background(), stages.Instance{}, s)
		if err != nil {
			t.Fatal(err)
		}
		least := int64(1 << 62)
		buf := make([]ordered, 256)
		for {
			n, err := r.Read(buf)
			for _, x := range buf[:n] {
				least = min(least, x.TS.UnixNano())
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		r.Close()
		if s.Order != least {
			t.Errorf("split %s: Order %d, want the row group's least ts %d (ns)", s.Desc, s.Order, least)
		}
	}
	for _, tc := range []struct{ col, want string }{{"nope", `no column "nope"`}, {"id", "not a TIMESTAMP"}} {
		_, err := parquetio.Source[ordered](filepath.Join(dir, "*.parquet"), parquetio.OrderBy(tc.col)).Splits(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "row group") {
			t.Errorf("OrderBy(%q): err = %v, want one naming the row group and %q", tc.col, err, tc.want)
		}
	}
}
