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
			dst = appendOps(dst, o.sub.ops, unsafe.Add(q, i*o.sub.size), depth)
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
		return appendOps(append(dst, 1), o.sub.ops, e, depth+1)
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
			dst = appendOps(dst, o.sub.ops, unsafe.Add(h.data, i*o.sub.size), depth+1)
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
		buf = appendOps(buf, o.sub.ops, k.Addr().UnsafePointer(), depth)
		ends = append(ends, len(buf))
		buf = appendOps(buf, o.val.ops, v.Addr().UnsafePointer(), depth)
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
	sec := t.Unix()
	ns := uint32(t.Nanosecond())
	var off int32
	if t.Location() != time.UTC {
		_, o := t.Zone()
		off = int32(o)
		ns |= zoneFlag
	}
	dst = binary.LittleEndian.AppendUint64(dst, uint64(sec))
	dst = binary.LittleEndian.AppendUint32(dst, ns)
	return binary.LittleEndian.AppendUint32(dst, uint32(off))
}
