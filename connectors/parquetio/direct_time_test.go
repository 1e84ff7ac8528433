package parquetio_test

import (
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sluice-data/sluice/connectors/parquetio"
)

// readDirectAndGeneral reads url as T on both paths, sorted by cmp.
func readDirectAndGeneral[T any](t *testing.T, url string, cmp func(a, b T) int, opts ...parquetio.ReadOption) (direct, general []T) {
	t.Helper()
	direct = read[T](t, url, opts...)
	restore := parquetio.SetDirect(false)
	general = read[T](t, url, opts...)
	restore()
	slices.SortFunc(direct, cmp)
	slices.SortFunc(general, cmp)
	return direct, general
}

// A time.Duration field read from a TIME(MICROS) column: parquet-go's
// general path converts the column's micros to nanoseconds
// (timeType.AssignValue: v * unit). The direct path took the field for a
// plain int64 and stored the raw micros, 1000 times too small (found by a
// review); TIME columns now take the general path. The file is written as
// other writers write TIME(MICROS) (pyarrow's time64[us]): an int64 of
// microseconds.
func TestDirectPathLeavesTimeColumns(t *testing.T) {
	type file struct {
		ID int64 `parquet:"id"`
		D  int64 `parquet:"d,time(microsecond)"`
		DP int64 `parquet:"dp,time(microsecond)"`
	}
	type rec struct {
		ID int64          `parquet:"id"`
		D  time.Duration  `parquet:"d,time(microsecond)"`
		DP *time.Duration `parquet:"dp,time(microsecond)"`
	}
	in := make([]file, 100)
	for i := range in {
		us := int64(i) * 1500 // 1.5 ms steps
		in[i] = file{ID: int64(i), D: us, DP: us}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "d.parquet")
	writeFile(t, path, in, 50)
	if ok, err := parquetio.UsesDirect[rec](path); err != nil || ok {
		t.Fatalf("the direct path is taken for TIME columns (%v)", err)
	}
	direct, general := readDirectAndGeneral(t, dir, func(a, b rec) int { return int(a.ID - b.ID) })
	want := 3 * 1500 * time.Microsecond
	if general[3].D != want || *general[3].DP != want {
		t.Errorf("general path: record 3 D=%v DP=%v, want %v", general[3].D, *general[3].DP, want)
	}
	if !reflect.DeepEqual(direct, general) {
		t.Fatalf("record 3: direct path D=%v DP=%v, general path D=%v DP=%v (want %v)",
			direct[3].D, *direct[3].DP, general[3].D, *general[3].DP, want)
	}
}
