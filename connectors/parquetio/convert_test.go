package parquetio

import (
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
)

func TestConvOf(t *testing.T) {
	ts := func(u parquet.TimeUnit, utc bool) parquet.Type { return parquet.TimestampAdjusted(u, utc).Type() }
	ms, us, ns := parquet.Millisecond, parquet.Microsecond, parquet.Nanosecond
	dec := func(p, s int, phys parquet.Type) parquet.Type { return parquet.Decimal(s, p, phys).Type() }
	i64, i32, f64 := reflect.TypeFor[int64](), reflect.TypeFor[int32](), reflect.TypeFor[float64]()
	for _, tc := range []struct {
		name     string
		field    reflect.Type
		want     parquet.Type // the record's column type
		file     parquet.Type
		truncate bool
		exact    bool
		kind     directKind
		problem  string // a part of the refusal
	}{
		{"same", i64, parquet.Int(64).Type(), parquet.Int(64).Type(), false, true, directInt64, ""},
		{"time from MICROS not UTC", timeType, ts(ns, true), ts(us, false), false, false, directTime, ""},
		{"time from MILLIS", timeType, ts(ns, true), ts(ms, true), false, false, directTime, ""},
		{"int64 ms from ms not UTC", i64, ts(ms, true), ts(ms, false), false, false, directInt64, ""},
		{"int64 ns from MICROS", i64, ts(ns, true), ts(us, false), false, false, directConv, ""},
		{"int64 ms from MICROS", i64, ts(ms, true), ts(us, false), false, false, 0, "TruncateTimestamps"},
		{"int64 ms from MICROS truncated", i64, ts(ms, true), ts(us, false), true, false, directConv, ""},
		{"time from INT96", timeType, ts(ns, true), parquet.Leaf(parquet.Int96Type).Type(), false, false, directConv, ""},
		{"int64 us from INT96", i64, ts(us, true), parquet.Leaf(parquet.Int96Type).Type(), false, false, 0, "TruncateTimestamps"},
		{"int64 ns from INT96", i64, ts(ns, true), parquet.Leaf(parquet.Int96Type).Type(), false, false, directConv, ""},
		{"time from DATE", timeType, ts(ns, true), parquet.Date().Type(), false, false, directConv, ""},
		{"int32 from DATE", i32, parquet.Int(32).Type(), parquet.Date().Type(), false, false, directInt32, ""},
		{"int64 from INT(8)", i64, parquet.Int(64).Type(), parquet.Int(8).Type(), false, false, directConv, ""},
		{"int16 from INT(8)", reflect.TypeFor[int16](), parquet.Int(16).Type(), parquet.Int(8).Type(), false, false, directConv, ""},
		{"int64 from UINT(32)", i64, parquet.Int(64).Type(), parquet.Uint(32).Type(), false, false, directConv, ""},
		{"int64 from UINT(64)", i64, parquet.Int(64).Type(), parquet.Uint(64).Type(), false, false, 0, "do not all fit"},
		{"int32 from UINT(32)", i32, parquet.Int(32).Type(), parquet.Uint(32).Type(), false, false, 0, "do not all fit"},
		{"uint64 from INT(8)", reflect.TypeFor[uint64](), parquet.Uint(64).Type(), parquet.Int(8).Type(), false, false, 0, "negative"},
		{"int32 from INT(64)", i32, parquet.Int(32).Type(), parquet.Int(64).Type(), false, false, 0, "do not all fit"},
		{"uint64 from UINT(64)", reflect.TypeFor[uint64](), parquet.Uint(64).Type(), parquet.Uint(64).Type(), false, true, directConv, ""},
		{"float64 from DECIMAL(15,2)", f64, parquet.Leaf(parquet.DoubleType).Type(), dec(15, 2, parquet.Int64Type), false, false, directConv, ""},
		{"float64 from DECIMAL(16,2)", f64, parquet.Leaf(parquet.DoubleType).Type(), dec(16, 2, parquet.Int64Type), false, false, 0, "parquetio.Decimal"},
		{"Decimal from DECIMAL(38,10)", decimalType, nil, dec(38, 10, parquet.FixedLenByteArrayType(16)), false, false, directConv, ""},
		{"Decimal from INT64", decimalType, nil, parquet.Int(64).Type(), false, false, 0, "only DECIMAL"},
		{"float64 from FLOAT", f64, parquet.Leaf(parquet.DoubleType).Type(), parquet.Leaf(parquet.FloatType).Type(), false, false, directConv, ""},
		{"float32 from DOUBLE", reflect.TypeFor[float32](), parquet.Leaf(parquet.FloatType).Type(), parquet.Leaf(parquet.DoubleType).Type(), false, false, 0, "no conversion"},
		{"string from INT64", reflect.TypeFor[string](), parquet.String().Type(), parquet.Int(64).Type(), false, false, 0, "no conversion"},
	} {
		fc, problem := convOf(tc.field, tc.want, tc.file, tc.truncate)
		switch {
		case tc.problem != "":
			if !strings.Contains(problem, tc.problem) {
				t.Errorf("%s: got problem %q, want one saying %q", tc.name, problem, tc.problem)
			}
		case problem != "":
			t.Errorf("%s: refused: %s", tc.name, problem)
		case fc.exact != tc.exact || fc.kind != tc.kind || (fc.kind == directConv) != (fc.conv != nil):
			t.Errorf("%s: got exact=%v kind=%d conv=%v, want exact=%v kind=%d", tc.name, fc.exact, fc.kind, fc.conv != nil, tc.exact, tc.kind)
		}
	}
}

func TestUnixTime(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 999, -1001, math.MaxInt64, math.MinInt64, 9_223_372_036_854_775, -9_223_372_036_854_776} {
		if got, want := unixTime(v, int64(time.Microsecond)), time.UnixMicro(v).UTC(); !got.Equal(want) {
			t.Errorf("unixTime(%d, µs) = %v, want %v", v, got, want)
		}
		if got, want := unixTime(v, int64(time.Millisecond)), time.UnixMilli(v).UTC(); !got.Equal(want) {
			t.Errorf("unixTime(%d, ms) = %v, want %v", v, got, want)
		}
		if got, want := unixTime(v, 1), time.Unix(0, v).UTC(); !got.Equal(want) {
			t.Errorf("unixTime(%d, ns) = %v, want %v", v, got, want)
		}
	}
	f := directField{unit: int64(time.Microsecond)}
	f.lo, f.hi = timeRange(f.unit)
	far := time.Date(2500, 1, 1, 0, 0, 0, 1000, time.UTC)
	if got := f.time(far.UnixMicro()); !got.Equal(far) {
		t.Errorf("year 2500 in µs read as %v", got)
	}
}

func TestInt96Parts(t *testing.T) {
	i96 := func(nanos int64, julian uint32) [3]uint32 {
		return [3]uint32{uint32(uint64(nanos)), uint32(uint64(nanos) >> 32), julian}
	}
	for _, tc := range []struct {
		v         [3]uint32
		sec, nsec int64
	}{
		{i96(0, julianUnixEpoch), 0, 0},
		{i96(1, julianUnixEpoch), 0, 1},
		{i96(86_399_999_999_999, julianUnixEpoch-1), -1, 999_999_999}, // Spark: a positive time of the day before
		{i96(-1, julianUnixEpoch), -1, 999_999_999},                   // arrow-go: negative nanoseconds
		{i96(43_200_000_000_000, 0), -julianUnixEpoch*86400 + 43200, 0},
		{i96(0, 2440588+365*1000), 365 * 1000 * 86400, 0}, // beyond int64 nanoseconds
	} {
		sec, nsec := int96Parts(deprecated.Int96(tc.v))
		if sec != tc.sec || nsec != tc.nsec {
			t.Errorf("int96Parts(%v) = %d s %d ns, want %d s %d ns", tc.v, sec, nsec, tc.sec, tc.nsec)
		}
	}
}

func TestTwosComplement(t *testing.T) {
	two63 := new(big.Int).Lsh(big.NewInt(1), 63)
	for _, tc := range []struct {
		in  []byte
		u   int64
		big *big.Int
	}{
		{[]byte{}, 0, nil},
		{[]byte{0x80}, -128, nil},
		{[]byte{0x00, 0x80}, 128, nil},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}, -2, nil},
		{[]byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, math.MaxInt64, nil},
		{append([]byte{0xff, 0xff}, 0x80, 0, 0, 0, 0, 0, 0, 0), math.MinInt64, nil},
		{[]byte{0x00, 0x80, 0, 0, 0, 0, 0, 0, 0}, 0, two63},
		{[]byte{0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0, new(big.Int).Sub(new(big.Int).Neg(two63), big.NewInt(1))},
	} {
		u, b := twosComplement(tc.in)
		if u != tc.u || (b == nil) != (tc.big == nil) || b != nil && b.Cmp(tc.big) != 0 {
			t.Errorf("twosComplement(%x) = %d, %v; want %d, %v", tc.in, u, b, tc.u, tc.big)
		}
	}
}

func TestDecimalString(t *testing.T) {
	huge, _ := new(big.Int).SetString("-123456789012345678901234567890", 10)
	for _, tc := range []struct {
		d    Decimal
		want string
	}{
		{Decimal{Unscaled: 0, Scale: 2}, "0.00"},
		{Decimal{Unscaled: -1250, Scale: 2}, "-12.50"},
		{Decimal{Unscaled: 5, Scale: 3}, "0.005"},
		{Decimal{Unscaled: -5, Scale: 3}, "-0.005"},
		{Decimal{Unscaled: 42, Scale: 0}, "42"},
		{Decimal{Big: huge, Scale: 10}, "-12345678901234567890.1234567890"},
	} {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("%+v.String() = %s, want %s", tc.d, got, tc.want)
		}
	}
	if (Decimal{Unscaled: 1250, Scale: 2}).Cmp(Decimal{Unscaled: 125, Scale: 1}) != 0 {
		t.Error("12.50 and 12.5 differ")
	}
	if f := (Decimal{Unscaled: -1250, Scale: 2}).Float64(); f != -12.5 {
		t.Errorf("Float64 = %v", f)
	}
}

func TestDecimalFilterValues(t *testing.T) {
	col := parquet.Decimal(2, 10, parquet.Int64Type).Type()
	for _, tc := range []struct {
		x    any
		want int64
		bad  string
	}{
		{Decimal{Unscaled: 12345, Scale: 2}, 12345, ""},
		{Decimal{Unscaled: 5, Scale: 0}, 500, ""},
		{Decimal{Unscaled: 12340, Scale: 3}, 1234, ""},
		{7, 700, ""},
		{uint8(3), 300, ""},
		{Decimal{Unscaled: 1, Scale: 3}, 0, "fraction digits"},
		{1.5, 0, "not a float64"},
	} {
		v, err := toValue(col, tc.x)
		switch {
		case tc.bad != "":
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("toValue(%v): got %v, %v; want an error saying %q", tc.x, v, err, tc.bad)
			}
		case err != nil || v.Int64() != tc.want:
			t.Errorf("toValue(%v) = %v, %v; want %d", tc.x, v, err, tc.want)
		}
	}
	if _, err := toValue(parquet.Decimal(2, 30, parquet.FixedLenByteArrayType(16)).Type(), 1); err == nil {
		t.Error("a filter on a DECIMAL in bytes was accepted")
	}
}

func TestFloorDiv(t *testing.T) {
	for _, tc := range []struct{ a, b, want int64 }{{7, 2, 3}, {-7, 2, -4}, {-8, 2, -4}, {0, 5, 0}, {-1, 1000, -1}} {
		if got := floorDiv(tc.a, tc.b); got != tc.want {
			t.Errorf("floorDiv(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
