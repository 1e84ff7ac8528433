package codec_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/sluice-data/sluice/codec"
)

// fuzzRow holds every kind of field, for FuzzDecode.
type fuzzRow struct {
	A  int32
	B  bool
	S  string
	T  time.Time
	P  *fuzzRow
	L  []uint16
	LS []string
	M  map[int8]string
	Ar [2]float64
	F  float32
}

// FuzzDecode checks that decoding any input never panics, that its errors
// wrap ErrCorrupt or ErrMismatch, and that what decodes encodes back to the
// same bytes (every value has exactly one encoding).
func FuzzDecode(f *testing.F) {
	c := codec.MustFor[fuzzRow]()
	for _, rows := range [][]fuzzRow{
		nil,
		{{}},
		{{A: -1, B: true, S: "s", T: time.Unix(1, 2).In(time.FixedZone("", 3600)), L: []uint16{}, LS: []string{"", "x"},
			M: map[int8]string{1: "a", -1: "b"}, P: &fuzzRow{S: "in"}}, {F: 1.5}},
	} {
		b := codec.AppendBatch(nil, c, rows)
		f.Add(b)
		f.Add(b[codec.HeaderSize+1:])
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rows, err := codec.DecodeBatch(in, c, nil)
		if err != nil {
			if !errors.Is(err, codec.ErrCorrupt) && !errors.Is(err, codec.ErrMismatch) {
				t.Fatalf("DecodeBatch: %v wraps neither ErrCorrupt nor ErrMismatch", err)
			}
		} else if again := codec.AppendBatch(nil, c, rows); !bytes.Equal(again, in) {
			t.Fatalf("batch encoded again:\n%x\nwas\n%x", again, in)
		}
		var v fuzzRow
		rest, err := c.Decode(in, &v)
		if err != nil {
			if !errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("Decode: %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := c.Append(nil, &v); !bytes.Equal(again, in[:len(in)-len(rest)]) {
			t.Fatalf("value encoded again:\n%x\nwas\n%x", again, in[:len(in)-len(rest)])
		}
	})
}

// flatRow holds only fields on the fast path, for FuzzDecodeFlat.
type flatRow struct {
	A  int32
	S  string
	B  bool
	T  time.Time
	S2 string
	F  [3]uint16
}

// FuzzDecodeFlat is FuzzDecode for a type that batches decode on the fast
// path.
func FuzzDecodeFlat(f *testing.F) {
	c := codec.MustFor[flatRow]()
	for _, rows := range [][]flatRow{
		nil,
		{{}},
		{{A: -1, B: true, S: "s", T: time.Unix(1, 2).In(time.FixedZone("", 3600)), S2: string(make([]byte, 130))},
			{S: "0123456789abcdef0123456789abcdefX", T: time.Unix(5, 0).UTC(), F: [3]uint16{1, 2, 3}},
			{T: time.Unix(7, 8).In(time.FixedZone("", 5*3600+17))}},
	} {
		b := codec.AppendBatch(nil, c, rows)
		f.Add(b)
		f.Add(b[codec.HeaderSize+1:])
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rows, err := codec.DecodeBatch(in, c, nil)
		if err != nil {
			if !errors.Is(err, codec.ErrCorrupt) && !errors.Is(err, codec.ErrMismatch) {
				t.Fatalf("DecodeBatch: %v wraps neither ErrCorrupt nor ErrMismatch", err)
			}
		} else if again := codec.AppendBatch(nil, c, rows); !bytes.Equal(again, in) {
			t.Fatalf("batch encoded again:\n%x\nwas\n%x", again, in)
		}
	})
}
