package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/sluice-data/sluice/codec"
)

// Row is a record of every kind of field the fast path serves.
type Row struct {
	I8   int8
	I16  int16
	I32  int32
	I64  int64
	I    int
	U8   uint8
	U16  uint16
	U32  uint32
	U64  uint64
	F32  float32
	F64  float64
	B    bool
	S    string
	T    time.Time
	Tags []string
	Attr map[string]int64
	Next *Row
	Pair [2]uint16
	in   int32 // unexported fields are encoded too
}

func TestRoundTrip(t *testing.T) {
	c := codec.MustFor[Row]()
	cet := time.FixedZone("CET", 3600)
	tests := []Row{
		{},
		{I8: -128, I16: math.MinInt16, I32: math.MaxInt32, I64: math.MinInt64, I: -1, U8: 255, U16: 65535, U32: math.MaxUint32, U64: math.MaxUint64,
			F32: float32(math.Inf(-1)), F64: math.NaN(), B: true, S: "\xffinvalid", T: time.Date(2024, 3, 1, 12, 0, 0, 7, cet),
			Tags: []string{}, Attr: map[string]int64{}, Pair: [2]uint16{1, 2}, in: 9},
		{S: strings.Repeat("long ", 100), Tags: []string{"a", "", "c"}, Attr: map[string]int64{"z": 1, "a": 2, "m": 3},
			Next: &Row{S: "inner", Next: &Row{T: time.Unix(0, 0).UTC()}}},
	}
	for i, want := range tests {
		b := c.Append(nil, &want)
		var got Row
		rest, err := c.Decode(b, &got)
		if err != nil || len(rest) != 0 {
			t.Fatalf("%d: Decode = %d bytes left, %v", i, len(rest), err)
		}
		if again := c.Append(nil, &got); !bytes.Equal(b, again) {
			t.Errorf("%d: encoded again:\n%x\nfirst:\n%x", i, again, b)
		}
		if got.in != want.in || (got.Tags == nil) != (want.Tags == nil) || (got.Attr == nil) != (want.Attr == nil) {
			t.Errorf("%d: got %+v, want %+v", i, got, want)
		}
		_, wo := want.T.Zone()
		_, go_ := got.T.Zone()
		if !got.T.Equal(want.T) || wo != go_ {
			t.Errorf("%d: time %v, want %v", i, got.T, want.T)
		}
	}
}

func TestTimeZeroAndUTC(t *testing.T) {
	c := codec.MustFor[time.Time]()
	for _, want := range []time.Time{{}, time.Unix(1e9, 5).UTC(), time.Unix(1e9, 5).In(time.FixedZone("", 0))} {
		var got time.Time
		if _, err := c.Decode(c.Append(nil, &want), &got); err != nil {
			t.Fatal(err)
		}
		if got != want && !(got.Equal(want) && got.Location() != time.UTC && want.Location() != time.UTC) {
			t.Errorf("got %#v, want %#v", got, want)
		}
		if got.IsZero() != want.IsZero() || (got.Location() == time.UTC) != (want.Location() == time.UTC) {
			t.Errorf("got %v (%v), want %v (%v)", got, got.Location(), want, want.Location())
		}
	}
}

func TestMapOrderIsDeterministic(t *testing.T) {
	c := codec.MustFor[map[int64]string]()
	m := map[int64]string{}
	for i := range 100 {
		m[int64(i*7919%1000)-500] = fmt.Sprint(i)
	}
	first := c.Append(nil, &m)
	for range 20 {
		// A map built in another order iterates in another order.
		m2 := map[int64]string{}
		for k, v := range m {
			m2[k] = v
		}
		if b := c.Append(nil, &m2); !bytes.Equal(b, first) {
			t.Fatal("the same map encoded to other bytes")
		}
	}
}

// TestFingerprint pins the description and fingerprint of a type: they
// must not change between processes, builds or releases of this format.
func TestFingerprint(t *testing.T) {
	type inner struct {
		P *int32
		M map[string]bool
	}
	type pinned struct {
		ID   int64
		Name string
		At   time.Time
		In   inner
		Vals []float64
		Arr  [3]uint8
	}
	got := codec.MustFor[pinned]().Fingerprint()
	if want := codec.Fingerprint(0xfcab880f30ddca87); got != want {
		t.Errorf("fingerprint %s, want %s", got, want)
	}
	if a, b := codec.MustFor[pinned]().Fingerprint(), codec.MustFor[struct {
		ID   int64
		Name string
		At   time.Time
		In   inner
		Vals []float64
		Arr  [3]uint8
	}]().Fingerprint(); a != b {
		t.Errorf("a type and its unnamed twin: %s and %s", a, b)
	}
	for _, c := range []codec.Fingerprint{
		codec.MustFor[struct{ A int64 }]().Fingerprint(),
		codec.MustFor[struct{ B int64 }]().Fingerprint(),
		codec.MustFor[struct{ A int32 }]().Fingerprint(),
		codec.MustFor[struct{ A uint64 }]().Fingerprint(),
		codec.MustFor[struct{ A, B int64 }]().Fingerprint(),
		codec.MustFor[struct{ A []int64 }]().Fingerprint(),
		codec.MustFor[struct{ A *int64 }]().Fingerprint(),
	} {
		if c == got {
			t.Errorf("two types share fingerprint %s", c)
		}
	}
}

type linked struct {
	V    int
	Next *linked
	Kids []linked
}

func TestRecursiveType(t *testing.T) {
	c := codec.MustFor[linked]()
	want := linked{V: 1, Next: &linked{V: 2, Next: &linked{V: 3}}, Kids: []linked{{V: 4}, {V: 5, Kids: []linked{{V: 6}}}}}
	var got linked
	if _, err := c.Decode(c.Append(nil, &want), &got); err != nil {
		t.Fatal(err)
	}
	if got.Next.Next.V != 3 || got.Kids[1].Kids[0].V != 6 || got.Next.Next.Next != nil {
		t.Errorf("got %+v", got)
	}
}

func TestPointerCyclePanics(t *testing.T) {
	c := codec.MustFor[linked]()
	v := &linked{V: 1}
	v.Next = v
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "deeper than") {
			t.Errorf("recovered %v, want a panic about depth", r)
		}
	}()
	c.Append(nil, v)
}

func TestDeepInputIsRefused(t *testing.T) {
	c := codec.MustFor[linked]()
	b := bytes.Repeat(append(make([]byte, 8), 1), codec.MaxDepth+10) // V, then a non-nil Next, again and again
	var v linked
	if _, err := c.Decode(b, &v); !errors.Is(err, codec.ErrCorrupt) || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("Decode = %v, want a depth error", err)
	}
}

func TestUnsupported(t *testing.T) {
	type withFunc struct {
		A int
		F func()
	}
	type deep struct {
		Inner struct {
			Items []struct{ C chan int }
		}
	}
	type withIface struct{ E error }
	type withPtr struct{ P unsafe.Pointer }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{forErr[withFunc](), "field F of type func()"},
		{forErr[deep](), "field Inner.Items[].C of type chan int"},
		{forErr[withIface](), "field E of type error: an interface: Register a codec for it"},
		{forErr[withPtr](), "field P of type unsafe.Pointer"},
		{forErr[map[string]any](), "field [] of type interface {}"},
		{forErr[chan int](), "chan int: a chan has no encoding"},
	} {
		if !errors.Is(tc.err, codec.ErrUnsupported) || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("error %v, want ErrUnsupported naming %q", tc.err, tc.want)
		}
	}
	// A type that failed does not leave broken codecs behind.
	if _, err := codec.For[linked](); err != nil {
		t.Fatal(err)
	}
}

func forErr[T any]() error {
	_, err := codec.For[T]()
	return err
}

func TestBinaryMarshaler(t *testing.T) {
	type host struct {
		Addr netip.Addr
		Pfx  netip.Prefix
	}
	c := codec.MustFor[host]()
	want := host{netip.MustParseAddr("fe80::1%eth0"), netip.MustParsePrefix("10.0.0.0/8")}
	var got host
	if _, err := c.Decode(c.Append(nil, &want), &got); err != nil {
		t.Fatal(err)
	}
	if got != want { // netip.Addr compares its zone by pointer: a structural copy would differ
		t.Errorf("got %v, want %v", got, want)
	}

	// A struct that embeds time.Time gets its MarshalBinary promoted; its
	// own fields must still be encoded.
	type stamped struct {
		time.Time
		Name string
	}
	s := codec.MustFor[stamped]()
	in := stamped{time.Unix(5, 0).UTC(), "kept"}
	var out stamped
	if _, err := s.Decode(s.Append(nil, &in), &out); err != nil || out.Name != "kept" || !out.Equal(in.Time) {
		t.Errorf("got %+v, %v", out, err)
	}
}

func TestZeroSizeTypes(t *testing.T) {
	type empty struct{ A [0]func() }
	c := codec.MustFor[[]empty]()
	want := make([]empty, 1000)
	b := c.Append(nil, &want)
	var got []empty
	if _, err := c.Decode(b, &got); err != nil || len(got) != 1000 {
		t.Fatalf("got %d, %v", len(got), err)
	}
	m := codec.MustFor[map[struct{}]struct{}]()
	wm := map[struct{}]struct{}{{}: {}}
	var gm map[struct{}]struct{}
	if _, err := m.Decode(m.Append(nil, &wm), &gm); err != nil || len(gm) != 1 {
		t.Fatalf("got %v, %v", gm, err)
	}
	rows := codec.AppendBatch(nil, codec.MustFor[empty](), make([]empty, 5))
	if got, err := codec.DecodeBatch(rows, codec.MustFor[empty](), nil); err != nil || len(got) != 5 {
		t.Fatalf("got %d rows, %v", len(got), err)
	}
}

func TestBatch(t *testing.T) {
	c := codec.MustFor[Row]()
	rows := []Row{{I64: 1, S: "a"}, {I64: 2, Tags: []string{"x"}}, {I64: 3}}
	b := codec.AppendBatch([]byte("prefix"), c, rows)
	if !bytes.HasPrefix(b, []byte("prefix")) {
		t.Fatal("AppendBatch did not append")
	}
	b = b[len("prefix"):]
	have := []Row{{I64: 0}}
	got, err := codec.DecodeBatch(b, c, have)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[1].I64 != 1 || got[2].Tags[0] != "x" || got[3].I64 != 3 {
		t.Errorf("got %+v", got)
	}
	// A corrupt batch leaves rows as they were.
	got, err = codec.DecodeBatch(b[:len(b)-1], c, have)
	if !errors.Is(err, codec.ErrCorrupt) || len(got) != 1 {
		t.Errorf("DecodeBatch of a truncated batch = %d rows, %v", len(got), err)
	}
	if empty := codec.AppendBatch(nil, c, nil); len(empty) != codec.HeaderSize+1 {
		t.Errorf("an empty batch takes %d bytes", len(empty))
	}
}

type orderV1 struct {
	ID     int64
	Amount float64
}

type orderV2 struct {
	ID     int64
	Amount float64
	Note   string
}

func TestFingerprintMismatchIsRefused(t *testing.T) {
	b := codec.AppendBatch(nil, codec.MustFor[orderV1](), []orderV1{{1, 2}})
	c2 := codec.MustFor[orderV2]()
	_, err := codec.DecodeBatch(b, c2, nil)
	var m *codec.MismatchError
	if !errors.As(err, &m) || !errors.Is(err, codec.ErrMismatch) || errors.Is(err, codec.ErrCorrupt) {
		t.Fatalf("DecodeBatch = %v, want a *MismatchError", err)
	}
	want := codec.MismatchError{Type: "codec_test.orderV2", Want: c2.Fingerprint(), Got: codec.MustFor[orderV1]().Fingerprint()}
	if *m != want {
		t.Errorf("got %+v, want %+v", *m, want)
	}
	for _, s := range []string{"codec_test.orderV2", want.Want.String(), want.Got.String()} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not name %s", err, s)
		}
	}
}

func TestCorruptInput(t *testing.T) {
	c := codec.MustFor[Row]()
	hdr := codec.AppendHeader(nil, c.Fingerprint())
	good := codec.AppendBatch(nil, c, []Row{{S: "abc", Tags: []string{"t"}, Attr: map[string]int64{"a": 1, "b": 2}, Next: &Row{}}})
	// Offsets into good's only row, from the layout of Row.
	row := codec.HeaderSize + 1
	fixed := 1 + 2 + 4 + 8 + 8 + 1 + 2 + 4 + 8 + 4 + 8 // I8 through F64
	bOff := row + fixed
	tOff := bOff + 1 + 4 // B, then S (length 3)
	set := func(off int, bs ...byte) []byte {
		b := bytes.Clone(good)
		copy(b[off:], bs)
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "header needs"},
		{"no magic", append([]byte{0}, good[1:]...), "no header"},
		{"other version", set(1, 9), "format version 9"},
		{"no count", hdr, "truncated uvarint"},
		{"count beyond the input", binary.AppendUvarint(bytes.Clone(hdr), 1<<62), "count 4611686018427387904"},
		{"count not minimal", append(bytes.Clone(hdr), 0x81, 0x00), "not minimal"},
		{"trailing bytes", append(bytes.Clone(good), 0), "1 bytes after 1 rows"},
		{"bool", set(bOff, 2), "field B: bool byte 0x02"},
		{"string length", set(bOff+1, 0xa0, 0x8d, 0x06), "field S: count 100000"},
		{"time nanoseconds", set(tOff+8, 0xff, 0xff, 0xff, 0x3f), "field T: time nanoseconds"},
		{"UTC with an offset", set(tOff+12, 1), "field T: UTC time with zone offset 1"},
	}
	for i := range len(good) - 1 {
		tests = append(tests, struct {
			name string
			in   []byte
			want string
		}{fmt.Sprintf("truncated to %d", i), good[:i], ""})
	}
	for _, tc := range tests {
		rows, err := codec.DecodeBatch(tc.in, c, nil)
		if !errors.Is(err, codec.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) || rows != nil {
			t.Errorf("%s: DecodeBatch = %d rows, %v; want ErrCorrupt with %q", tc.name, len(rows), err, tc.want)
		}
	}
	// Every byte flipped: no panic, and any error wraps ErrCorrupt or ErrMismatch.
	for i := range good {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			_, err := codec.DecodeBatch(set(i, good[i]^x), c, nil)
			if err != nil && !errors.Is(err, codec.ErrCorrupt) && !errors.Is(err, codec.ErrMismatch) {
				t.Errorf("byte %d ^ %#x: %v", i, x, err)
			}
		}
	}
}

func TestMapEncodingChecked(t *testing.T) {
	c := codec.MustFor[map[string]int8]()
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{[]byte{3, 1, 'b', 1, 1, 'a', 2}, "map entry 1 out of order"},
		{[]byte{3, 1, 'a', 1, 1, 'a', 1}, "map entry 1 repeats a key"},
		{[]byte{3, 1, 'a', 1, 1, 'a', 2}, "map entry 1 repeats a key"},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, "overflows"},
	} {
		var m map[string]int8
		if _, err := c.Decode(tc.in, &m); !errors.Is(err, codec.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) || m != nil {
			t.Errorf("Decode(%x) = %v, %v; want %q", tc.in, m, err, tc.want)
		}
	}
}

func TestCorruptLengthAllocatesLittle(t *testing.T) {
	c := codec.MustFor[[][]int64]()
	in := binary.AppendUvarint(nil, 3) // two elements, each claiming 2^40 ints
	in = binary.AppendUvarint(in, 1<<40)
	in = binary.AppendUvarint(in, 1<<40)
	// Bytes, not allocations: the race detector's runtime counts more of
	// those (11 of the 10 this allowed, in CI), and the point is that the
	// claimed 2^40 are never allocated.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		var v [][]int64
		if _, err := c.Decode(in, &v); !errors.Is(err, codec.ErrCorrupt) {
			t.Fatalf("Decode = %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 10; per > 64<<10 {
		t.Errorf("%d bytes allocated per decode of a corrupt length", per)
	}
}

// point has a codec of its own: two int16s in 4 bytes, big-endian.
type point struct{ X, Y int16 }

type pointCodec struct{}

func (pointCodec) Fingerprint() codec.Fingerprint { return 42 }
func (pointCodec) Type() string                   { return "codec_test.point" }
func (pointCodec) Append(dst []byte, v *point) []byte {
	return binary.BigEndian.AppendUint32(dst, uint32(uint16(v.X))<<16|uint32(uint16(v.Y)))
}
func (pointCodec) Decode(src []byte, v *point) ([]byte, error) {
	if len(src) < 4 {
		return nil, errors.New("short point")
	}
	u := binary.BigEndian.Uint32(src)
	*v = point{int16(u >> 16), int16(u)}
	return src[4:], nil
}

// shape is an interface type with a registered codec.
type shape interface{ Area() float64 }

type square float64

func (s square) Area() float64 { return float64(s * s) }

type shapeCodec struct{}

func (shapeCodec) Fingerprint() codec.Fingerprint { return 7 }
func (shapeCodec) Type() string                   { return "codec_test.shape" }
func (shapeCodec) Append(dst []byte, v *shape) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(float64((*v).(square))))
}
func (shapeCodec) Decode(src []byte, v *shape) ([]byte, error) {
	if len(src) < 8 {
		return nil, errors.New("short shape")
	}
	*v = square(math.Float64frombits(binary.LittleEndian.Uint64(src)))
	return src[8:], nil
}

func init() {
	codec.Register[point](pointCodec{})
	codec.Register[shape](shapeCodec{})
}

func TestRegister(t *testing.T) {
	if c := codec.MustFor[point](); c != (pointCodec{}) {
		t.Errorf("For[point] = %T, want the registered codec", c)
	}
	type plot struct {
		Pts []point
		S   shape
	}
	c := codec.MustFor[plot]()
	want := plot{Pts: []point{{1, -2}, {3, 4}}, S: square(3)}
	b := c.Append(nil, &want)
	if !bytes.HasPrefix(b, []byte{3, 0, 1, 0xff, 0xfe}) {
		t.Errorf("encoding %x does not use the registered codec", b)
	}
	var got plot
	if _, err := c.Decode(b, &got); err != nil || got.Pts[1] != want.Pts[1] || got.S.Area() != 9 {
		t.Fatalf("got %+v, %v", got, err)
	}
	_, err := c.Decode(b[:3], &got)
	if !errors.Is(err, codec.ErrCorrupt) || !strings.Contains(err.Error(), "short point") || !strings.Contains(err.Error(), "Pts[0]") {
		t.Errorf("a registered codec's error: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering twice did not panic")
		}
	}()
	codec.Register[point](pointCodec{})
}

func TestConcurrentUse(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			c := codec.MustFor[Row]()
			rows := []Row{{I64: int64(i), Tags: []string{"a"}, Attr: map[string]int64{"k": 1}}}
			for range 100 {
				got, err := codec.DecodeBatch(codec.AppendBatch(nil, c, rows), c, nil)
				if err != nil || got[0].I64 != int64(i) {
					t.Errorf("got %+v, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func ExampleAppendBatch() {
	type reading struct {
		Sensor string
		At     time.Time
		Value  float64
	}
	c := codec.MustFor[reading]()
	b := codec.AppendBatch(nil, c, []reading{{"a", time.Unix(0, 0).UTC(), 1.5}, {"b", time.Unix(60, 0).UTC(), -2}})
	rows, err := codec.DecodeBatch(b, c, nil)
	fmt.Println(len(b), "bytes;", len(rows), "rows;", rows[1].Sensor, rows[1].At.Unix(), rows[1].Value, err)
	// Output: 63 bytes; 2 rows; b 60 -2 <nil>
}
