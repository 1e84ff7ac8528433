package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"slices"
	"time"
	"unsafe"
)

// appendValue appends the encoding of the value at p, of tc's type.
func appendValue(dst []byte, tc *typeCodec, p unsafe.Pointer, depth int) []byte {
	if tc.flat >= 0 {
		return appendFlat(dst, tc, p, 1)
	}
	return appendOps(dst, tc.ops, p, depth)
}

// slack is the room appendFlat keeps past what it writes: word copies may
// write up to 7 bytes past a run's end, which later bytes overwrite.
const slack = 8

// appendFlat appends the encodings of the n values at p, p+size, ... of
// tc's type, whose ops are all on the fast path. It makes room for all of
// them at once, then writes with no checks.
func appendFlat(dst []byte, tc *typeCodec, p unsafe.Pointer, n int) []byte {
	need := tc.flat*n + slack
	if len(tc.strs) > 0 {
		for r := range n {
			v := unsafe.Add(p, r*tc.size)
			for _, off := range tc.strs {
				l := len(*(*string)(unsafe.Add(v, off)))
				need += l + uvarintLen(l)
			}
		}
	}
	dst = slices.Grow(dst, need)
	start := len(dst)
	base := unsafe.Pointer(unsafe.SliceData(dst[start : start+need])) // checks the room once
	d := base
	ops := tc.ops
	for r := range n {
		v := unsafe.Add(p, r*tc.size)
		for i := range ops {
			o := &ops[i]
			q := unsafe.Add(v, o.off)
			switch o.kind {
			case opCopy:
				type w8 = [8]byte
				switch o.words { // whole words, unrolled
				case 8:
					*(*w8)(unsafe.Add(d, 56)) = *(*w8)(unsafe.Add(q, 56))
					fallthrough
				case 7:
					*(*w8)(unsafe.Add(d, 48)) = *(*w8)(unsafe.Add(q, 48))
					fallthrough
				case 6:
					*(*w8)(unsafe.Add(d, 40)) = *(*w8)(unsafe.Add(q, 40))
					fallthrough
				case 5:
					*(*w8)(unsafe.Add(d, 32)) = *(*w8)(unsafe.Add(q, 32))
					fallthrough
				case 4:
					*(*w8)(unsafe.Add(d, 24)) = *(*w8)(unsafe.Add(q, 24))
					fallthrough
				case 3:
					*(*w8)(unsafe.Add(d, 16)) = *(*w8)(unsafe.Add(q, 16))
					fallthrough
				case 2:
					*(*w8)(unsafe.Add(d, 8)) = *(*w8)(unsafe.Add(q, 8))
					fallthrough
				case 1:
					*(*w8)(d) = *(*w8)(q)
				default:
					copy(unsafe.Slice((*byte)(d), o.n), unsafe.Slice((*byte)(q), o.n))
				}
				d = unsafe.Add(d, o.n)
			case opString:
				s := *(*string)(q)
				l := len(s)
				if l >= 0x80 {
					d = unsafe.Add(d, binary.PutUvarint(unsafe.Slice((*byte)(d), binary.MaxVarintLen64), uint64(l)))
					d = unsafe.Add(d, copy(unsafe.Slice((*byte)(d), l), s))
					continue
				}
				*(*byte)(d) = byte(l)
				d = unsafe.Add(d, 1)
				// Short strings are copied without a call, in pieces that
				// overlap rather than read past the string.
				sp := unsafe.Pointer(unsafe.StringData(s))
				switch {
				case l >= 16:
					for w := 0; w < l-8; w += 8 {
						*(*[8]byte)(unsafe.Add(d, w)) = *(*[8]byte)(unsafe.Add(sp, w))
					}
					*(*[8]byte)(unsafe.Add(d, l-8)) = *(*[8]byte)(unsafe.Add(sp, l-8))
				case l >= 8:
					*(*[8]byte)(d) = *(*[8]byte)(sp)
					*(*[8]byte)(unsafe.Add(d, l-8)) = *(*[8]byte)(unsafe.Add(sp, l-8))
				case l >= 4:
					*(*[4]byte)(d) = *(*[4]byte)(sp)
					*(*[4]byte)(unsafe.Add(d, l-4)) = *(*[4]byte)(unsafe.Add(sp, l-4))
				case l >= 2:
					*(*[2]byte)(d) = *(*[2]byte)(sp)
					*(*[2]byte)(unsafe.Add(d, l-2)) = *(*[2]byte)(unsafe.Add(sp, l-2))
				case l == 1:
					*(*byte)(d) = *(*byte)(sp)
				}
				d = unsafe.Add(d, l)
			case opTime:
				putTime((*[timeSize]byte)(d), (*time.Time)(q))
				d = unsafe.Add(d, timeSize)
			case opBool:
				*(*byte)(d) = *(*byte)(q) // a bool's byte is 0 or 1
				d = unsafe.Add(d, 1)
			}
		}
	}
	return dst[:start+int(uintptr(d)-uintptr(base))]
}

func uvarintLen(n int) int {
	k := 1
	for ; n >= 0x80; n >>= 7 {
		k++
	}
	return k
}

// appendOps appends the encoding of the value at p, as ops describe it.
func appendOps(dst []byte, ops []op, p unsafe.Pointer, depth int) []byte {
	for i := range ops {
		o := &ops[i]
		q := unsafe.Add(p, o.off)
		switch o.kind {
		case opCopy:
			dst = append(dst, unsafe.Slice((*byte)(q), o.n)...)
		case opString:
			s := *(*string)(q)
			if len(s) < 0x80 {
				dst = append(dst, byte(len(s)))
			} else {
				dst = binary.AppendUvarint(dst, uint64(len(s)))
			}
			dst = append(dst, s...)
		case opTime:
			dst = appendTime(dst, (*time.Time)(q))
		case opBool:
			if *(*bool)(q) {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		default:
			dst = appendSlow(dst, o, q, depth)
		}
	}
	return dst
}

// appendSlow is appendOps for the ops off the fast path.
func appendSlow(dst []byte, o *op, q unsafe.Pointer, depth int) []byte {
	switch o.kind {
	case opLE16:
		return binary.LittleEndian.AppendUint16(dst, *(*uint16)(q))
	case opLE32:
		return binary.LittleEndian.AppendUint32(dst, *(*uint32)(q))
	case opLE64:
		return binary.LittleEndian.AppendUint64(dst, *(*uint64)(q))
	case opInt:
		if o.signed {
			return binary.LittleEndian.AppendUint64(dst, uint64(int64(*(*int)(q))))
		}
		return binary.LittleEndian.AppendUint64(dst, uint64(*(*uint)(q)))
	case opFunc:
		return o.fn.enc(dst, q, depth)
	case opArray:
		for i := range o.n {
			dst = appendValue(dst, o.sub, unsafe.Add(q, i*o.sub.size), depth)
		}
		return dst
	}
	if depth >= MaxDepth {
		panic(fmt.Sprintf("codec: encoding %s: value nests deeper than %d (a pointer cycle?)", o.name, MaxDepth))
	}
	switch o.kind {
	case opPtr:
		e := *(*unsafe.Pointer)(q)
		if e == nil {
			return append(dst, 0)
		}
		return appendValue(append(dst, 1), o.sub, e, depth+1)
	case opSlice:
		h := (*sliceHeader)(q)
		if h.data == nil {
			return append(dst, 0)
		}
		dst = appendLen(dst, h.len+1)
		if o.sub.raw {
			return append(dst, unsafe.Slice((*byte)(h.data), h.len*o.sub.size)...)
		}
		if o.sub.size == 0 {
			return dst
		}
		for i := range h.len {
			dst = appendValue(dst, o.sub, unsafe.Add(h.data, i*o.sub.size), depth+1)
		}
		return dst
	case opMap:
		return appendMap(dst, o, q, depth+1)
	}
	panic(fmt.Sprintf("codec: unknown op %d", o.kind))
}

// sliceHeader is the memory of a slice of any type.
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

// appendMap appends the map at q: its length + 1, then its entries in the
// order of their encodings.
func appendMap(dst []byte, o *op, q unsafe.Pointer, depth int) []byte {
	m := reflect.NewAt(o.t, q).Elem()
	if m.IsNil() {
		return append(dst, 0)
	}
	dst = appendLen(dst, m.Len()+1)
	type entry struct{ k, v []byte }
	entries := make([]entry, 0, m.Len())
	var ends []int // where each key's and each value's encoding ends in buf
	var buf []byte
	k := reflect.New(o.t.Key()).Elem()
	v := reflect.New(o.t.Elem()).Elem()
	for it := m.MapRange(); it.Next(); {
		k.SetIterKey(it)
		v.SetIterValue(it)
		buf = appendValue(buf, o.sub, k.Addr().UnsafePointer(), depth)
		ends = append(ends, len(buf))
		buf = appendValue(buf, o.val, v.Addr().UnsafePointer(), depth)
		ends = append(ends, len(buf))
	}
	start := 0
	for i := 0; i < len(ends); i += 2 {
		entries = append(entries, entry{buf[start:ends[i]], buf[ends[i]:ends[i+1]]})
		start = ends[i+1]
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if c := bytes.Compare(a.k, b.k); c != 0 {
			return c
		}
		return bytes.Compare(a.v, b.v)
	})
	for _, e := range entries {
		dst = append(dst, e.k...)
		dst = append(dst, e.v...)
	}
	return dst
}

func appendLen(dst []byte, n int) []byte {
	if n < 0x80 {
		return append(dst, byte(n))
	}
	return binary.AppendUvarint(dst, uint64(n))
}

const (
	timeSize = 16
	zoneFlag = 1 << 31 // in the nanoseconds word: the location is not UTC
)

func appendTime(dst []byte, t *time.Time) []byte {
	var b [timeSize]byte
	putTime(&b, t)
	return append(dst, b[:]...)
}

func putTime(b *[timeSize]byte, t *time.Time) {
	sec := t.Unix()
	ns := uint32(t.Nanosecond())
	var off int32
	if t.Location() != time.UTC {
		_, o := t.Zone()
		off = int32(o)
		ns |= zoneFlag
	}
	binary.LittleEndian.PutUint64(b[:], uint64(sec))
	binary.LittleEndian.PutUint32(b[8:], ns)
	binary.LittleEndian.PutUint32(b[12:], uint32(off))
}
