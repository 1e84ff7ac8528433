package parquetio_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

type stamped struct {
	ID   int64     `parquet:"id"`
	At   time.Time `parquet:"at,timestamp(millisecond)"`
	Nano time.Time `parquet:"nano"`
	Day  int32     `parquet:"day,date"`
	Tags []string  `parquet:"tags,list"`
}

func TestTimesListsAndTimeFilters(t *testing.T) {
	out := filepath.Join(t.TempDir(), "stamped")
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var in []stamped
	for i := range 5000 {
		at := t0.Add(time.Duration(i) * time.Minute)
		in = append(in, stamped{ID: int64(i), At: at, Nano: at.Add(time.Nanosecond), Day: int32(at.Unix() / 86400),
			Tags: []string{"a", "b"}[:i%2+1]})
	}
	p := stages.NewPipeline("write")
	parquetio.Write(stages.FromSlice(p, in), out, parquetio.RowGroupRows(500))
	mustRun(t, p)
	cut := t0.Add(4000 * time.Minute)
	for _, where := range []parquetio.ReadOption{
		parquetio.Where("at", ">=", cut),
		parquetio.Where("nano", ">", cut),
	} {
		var st parquetio.Stats
		got := read[stamped](t, out, where, parquetio.Where("day", ">=", cut.Truncate(24*time.Hour)), parquetio.WithStats(&st))
		if len(got) != 1000 {
			t.Fatalf("got %d records", len(got))
		}
		for _, g := range got {
			w := in[g.ID]
			if !g.At.Equal(w.At) || !g.Nano.Equal(w.Nano) || g.Day != w.Day || strings.Join(g.Tags, ",") != strings.Join(w.Tags, ",") {
				t.Fatalf("got %+v, want %+v", g, w)
			}
		}
		if st.RowGroupsSkipped.Load() == 0 {
			t.Errorf("no row group skipped by a time filter")
		}
	}
	// A list column cannot be filtered on.
	if _, err := tryRead[stamped](t, out, parquetio.Where("tags.list.element", "=", "a")); err == nil || !strings.Contains(err.Error(), "repeated") {
		t.Errorf("filter on a list: got %v", err)
	}
}

func TestSinkRefusesTimeFieldsTaggedDate(t *testing.T) {
	type dated struct {
		Day time.Time `parquet:"day,date"`
	}
	err := parquetio.Sink[dated](t.TempDir()).Err()
	if err == nil || !strings.Contains(err.Error(), "day") {
		t.Fatalf("got %v", err)
	}
}
