package parquetio_test

import (
	"context"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

// TestOrderBy: each split carries the least value of the OrderBy column in
// its row group, which the planner sorts splits by; a column that is not
// there, or not INT64, is an error naming it.
func TestOrderBy(t *testing.T) {
	dir := t.TempDir()
	xs := events(5000)
	slices.Reverse(xs) // ids descend through the file
	write(t, xs, dir, parquetio.RowGroupRows(1000))

	src := parquetio.Source[Event](dir, parquetio.OrderBy("id"))
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
		var least int64 = 1 << 62
		buf := make([]Event, 256)
		for {
			n, err := r.Read(buf)
			for _, x := range buf[:n] {
				least = min(least, x.ID)
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
			t.Errorf("split %s: Order %d, want the row group's least id %d", s.Desc, s.Order, least)
		}
	}

	for _, tc := range []struct{ col, want string }{{"nope", `no column "nope"`}, {"user", "not INT64"}} {
		_, err := parquetio.Source[Event](filepath.Join(dir, "*.parquet"), parquetio.OrderBy(tc.col)).Splits(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "row group") {
			t.Errorf("OrderBy(%q): err = %v, want one naming the row group and %q", tc.col, err, tc.want)
		}
	}
}
