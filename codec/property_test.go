package codec

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"
)

var (
	seedFlag = flag.Uint64("codec.seed", 0, "run the round-trip property test for this seed only")
	seeds    = flag.Int("codec.seeds", 300, "how many seeds the round-trip property test runs")
)

// TestRoundTripGenerated checks, over struct types generated from a seed,
// that decoding an encoded value gives a value equal to it (floats by
// bits, times by instant and offset, nil and empty slices and maps kept
// apart) and that encoding it again gives the same bytes.
func TestRoundTripGenerated(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) { roundTripSeed(t, seed) })
}

// TestRoundTripGeneratedByField checks the same with fixed-size fields
// encoded one by one, as on a big-endian host, instead of copied in runs.
func TestRoundTripGeneratedByField(t *testing.T) {
	withRuns(t, false)
	forSeeds(t, func(t *testing.T, seed uint64) { roundTripSeed(t, seed) })
}

func forSeeds(t *testing.T, f func(*testing.T, uint64)) {
	if *seedFlag != 0 {
		f(t, *seedFlag)
		return
	}
	n := *seeds
	if testing.Short() {
		n /= 10
	}
	for seed := uint64(1); seed <= uint64(n); seed++ {
		f(t, seed)
		if t.Failed() {
			return
		}
	}
}

// withRuns sets runs for the rest of the test, rebuilding the codecs.
func withRuns(t *testing.T, on bool) {
	mu.Lock()
	old := runs
	runs = on
	clear(built)
	clear(typed)
	mu.Unlock()
	t.Cleanup(func() {
		mu.Lock()
		runs = old
		clear(built)
		clear(typed)
		mu.Unlock()
	})
}

func roundTripSeed(t *testing.T, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	typ := genStruct(r, 0)
	mu.Lock()
	tc, err := compileLocked(typ)
	mu.Unlock()
	if err != nil {
		t.Fatalf("seed %d (rerun with -codec.seed=%d): compiling %s: %v", seed, seed, typ, err)
	}
	if (tc.min == 0) != (typ.Size() == 0) {
		t.Fatalf("seed %d: %s has size %d but encodes to at least %d bytes", seed, typ, typ.Size(), tc.min)
	}
	for i := range 20 {
		v := reflect.New(typ)
		genValue(r, v.Elem(), 0)
		p := v.UnsafePointer()
		enc := appendValue([]byte{0xAA}, tc, p, 0)[1:] // append to a non-empty dst
		if slow := appendOps(nil, tc.ops, p, 0); !bytes.Equal(slow, enc) {
			t.Fatalf("seed %d value %d: appendOps and appendValue differ:\n%x\n%x", seed, i, slow, enc)
		}
		if len(enc) < tc.min {
			t.Fatalf("seed %d value %d: %d bytes, fewer than the minimum %d", seed, i, len(enc), tc.min)
		}
		w := reflect.New(typ)
		rest, err := decodeOps(append(enc, 0x55), tc.ops, w.UnsafePointer(), 0)
		if err != nil {
			t.Fatalf("seed %d (rerun with -codec.seed=%d) value %d: decoding %s: %v\nvalue %#v", seed, seed, i, typ, err, v.Elem())
		}
		if !bytes.Equal(rest, []byte{0x55}) {
			t.Fatalf("seed %d value %d: decoding left %x, want 55", seed, i, rest)
		}
		if diff := compare(v.Elem(), w.Elem(), ""); diff != "" {
			t.Fatalf("seed %d (rerun with -codec.seed=%d) value %d of %s: %s", seed, seed, i, typ, diff)
		}
		again := appendValue(nil, tc, w.UnsafePointer(), 0)
		if !bytes.Equal(enc, again) {
			t.Fatalf("seed %d (rerun with -codec.seed=%d) value %d of %s: encoded again differs:\n first %x\nsecond %x", seed, seed, i, typ, enc, again)
		}
		// Every truncation is refused, and none panics.
		for _, n := range []int{0, len(enc) / 3, len(enc) / 2, len(enc) - 1} {
			if n < 0 || n >= len(enc) {
				continue
			}
			z := reflect.New(typ)
			if _, err := decodeOps(enc[:n], tc.ops, z.UnsafePointer(), 0); err == nil && tc.min > 0 {
				t.Fatalf("seed %d value %d: %d of %d bytes decoded without error", seed, i, n, len(enc))
			}
		}
	}
}

// TestBatchGenerated checks, over the generated types, that a batch
// encodes to its values' encodings back to back whatever room dst has (the
// fast path checks room per value and makes room when one may not fit),
// and that it decodes to the values, truncated batches refused.
func TestBatchGenerated(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) { batchSeed(t, seed) })
}

// TestBatchGeneratedByField checks the same with fixed-size fields encoded
// one by one, as on a big-endian host.
func TestBatchGeneratedByField(t *testing.T) {
	withRuns(t, false)
	forSeeds(t, func(t *testing.T, seed uint64) { batchSeed(t, seed) })
}

func batchSeed(t *testing.T, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 0xba7c4))
	typ := genStruct(r, 0)
	if r.IntN(2) == 0 { // more types on the fast path: no pointers, slices, maps
		typ = flatStruct(r)
	}
	mu.Lock()
	tc, err := compileLocked(typ)
	mu.Unlock()
	if err != nil || tc.min == 0 {
		return
	}
	n := 1 + r.IntN(40)
	rows := reflect.MakeSlice(reflect.SliceOf(typ), n, n)
	var want []byte
	for i := range n {
		genValue(r, rows.Index(i), 0)
		want = appendOps(want, tc.ops, rows.Index(i).Addr().UnsafePointer(), 0)
	}
	p := rows.Index(0).Addr().UnsafePointer()
	for _, room := range []int{0, 1, len(want) / 3, len(want) - 1, len(want), len(want) + slack, 2 * len(want)} {
		dst := append(make([]byte, 0, 3+room), 1, 2, 3)
		got := appendRows(dst, tc, p, n)
		if !bytes.Equal(got[:3], []byte{1, 2, 3}) || !bytes.Equal(got[3:], want) {
			t.Fatalf("seed %d (rerun with -codec.seed=%d): %d rows of %s with room %d:\n got %x\nwant 010203%x", seed, seed, n, typ, room, got, want)
		}
	}
	out := reflect.MakeSlice(reflect.SliceOf(typ), n, n)
	rest, _, err := decodeRows(append(want, 0x55), tc, out.Index(0).Addr().UnsafePointer(), n)
	if err != nil || !bytes.Equal(rest, []byte{0x55}) {
		t.Fatalf("seed %d (rerun with -codec.seed=%d): decoding %d rows of %s: rest %x, %v", seed, seed, n, typ, rest, err)
	}
	for i := range n {
		if diff := compare(rows.Index(i), out.Index(i), ""); diff != "" {
			t.Fatalf("seed %d (rerun with -codec.seed=%d) row %d of %s: %s", seed, seed, i, typ, diff)
		}
	}
	for _, k := range []int{0, len(want) / 2, len(want) - 1} {
		z := reflect.MakeSlice(reflect.SliceOf(typ), n, n)
		if _, _, err := decodeRows(want[:k], tc, z.Index(0).Addr().UnsafePointer(), n); err == nil {
			t.Fatalf("seed %d: %d of %d bytes of %d rows decoded without error", seed, k, len(want), n)
		}
	}
}

// flatStruct returns a random struct of fields on the fast path.
func flatStruct(r *rand.Rand) reflect.Type {
	fields := make([]reflect.StructField, 1+r.IntN(10))
	for i := range fields {
		ft := scalarTypes[r.IntN(len(scalarTypes))]
		switch r.IntN(8) {
		case 0:
			ft = reflect.ArrayOf(1+r.IntN(20), ft)
		case 1, 2:
			ft = reflect.TypeFor[string]()
		}
		fields[i] = reflect.StructField{Name: fmt.Sprintf("F%d", i), Type: ft}
	}
	return reflect.StructOf(fields)
}

var (
	scalarTypes = []reflect.Type{
		reflect.TypeFor[bool](), reflect.TypeFor[int8](), reflect.TypeFor[int16](), reflect.TypeFor[int32](),
		reflect.TypeFor[int64](), reflect.TypeFor[int](), reflect.TypeFor[uint8](), reflect.TypeFor[uint16](),
		reflect.TypeFor[uint32](), reflect.TypeFor[uint64](), reflect.TypeFor[uint](), reflect.TypeFor[uintptr](),
		reflect.TypeFor[float32](), reflect.TypeFor[float64](), reflect.TypeFor[complex64](), reflect.TypeFor[complex128](),
		reflect.TypeFor[string](), timeType,
	}
	keyTypes = []reflect.Type{
		reflect.TypeFor[string](), reflect.TypeFor[int64](), reflect.TypeFor[int8](), reflect.TypeFor[uint16](),
		reflect.TypeFor[bool](), reflect.TypeFor[[2]int32](), reflect.TypeFor[struct {
			A string
			B uint8
		}](),
	}
)

// genType returns a random type; depth bounds the nesting.
func genType(r *rand.Rand, depth int) reflect.Type {
	k := r.IntN(10)
	if depth >= 3 {
		k = 0
	}
	switch k {
	case 0, 1, 2, 3, 4:
		return scalarTypes[r.IntN(len(scalarTypes))]
	case 5:
		return reflect.PointerTo(genType(r, depth+1))
	case 6:
		return reflect.SliceOf(genType(r, depth+1))
	case 7:
		return reflect.ArrayOf([]int{0, 1, 3, 17, 40}[r.IntN(5)], genType(r, depth+2))
	case 8:
		return reflect.MapOf(keyTypes[r.IntN(len(keyTypes))], genType(r, depth+1))
	}
	return genStruct(r, depth+1)
}

func genStruct(r *rand.Rand, depth int) reflect.Type {
	n := r.IntN(8)
	if depth == 0 {
		n++ // a root with a field at least
	}
	fields := make([]reflect.StructField, n)
	for i := range fields {
		fields[i] = reflect.StructField{Name: fmt.Sprintf("F%d", i), Type: genType(r, depth)}
	}
	return reflect.StructOf(fields)
}

var (
	specialFloats = []float64{0, math.Copysign(0, -1), 1, -1.5, math.Inf(1), math.Inf(-1), math.NaN(),
		math.Float64frombits(0x7ff8_0000_dead_beef), math.Float64frombits(0xfff0_0000_0000_0001), math.SmallestNonzeroFloat64, math.MaxFloat64}
	specialStrings = []string{"", "a", "héllo", "\xff\xfe\xfd", "\x00", strings.Repeat("x", 127), strings.Repeat("yz", 100), "日本語"}
	testZones      = []*time.Location{time.UTC, time.FixedZone("CET", 3600), time.FixedZone("", -7*3600), time.FixedZone("odd", 5*3600+1800+17),
		time.FixedZone("UTC0", 0), time.FixedZone("far", -26*3600)}
)

// genValue fills v, a settable value, with a random value.
func genValue(r *rand.Rand, v reflect.Value, depth int) {
	if v.Type() == timeType {
		v.Set(reflect.ValueOf(genTime(r)))
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := v.Type().Bits()
		switch r.IntN(4) {
		case 0:
			v.SetInt(-1 << (bits - 1)) // the minimum
		case 1:
			v.SetInt(1<<(bits-1) - 1)
		default:
			v.SetInt(int64(r.Uint64()) >> (64 - bits))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(r.Uint64() >> (64 - v.Type().Bits()))
	case reflect.Float32:
		if r.IntN(2) == 0 {
			v.SetFloat(specialFloats[r.IntN(len(specialFloats))]) // SetFloat keeps NaN a NaN, not its payload
		} else {
			*(*uint32)(v.Addr().UnsafePointer()) = r.Uint32()
		}
	case reflect.Float64:
		if r.IntN(2) == 0 {
			*(*float64)(v.Addr().UnsafePointer()) = specialFloats[r.IntN(len(specialFloats))]
		} else {
			*(*uint64)(v.Addr().UnsafePointer()) = r.Uint64()
		}
	case reflect.Complex64, reflect.Complex128:
		v.SetComplex(complex(specialFloats[r.IntN(len(specialFloats))], specialFloats[r.IntN(len(specialFloats))]))
	case reflect.String:
		if r.IntN(2) == 0 {
			v.SetString(specialStrings[r.IntN(len(specialStrings))])
		} else {
			b := make([]byte, r.IntN(300))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			v.SetString(string(b))
		}
	case reflect.Pointer:
		if r.IntN(3) == 0 || depth > 6 {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		genValue(r, p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		switch n := r.IntN(6) - 2; {
		case n == -2 || depth > 6:
			v.SetZero() // nil
		case n == -1:
			v.Set(reflect.MakeSlice(v.Type(), 0, r.IntN(3))) // empty
		default:
			s := reflect.MakeSlice(v.Type(), n, n)
			for i := range n {
				genValue(r, s.Index(i), depth+1)
			}
			v.Set(s)
		}
	case reflect.Array:
		for i := range v.Len() {
			genValue(r, v.Index(i), depth+1)
		}
	case reflect.Map:
		switch n := r.IntN(6) - 2; {
		case n == -2 || depth > 6:
			v.SetZero()
		case n == -1:
			v.Set(reflect.MakeMap(v.Type()))
		default:
			m := reflect.MakeMap(v.Type())
			for range n {
				k := reflect.New(v.Type().Key()).Elem()
				genValue(r, k, depth+1)
				e := reflect.New(v.Type().Elem()).Elem()
				genValue(r, e, depth+1)
				m.SetMapIndex(k, e)
			}
			v.Set(m)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			genValue(r, v.Field(i), depth+1)
		}
	default:
		panic("genValue: " + v.Type().String())
	}
}

func genTime(r *rand.Rand) time.Time {
	switch r.IntN(6) {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(r.Int64N(1<<40)-1<<39, r.Int64N(1e9)).UTC()
	case 2: // far from now, both ways
		return time.Date(1+r.IntN(9999), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1e9), testZones[r.IntN(len(testZones))])
	case 3: // with a monotonic reading, which is not kept
		return time.Unix(1_700_000_000, 5).Add(time.Duration(r.Int64N(1e12))).Round(0).In(testZones[r.IntN(len(testZones))])
	}
	return time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(testZones[r.IntN(len(testZones))])
}

// compare returns where a and b differ, or "".
func compare(a, b reflect.Value, path string) string {
	if a.Type() == timeType {
		ta, tb := a.Interface().(time.Time), b.Interface().(time.Time)
		_, oa := ta.Zone()
		_, ob := tb.Zone()
		if !ta.Equal(tb) || oa != ob || (ta.Location() == time.UTC) != (tb.Location() == time.UTC) || ta.IsZero() != tb.IsZero() {
			return fmt.Sprintf("%s: time %v (%s), decoded %v (%s)", path, ta, ta.Location(), tb, tb.Location())
		}
		return ""
	}
	switch a.Kind() {
	case reflect.Float32:
		if *(*uint32)(addr(a)) != *(*uint32)(addr(b)) {
			return fmt.Sprintf("%s: %x, decoded %x", path, *(*uint32)(addr(a)), *(*uint32)(addr(b)))
		}
	case reflect.Float64:
		if *(*uint64)(addr(a)) != *(*uint64)(addr(b)) {
			return fmt.Sprintf("%s: %x, decoded %x", path, *(*uint64)(addr(a)), *(*uint64)(addr(b)))
		}
	case reflect.Complex64, reflect.Complex128:
		n := int(a.Type().Size())
		if !bytes.Equal(unsafe.Slice((*byte)(addr(a)), n), unsafe.Slice((*byte)(addr(b)), n)) { // by bits
			return fmt.Sprintf("%s: %v, decoded %v", path, a, b)
		}
	case reflect.Pointer:
		if a.IsNil() != b.IsNil() {
			return fmt.Sprintf("%s: nil %v, decoded nil %v", path, a.IsNil(), b.IsNil())
		}
		if !a.IsNil() {
			return compare(a.Elem(), b.Elem(), path+"*")
		}
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return fmt.Sprintf("%s: nil %v len %d, decoded nil %v len %d", path, a.IsNil(), a.Len(), b.IsNil(), b.Len())
		}
		fallthrough
	case reflect.Array:
		for i := range a.Len() {
			if d := compare(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
	case reflect.Map:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return fmt.Sprintf("%s: nil %v len %d, decoded nil %v len %d", path, a.IsNil(), a.Len(), b.IsNil(), b.Len())
		}
		for it := a.MapRange(); it.Next(); {
			e := b.MapIndex(it.Key())
			if !e.IsValid() {
				return fmt.Sprintf("%s: key %v lost", path, it.Key())
			}
			if d := compare(it.Value(), e, fmt.Sprintf("%s[%v]", path, it.Key())); d != "" {
				return d
			}
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if d := compare(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); d != "" {
				return d
			}
		}
	default:
		if !a.Equal(b) {
			return fmt.Sprintf("%s: %v, decoded %v", path, a, b)
		}
	}
	return ""
}

// addr is the address of a, which may not be addressable: map values are
// copied first.
func addr(a reflect.Value) unsafe.Pointer {
	if a.CanAddr() {
		return a.Addr().UnsafePointer()
	}
	p := reflect.New(a.Type())
	p.Elem().Set(a)
	return p.UnsafePointer()
}
