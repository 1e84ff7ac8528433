package state

import (
	"math"
	"testing"
)

// The table hash is the same in every process and on every platform: a
// change shows here (it changes the order tables emit keys in).
func TestHashStable(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want uint64
	}{{"sluice", 0x7786056bf379ad80}, {"a key of some thirty-seven characters", 0x51d494a9f3f6dbf2}} {
		if got := HashString(tc.s, 0); got != tc.want {
			t.Errorf("HashString(%q, 0) = %#x, want %#x: the hash changed", tc.s, got, tc.want)
		}
	}
	if HashString("a", 0) == HashString("", 0) || HashString("a", 0) == HashString("a", 1) {
		t.Error("strings or seeds collide")
	}
}

type pair struct {
	A int32
	B string
	_ int64
	F float64
}

// Keys equal under == hash alike: -0 and 0, blank fields, interfaces
// holding equal values.
func TestHashEqualKeys(t *testing.T) {
	hp := hashFunc[pair]()
	if hp(pair{1, "x", 0, 0}) != hp(pair{1, "x", 0, math.Copysign(0, -1)}) {
		t.Error("0 and -0 hash apart")
	}
	if hp(pair{1, "x", 0, 1}) == hp(pair{1, "y", 0, 1}) {
		t.Error("fields ignored")
	}
	ha := hashFunc[any]()
	if ha(int64(5)) != ha(int64(5)) || ha(int64(5)) == ha(int32(5)) || ha("k") != ha("k") {
		t.Error("interface keys hash wrongly")
	}
	h2 := hashFunc[[2]int32]()
	if h2([2]int32{1, 2}) == h2([2]int32{2, 1}) {
		t.Error("array elements hash alike in any order")
	}
	defer func() {
		if recover() == nil {
			t.Error("an unhashable interface key did not panic")
		}
	}()
	ha([]int{1})
}
