package parquetio

import (
	"context"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"gocloud.dev/blob/memblob"
)

func TestEscapePath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"eu/west", "eu%2Fwest"},
		{"a=b", "a%3Db"},
		{"100%", "100%25"},
		{"x:y?*", "x%3Ay%3F%2A"},
		{"tab\there", "tab%09here"},
		{"é", "é"},
	} {
		if got := escapePath(tc.in); got != tc.want {
			t.Errorf("escapePath(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := unescapePath(escapePath(tc.in)); got != tc.in {
			t.Errorf("unescapePath(escapePath(%q)) = %q", tc.in, got)
		}
	}
	if got := unescapePath("50%"); got != "50%" {
		t.Errorf("a lone %% at the end: %q", got)
	}
}

func TestMatchPartition(t *testing.T) {
	for _, tc := range []struct {
		op    string
		value any
		raw   string
		want  bool
	}{
		{"=", 2024, "2024", true},
		{"=", 1, "01", true}, // month=01 against an integer
		{"=", "01", "1", false},
		{"!=", 2024, "2023", true},
		{"<", 2024, "2023", true},
		{">=", 2024, "2023", false},
		{"in", []int{1, 2}, "02", true},
		{"in", []string{"eu", "us"}, "ap", false},
		{"=", 2024, defaultPartition, false},
		{"!=", 2024, defaultPartition, false}, // null matches nothing
		{"=", 1.5, "1.5", true},
		{"=", true, "true", true},
		{">=", time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), "2024-03-02", true},
	} {
		f, err := newFilter("k", tc.op, tc.value)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.matchPartition(tc.raw)
		if err != nil || got != tc.want {
			t.Errorf("%s %s %v against %q: got %v, %v; want %v", f.column, tc.op, tc.value, tc.raw, got, err, tc.want)
		}
	}
	f, _ := newFilter("year", "=", 2024)
	if _, err := f.matchPartition("twenty"); err == nil {
		t.Errorf("an integer filter against year=twenty: no error")
	}
}

func TestStatisticsVerdicts(t *testing.T) {
	typ := parquet.Int64Type
	leaf := parquet.LeafColumn{Node: parquet.Leaf(typ)}
	v := parquet.Int64Value
	for _, tc := range []struct {
		op        string
		value     any
		lo, hi    int64
		may, must bool
	}{
		{"=", 5, 1, 10, true, false},
		{"=", 5, 5, 5, true, true},
		{"=", 11, 1, 10, false, false},
		{"!=", 5, 5, 5, false, false},
		{"!=", 5, 6, 9, true, true},
		{"<", 5, 5, 9, false, false},
		{"<", 5, 1, 4, true, true},
		{"<=", 5, 5, 9, true, false},
		{">", 5, 1, 5, false, false},
		{">", 5, 6, 9, true, true},
		{">=", 5, 1, 5, true, false},
		{"in", []int{0, 20}, 1, 10, false, false},
		{"in", []int{0, 7}, 1, 10, true, false},
		{"in", []int{0, 7}, 7, 7, true, true},
	} {
		f, err := newFilter("x", tc.op, tc.value)
		if err != nil {
			t.Fatal(err)
		}
		b, err := f.bind(leaf)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.mayMatch(v(tc.lo), v(tc.hi)); got != tc.may {
			t.Errorf("%s: mayMatch[%d,%d] = %v", f, tc.lo, tc.hi, got)
		}
		if got := b.allMatch(v(tc.lo), v(tc.hi)); got != tc.must {
			t.Errorf("%s: allMatch[%d,%d] = %v", f, tc.lo, tc.hi, got)
		}
		// The verdicts agree with testing every value of the range.
		some, every := false, true
		for x := tc.lo; x <= tc.hi; x++ {
			m := b.match(v(x))
			some, every = some || m, every && m
		}
		if some && !tc.may || tc.must && !every {
			t.Errorf("%s on [%d,%d]: values say some=%v all=%v", f, tc.lo, tc.hi, some, every)
		}
	}
}

func TestToValue(t *testing.T) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	node := func(n parquet.Node) parquet.Type { return n.Type() }
	for _, tc := range []struct {
		typ  parquet.Type
		x    any
		want parquet.Value
		err  string
	}{
		{node(parquet.Timestamp(parquet.Millisecond)), ts, parquet.Int64Value(ts.UnixMilli()), ""},
		{node(parquet.Timestamp(parquet.Microsecond)), ts, parquet.Int64Value(ts.UnixMicro()), ""},
		{node(parquet.Timestamp(parquet.Nanosecond)), ts, parquet.Int64Value(ts.UnixNano()), ""},
		{node(parquet.Date()), ts, parquet.Int32Value(int32(ts.Unix() / 86400)), ""},
		{node(parquet.Int(32)), int64(math.MaxInt32) + 1, parquet.Value{}, "out of range"},
		{node(parquet.Uint(64)), uint64(math.MaxUint64), parquet.Int64Value(-1), ""},
		{node(parquet.Uint(64)), -1, parquet.Value{}, "negative"},
		{node(parquet.String()), "x", parquet.ByteArrayValue([]byte("x")), ""},
		{node(parquet.String()), 3, parquet.Value{}, "cannot compare"},
		{parquet.DoubleType, 3, parquet.DoubleValue(3), ""},
		{parquet.Int64Type, ts, parquet.Value{}, "TIMESTAMP or DATE"},
	} {
		got, err := toValue(tc.typ, tc.x)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("toValue(%v, %v): err %v, want %q", tc.typ, tc.x, err, tc.err)
			}
			continue
		}
		if err != nil || !parquet.Equal(got, tc.want) {
			t.Errorf("toValue(%v, %v) = %v, %v; want %v", tc.typ, tc.x, got, err, tc.want)
		}
	}
	// Unsigned columns compare as unsigned.
	f, _ := newFilter("u", ">", uint64(1))
	b, err := f.bind(parquet.LeafColumn{Node: parquet.Uint(64)})
	if err != nil {
		t.Fatal(err)
	}
	if !b.match(parquet.Int64Value(-1)) { // 2^64-1
		t.Errorf("unsigned comparison: 2^64-1 > 1 is false")
	}
}

func TestIntersect(t *testing.T) {
	got := intersect([]rowRange{{0, 10}, {20, 30}, {40, 50}}, []rowRange{{5, 25}, {45, 60}})
	want := []rowRange{{5, 10}, {20, 25}, {45, 50}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := intersect([]rowRange{{0, 10}}, []rowRange{}); len(got) != 0 {
		t.Fatalf("got %v", got)
	}
}

type wide struct {
	A int64  `parquet:"a"`
	B int64  `parquet:"b"`
	C string `parquet:"c"`
	D string `parquet:"d"`
	E int32  `parquet:"e"`
	F bool   `parquet:"f"`
}

// countingReaderAt counts parquet-go's own reads.
type countingReaderAt struct {
	r     io.ReaderAt
	reads atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.reads.Add(1)
	return c.r.ReadAt(p, off)
}

// The blob adapter turns parquet-go's many small reads into one GET for the
// footer and about one per column chunk.
func TestBlobReaderCoalescesReads(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	w, err := b.NewWriter(ctx, "f.parquet", nil)
	if err != nil {
		t.Fatal(err)
	}
	pw := parquet.NewGenericWriter[wide](w, parquet.PageBufferSize(8<<10), parquet.MaxRowsPerRowGroup(50_000))
	rows := make([]wide, 100_000)
	for i := range rows {
		rows[i] = wide{A: int64(i), B: int64(i * 3), C: fmt.Sprint(i), D: strings.Repeat("d", i%50), E: int32(i), F: i%2 == 0}
	}
	if _, err := pw.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	attrs, err := b.Attributes(ctx, "f.parquet")
	if err != nil {
		t.Fatal(err)
	}

	var st Stats
	br := newBlobReader(ctx, b, "f.parquet", attrs.Size, nil, &st)
	tail, err := br.footer()
	if err != nil {
		t.Fatal(err)
	}
	if st.Requests.Load() != 1 {
		t.Fatalf("footer: %d GETs", st.Requests.Load())
	}

	_ = br.Close()
	read := func(br *blobReader) (reads int64) {
		defer br.Close()
		cr := &countingReaderAt{r: br}
		f2, err := parquet.OpenFile(cr, attrs.Size, parquet.SkipMagicBytes(true), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i, rg := range f2.RowGroups() {
			var plan []byteRange
			for _, c := range f2.Metadata().RowGroups[i].Columns {
				off := c.MetaData.DataPageOffset
				if d := c.MetaData.DictionaryPageOffset; d > 0 && d < off {
					off = d
				}
				plan = append(plan, byteRange{off, off + c.MetaData.TotalCompressedSize})
			}
			br.plan(plan)
			r := parquet.NewGenericRowGroupReader[wide](rg)
			buf := make([]wide, 1000)
			for {
				k, err := r.Read(buf)
				for j := range buf[:k] {
					if buf[j] != rows[n] {
						t.Fatalf("row %d: got %+v", n, buf[j])
					}
					n++
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		if n != len(rows) {
			t.Fatalf("read %d rows", n)
		}
		return cr.reads.Load()
	}

	st = Stats{}
	reads := read(newBlobReader(ctx, b, "f.parquet", attrs.Size, tail, &st))
	chunks := int64(2 * 6)
	if got := st.Requests.Load(); got > chunks || reads < 3*got {
		t.Fatalf("%d GETs for %d column chunks (parquet-go made %d reads)", got, chunks, reads)
	}
	t.Logf("parquet-go made %d reads; %d GETs, %d bytes, file %d bytes", reads, st.Requests.Load(), st.BytesRead.Load(), attrs.Size)
	if st.BytesRead.Load() > attrs.Size {
		t.Fatalf("read %d bytes of a %d-byte file", st.BytesRead.Load(), attrs.Size)
	}
}
