package codec_test

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/sluice-data/sluice/codec"
)

// OrderUser is a copy of examples.OrderUser, the output row of W1
// (orders-join).
type OrderUser struct {
	UserID        int64   `parquet:"user_id"`
	OrderID       int64   `parquet:"order_id"`
	TS            int64   `parquet:"ts,timestamp(millisecond)"`
	Amount        float64 `parquet:"amount"`
	Age           int32   `parquet:"age"`
	Country       string  `parquet:"country"`
	LifetimeValue float64 `parquet:"lifetime_value"`
}

// OrderUserTime is a wider W1 row, with a time.Time and more strings.
type OrderUserTime struct {
	OrderID int64
	UserID  int64
	Amount  float64
	Status  string
	Country string
	Ts      time.Time
	Name    string
}

const benchRows = 1024

var (
	countries = []string{"US", "IN", "BR", "GB", "DE", "FR", "JP", "MX", "CA", "ID"}
	statuses  = []string{"paid", "shipped", "refunded", "pending"}
)

func orderUsers() []OrderUser {
	rows := make([]OrderUser, benchRows)
	for i := range rows {
		rows[i] = OrderUser{UserID: int64(i * 7919 % 100_000), OrderID: int64(i), TS: 1_704_067_200_000 + int64(i)*1000,
			Amount: float64(i%1000) / 7, Age: int32(18 + i%60), Country: countries[i%len(countries)], LifetimeValue: float64(i) * 3.25}
	}
	return rows
}

func orderUserTimes() []OrderUserTime {
	zones := []*time.Location{time.UTC, time.FixedZone("", 3600), time.FixedZone("", -5*3600)}
	rows := make([]OrderUserTime, benchRows)
	for i := range rows {
		rows[i] = OrderUserTime{OrderID: int64(i), UserID: int64(i * 7919 % 100_000), Amount: float64(i%1000) / 7,
			Status: statuses[i%len(statuses)], Country: countries[i%len(countries)],
			Ts: time.UnixMilli(1_704_067_200_000 + int64(i)*1000).In(zones[i%len(zones)]), Name: fmt.Sprintf("user-%d", i*7919%100_000)}
	}
	return rows
}

// BenchmarkOrderUser encodes and decodes batches of W1 rows with this
// package, with a hand-written binary.Append loop for the same struct, and
// with encoding/gob (one Encode of the whole batch, its best case). MB/s
// counts each encoder's own bytes; rows/s compares them.
func BenchmarkOrderUser(b *testing.B) {
	rows := orderUsers()
	benchCodecs(b, rows, appendOrderUsers, decodeOrderUsers)
}

// BenchmarkOrderUserTime is BenchmarkOrderUser for the wider row.
func BenchmarkOrderUserTime(b *testing.B) {
	rows := orderUserTimes()
	benchCodecs(b, rows, appendOrderUserTimes, decodeOrderUserTimes)
}

func benchCodecs[T any](b *testing.B, rows []T, hand func([]byte, []T) []byte, handDec func([]byte, []T) ([]T, error)) {
	c := codec.MustFor[T]()
	encodings := map[string]func(dst []byte) []byte{
		"codec": func(dst []byte) []byte { return codec.AppendBatch(dst, c, rows) },
		"hand":  func(dst []byte) []byte { return hand(dst, rows) },
		"gob": func(dst []byte) []byte {
			buf := bytes.NewBuffer(dst)
			if err := gob.NewEncoder(buf).Encode(rows); err != nil {
				b.Fatal(err)
			}
			return buf.Bytes()
		},
	}
	decodings := map[string]func(src []byte, out []T) ([]T, error){
		"codec": func(src []byte, out []T) ([]T, error) { return codec.DecodeBatch(src, c, out) },
		"hand":  handDec,
		"gob": func(src []byte, out []T) ([]T, error) {
			err := gob.NewDecoder(bytes.NewReader(src)).Decode(&out)
			return out, err
		},
	}
	for _, name := range []string{"codec", "hand", "gob"} {
		enc := encodings[name](nil)
		b.Run("encode/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(enc)))
			dst := make([]byte, 0, 2*len(enc))
			n := 0
			for b.Loop() {
				dst = encodings[name](dst[:0])
				n++
			}
			report(b, n, len(enc))
		})
		b.Run("decode/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(enc)))
			out := make([]T, 0, len(rows))
			n := 0
			for b.Loop() {
				var err error
				if out, err = decodings[name](enc, out[:0]); err != nil || len(out) != len(rows) {
					b.Fatalf("%d rows, %v", len(out), err)
				}
				n++
			}
			report(b, n, len(enc))
		})
	}
}

func report(b *testing.B, batches, size int) {
	b.ReportMetric(float64(batches*benchRows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(size)/benchRows, "B/row")
}

// The hand-written loops write what the codec writes, without the header.

func appendOrderUsers(dst []byte, rows []OrderUser) []byte {
	le := binary.LittleEndian
	dst = binary.AppendUvarint(dst, uint64(len(rows)))
	for i := range rows {
		r := &rows[i]
		dst = le.AppendUint64(dst, uint64(r.UserID))
		dst = le.AppendUint64(dst, uint64(r.OrderID))
		dst = le.AppendUint64(dst, uint64(r.TS))
		dst = le.AppendUint64(dst, math.Float64bits(r.Amount))
		dst = le.AppendUint32(dst, uint32(r.Age))
		dst = binary.AppendUvarint(dst, uint64(len(r.Country)))
		dst = append(dst, r.Country...)
		dst = le.AppendUint64(dst, math.Float64bits(r.LifetimeValue))
	}
	return dst
}

var errShort = errors.New("short input")

func decodeOrderUsers(src []byte, rows []OrderUser) ([]OrderUser, error) {
	le := binary.LittleEndian
	n, k := binary.Uvarint(src)
	if k <= 0 || n > uint64(len(src)) {
		return rows, errShort
	}
	src = src[k:]
	for range n {
		var r OrderUser
		if len(src) < 36 {
			return rows, errShort
		}
		r.UserID = int64(le.Uint64(src))
		r.OrderID = int64(le.Uint64(src[8:]))
		r.TS = int64(le.Uint64(src[16:]))
		r.Amount = math.Float64frombits(le.Uint64(src[24:]))
		r.Age = int32(le.Uint32(src[32:]))
		src = src[36:]
		var err error
		if r.Country, src, err = handString(src); err != nil {
			return rows, err
		}
		if len(src) < 8 {
			return rows, errShort
		}
		r.LifetimeValue = math.Float64frombits(le.Uint64(src))
		src = src[8:]
		rows = append(rows, r)
	}
	return rows, nil
}

func handString(src []byte) (string, []byte, error) {
	n, k := binary.Uvarint(src)
	if k <= 0 || n > uint64(len(src)-k) {
		return "", nil, errShort
	}
	return string(src[k : k+int(n)]), src[k+int(n):], nil
}

func appendOrderUserTimes(dst []byte, rows []OrderUserTime) []byte {
	le := binary.LittleEndian
	dst = binary.AppendUvarint(dst, uint64(len(rows)))
	for i := range rows {
		r := &rows[i]
		dst = le.AppendUint64(dst, uint64(r.OrderID))
		dst = le.AppendUint64(dst, uint64(r.UserID))
		dst = le.AppendUint64(dst, math.Float64bits(r.Amount))
		dst = binary.AppendUvarint(dst, uint64(len(r.Status)))
		dst = append(dst, r.Status...)
		dst = binary.AppendUvarint(dst, uint64(len(r.Country)))
		dst = append(dst, r.Country...)
		ns, off := uint32(r.Ts.Nanosecond()), 0
		if r.Ts.Location() != time.UTC {
			_, off = r.Ts.Zone()
			ns |= 1 << 31
		}
		dst = le.AppendUint64(dst, uint64(r.Ts.Unix()))
		dst = le.AppendUint32(dst, ns)
		dst = le.AppendUint32(dst, uint32(int32(off)))
		dst = binary.AppendUvarint(dst, uint64(len(r.Name)))
		dst = append(dst, r.Name...)
	}
	return dst
}

// handZones caches the decoded times' locations, as the codec does.
var handZones = map[int32]*time.Location{}

func decodeOrderUserTimes(src []byte, rows []OrderUserTime) ([]OrderUserTime, error) {
	le := binary.LittleEndian
	n, k := binary.Uvarint(src)
	if k <= 0 || n > uint64(len(src)) {
		return rows, errShort
	}
	src = src[k:]
	for range n {
		var r OrderUserTime
		var err error
		if len(src) < 24 {
			return rows, errShort
		}
		r.OrderID = int64(le.Uint64(src))
		r.UserID = int64(le.Uint64(src[8:]))
		r.Amount = math.Float64frombits(le.Uint64(src[16:]))
		src = src[24:]
		if r.Status, src, err = handString(src); err != nil {
			return rows, err
		}
		if r.Country, src, err = handString(src); err != nil {
			return rows, err
		}
		if len(src) < 16 {
			return rows, errShort
		}
		sec, ns, off := int64(le.Uint64(src)), le.Uint32(src[8:]), int32(le.Uint32(src[12:]))
		src = src[16:]
		if ns&(1<<31) == 0 {
			r.Ts = time.Unix(sec, int64(ns)).UTC()
		} else {
			loc := handZones[off]
			if loc == nil {
				loc = time.FixedZone("", int(off))
				handZones[off] = loc
			}
			r.Ts = time.Unix(sec, int64(ns&^(1<<31))).In(loc)
		}
		if r.Name, src, err = handString(src); err != nil {
			return rows, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// TestHandLoopsMatchCodec checks that the benchmark's hand-written loops
// write the codec's bytes, so that the benchmark compares like with like.
func TestHandLoopsMatchCodec(t *testing.T) {
	ou := orderUsers()
	if got, want := appendOrderUsers(nil, ou), codec.AppendBatch(nil, codec.MustFor[OrderUser](), ou)[codec.HeaderSize:]; !bytes.Equal(got, want) {
		t.Error("OrderUser: the hand-written loop writes other bytes than the codec")
	}
	out := orderUserTimes()
	if got, want := appendOrderUserTimes(nil, out), codec.AppendBatch(nil, codec.MustFor[OrderUserTime](), out)[codec.HeaderSize:]; !bytes.Equal(got, want) {
		t.Error("OrderUserTime: the hand-written loop writes other bytes than the codec")
	}
}
