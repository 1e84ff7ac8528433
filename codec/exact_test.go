package codec_test

import (
	"slices"
	"testing"
	"time"

	"github.com/sluice-data/sluice/codec"
)

// exactly round-trips rows through buffers of exactly the encoding's size,
// encoding into spare capacity of exactly that size too. Under -race,
// checkptr rejects a fast path that forms a pointer past the buffer or the
// rows. (The fast path once did, past a row's last field: restoring a
// checkpoint of int64 sums under -race caught it, TestCheckpointsOnSim in
// actors; these cases did not, the heap's layout allowing, and stay as the
// fast path's edges.)
func exactly[T comparable](t *testing.T, rows []T) {
	t.Helper()
	c, err := codec.For[T]()
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= len(rows); n++ {
		rs := slices.Clone(rows[:n]) // exactly n rows
		enc := codec.AppendBatch(nil, c, rs)
		again := codec.AppendBatch(make([]byte, 0, len(enc)), c, rs)
		if !slices.Equal(enc, again) {
			t.Fatalf("%T ×%d: encodings differ with an exact buffer", rows[0], n)
		}
		src := slices.Clone(enc) // exactly its length and capacity
		got, err := codec.DecodeBatch(src, c, make([]T, 0, n))
		if err != nil {
			t.Fatalf("%T ×%d: %v", rows[0], n, err)
		}
		if !slices.Equal(got, rs) {
			t.Fatalf("%T ×%d: decoded %v, want %v", rows[0], n, got, rs)
		}
	}
}

func TestExactBuffers(t *testing.T) {
	type ints struct{ A, B int64 }
	type withString struct {
		A int64
		S string
	}
	type withTime struct {
		A int32
		T time.Time
	}
	type withBool struct {
		A int64
		B bool
	}
	exactly(t, []int64{1, -2, 3})
	exactly(t, []int32{1, -2, 3})
	exactly(t, []ints{{1, 2}, {3, 4}, {5, 6}})
	exactly(t, []withString{{1, "a"}, {2, ""}, {3, "a longer string of thirty bytes"}})
	exactly(t, []withTime{{1, time.Unix(5, 6).UTC()}, {2, time.Unix(7, 8).UTC()}})
	exactly(t, []withBool{{1, true}, {2, false}})
	// Large enough to be objects of their own, where one past the end is
	// no longer in the same allocation.
	big := make([]int64, 8192)
	for i := range big {
		big[i] = int64(i)
	}
	large(t, big)
	bigInts := make([]ints, 4096)
	for i := range bigInts {
		bigInts[i] = ints{int64(i), -int64(i)}
	}
	large(t, bigInts)
}

// large round-trips all of rows at once, in buffers of exactly their size.
func large[T comparable](t *testing.T, rows []T) {
	t.Helper()
	c, err := codec.For[T]()
	if err != nil {
		t.Fatal(err)
	}
	enc := codec.AppendBatch(nil, c, rows)
	if again := codec.AppendBatch(make([]byte, 0, len(enc)), c, rows); !slices.Equal(enc, again) {
		t.Fatalf("%T ×%d: encodings differ with an exact buffer", rows[0], len(rows))
	}
	got, err := codec.DecodeBatch(slices.Clone(enc), c, make([]T, 0, len(rows)))
	if err != nil || !slices.Equal(got, rows) {
		t.Fatalf("%T ×%d: decoded %d rows, %v", rows[0], len(rows), len(got), err)
	}
}
