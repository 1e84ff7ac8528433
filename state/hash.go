package state

import (
	"fmt"
	"math"
	"math/bits"
	"reflect"
)

// Mix64 is SplitMix64's finaliser: a bijection that spreads every input bit.
func Mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Seed derives a table's seed from the job's seed and a salt of the
// table's own (its stage's ID): tables that pass keys to one another (a
// pre-combiner's and its aggregate's) must have different salts, or keys
// iterated out of one arrive in the other sorted by slot and pile up in one
// cluster.
func Seed(job uint64, salt int) uint64 {
	return Mix64(job ^ Mix64(uint64(salt)+0x9e3779b97f4a7c15))
}

// hashFunc returns the table hash of K: fixed (no seed: a table mixes its
// seed in after) and the same in every process. Integers hash to
// themselves (the table's mix spreads them), strings through a
// multiply-mix over 8-byte words, and other comparable types field by
// field through reflect; a key that holds a pointer, channel or interface
// holding one hashes its address, which is the same within a process only.
func hashFunc[K comparable]() func(K) uint64 {
	var zero K
	var f any
	switch any(zero).(type) {
	case int:
		f = func(k int) uint64 { return uint64(k) }
	case int64:
		f = func(k int64) uint64 { return uint64(k) }
	case uint64:
		f = func(k uint64) uint64 { return k }
	case uint:
		f = func(k uint) uint64 { return uint64(k) }
	case int32:
		f = func(k int32) uint64 { return uint64(uint32(k)) }
	case uint32:
		f = func(k uint32) uint64 { return uint64(k) }
	case string:
		f = func(k string) uint64 { return HashString(k, 0) }
	}
	if f != nil {
		return f.(func(K) uint64)
	}
	if h := reflectHash(reflect.TypeFor[K]()); h != nil {
		return func(k K) uint64 { return h(reflect.ValueOf(&k).Elem(), 0x243f6a8885a308d3) }
	}
	return func(k K) uint64 { return HashString(fmt.Sprintf("%#v", k), 0) }
}

const (
	hashM1 = 0xa0761d6478bd642f
	hashM2 = 0xe7037ed1a0b428db
	hashM3 = 0x8ebc6af09c88c6e3
)

func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// HashString hashes s with seed (wyhash's multiply-mix over 8-byte words).
func HashString(s string, seed uint64) uint64 {
	h := seed ^ hashM1 ^ uint64(len(s))*hashM3
	for len(s) >= 16 {
		h = mum(le64(s)^hashM1^h, le64(s[8:])^hashM2)
		s = s[16:]
	}
	if len(s) >= 8 {
		h = mum(le64(s)^hashM1^h, hashM2)
		s = s[8:]
	}
	if len(s) > 0 {
		var w uint64
		for i := 0; i < len(s); i++ {
			w |= uint64(s[i]) << (8 * i)
		}
		h = mum(w^hashM2^h, hashM1)
	}
	return mum(h^hashM3, hashM2^uint64(len(s)))
}

func mixIn(h, x uint64) uint64 { return mum(h^x, hashM1) }

// reflectHash returns a hash of values of t consistent with ==, or nil
// when t is not comparable.
func reflectHash(t reflect.Type) func(v reflect.Value, h uint64) uint64 {
	switch t.Kind() {
	case reflect.Bool:
		return func(v reflect.Value, h uint64) uint64 {
			if v.Bool() {
				return mixIn(h, 1)
			}
			return mixIn(h, 2)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return func(v reflect.Value, h uint64) uint64 { return mixIn(h, uint64(v.Int())) }
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return func(v reflect.Value, h uint64) uint64 { return mixIn(h, v.Uint()) }
	case reflect.Float32, reflect.Float64:
		return func(v reflect.Value, h uint64) uint64 { return mixIn(h, floatBits(v.Float())) }
	case reflect.Complex64, reflect.Complex128:
		return func(v reflect.Value, h uint64) uint64 {
			c := v.Complex()
			return mixIn(mixIn(h, floatBits(real(c))), floatBits(imag(c)))
		}
	case reflect.String:
		return func(v reflect.Value, h uint64) uint64 { return HashString(v.String(), h) }
	case reflect.Array:
		e := reflectHash(t.Elem())
		if e == nil {
			return nil
		}
		n := t.Len()
		return func(v reflect.Value, h uint64) uint64 {
			for i := range n {
				h = e(v.Index(i), h)
			}
			return h
		}
	case reflect.Struct:
		type field struct {
			i int
			h func(reflect.Value, uint64) uint64
		}
		var fs []field
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Name == "_" {
				continue // == ignores blank fields
			}
			h := reflectHash(f.Type)
			if h == nil {
				return nil
			}
			fs = append(fs, field{i, h})
		}
		return func(v reflect.Value, h uint64) uint64 {
			for _, f := range fs {
				h = f.h(v.Field(f.i), h)
			}
			return h
		}
	case reflect.Pointer, reflect.Chan, reflect.UnsafePointer:
		return func(v reflect.Value, h uint64) uint64 { return mixIn(h, uint64(v.Pointer())) }
	case reflect.Interface:
		return func(v reflect.Value, h uint64) uint64 {
			if v.IsNil() {
				return mixIn(h, 3)
			}
			e := v.Elem()
			if !e.Type().Comparable() {
				panic(fmt.Sprintf("runtime error: hash of unhashable type %v", e.Type()))
			}
			eh := reflectHash(e.Type())
			return eh(e, HashString(e.Type().String(), h))
		}
	}
	return nil
}

// floatBits gives equal floats (0 and -0) equal bits.
func floatBits(f float64) uint64 {
	if f == 0 {
		return 0
	}
	return math.Float64bits(f)
}

func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
