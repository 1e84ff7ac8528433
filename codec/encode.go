package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"slices"
	"time"
	"unsafe"
)

// appendRows appends the encodings of the n values at p, p+size, ... of
// tc's type.
func appendRows(dst []byte, tc *typeCodec, p unsafe.Pointer, n int) []byte {
	if tc.flat >= 0 {
		return appendFlat(dst, tc, p, n)
	}
	dst = slices.Grow(dst, n*tc.min)
	for i := range n {
		dst = appendOps(dst, tc.ops, unsafe.Add(p, i*tc.size), 0)
	}
	return dst
}

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
// tc's type, whose ops are all on the fast path. It writes into dst's
// spare capacity while each value surely fits, checking once per value and
// once per string; when one may not, it counts the bytes the rest take,
// makes room for them at once and writes them with no checks.
//
// putFlat writes the values in a loop that calls no function, which keeps
// its state in registers; a value with a field that needs a call (a long
// string, a long run, a time in a zone not yet seen) it leaves to
// appendOps.
func appendFlat(dst []byte, tc *typeCodec, p unsafe.Pointer, n int) []byte {
	var zones zoneCache
	exact := false // dst has room for the rest
	for r := 0; r < n; {
		base := unsafe.Pointer(unsafe.SliceData(dst[:cap(dst)]))
		limit := uintptr(cap(dst))
		if exact {
			limit = ^uintptr(0) >> 1
		}
		var stop int
		if uintptr(len(dst)) < limit { // else d would point past the buffer
			var d unsafe.Pointer
			r, d, stop = putFlat(tc, base, unsafe.Add(base, len(dst)), limit, p, r, n, &zones)
			dst = dst[:uintptr(d)-uintptr(base)]
		} else {
			stop = putFull
		}
		switch stop {
		case putFull: // value r may not fit: make room for all the rest
			need := slack
			for w := r; w < n; w++ {
				v := unsafe.Add(p, w*tc.size)
				need += tc.flat
				for _, off := range tc.strs {
					l := len(*(*string)(unsafe.Add(v, off)))
					need += l + uvarintLen(l)
				}
			}
			dst = slices.Grow(dst, need)
			exact = true
		case putValue:
			v := unsafe.Add(p, r*tc.size)
			for i := range tc.segs {
				if g := &tc.segs[i]; g.kind == opTime {
					zones.add((*time.Time)(unsafe.Add(v, g.at)))
				}
			}
			dst = appendOps(dst, tc.ops, v, 0)
			r++
		}
	}
	return dst
}

// putFlat's results, besides putDone.
const (
	putDone  = iota // every value is written
	putFull         // value r may not fit before limit
	putValue        // value r has a field that needs a call
)

// putFlat writes the encodings of values r to n-1 of those at p, p+size,
// ..., at d, while they surely fit in the first limit bytes at base: it
// checks for tc.rowMax bytes before each value, and for that many and a
// string's bytes before each string. It returns the value it stopped at,
// where its encoding goes, and why it stopped. It calls no function.
func putFlat(tc *typeCodec, base, d unsafe.Pointer, limit uintptr, p unsafe.Pointer, r, n int, zones *zoneCache) (int, unsafe.Pointer, int) {
	rowMax := uintptr(tc.rowMax)
	segs := tc.segs
	for ; r < n; r++ {
		row := d
		// Strictly more room than a row takes, so that d never reaches
		// the end of the buffer (one past it may be another allocation).
		if limit-(uintptr(d)-uintptr(base)) <= rowMax {
			return r, row, putFull
		}
		v := unsafe.Add(p, r*tc.size)
		for i := range segs {
			g := &segs[i]
			q := unsafe.Add(v, g.off)
			type w8 = [8]byte
			switch g.words { // whole words, unrolled
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
			case 0:
			default:
				return r, row, putValue
			}
			d = unsafe.Add(d, g.n)
			// q is formed only where a value follows: past the last run
			// it would point past the row, which checkptr (-race) rejects.
			switch g.kind {
			case opString:
				q = unsafe.Add(v, g.at)
				s := *(*string)(q)
				l := len(s)
				if uintptr(l)+rowMax >= limit-(uintptr(d)-uintptr(base)) {
					return r, row, putFull
				}
				// Short strings are copied without a call, in pieces that
				// overlap rather than read past the string.
				sp := unsafe.Pointer(unsafe.StringData(s))
				*(*byte)(d) = byte(l)
				d = unsafe.Add(d, 1)
				switch {
				case l >= 0x80:
					return r, row, putValue
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
				q = unsafe.Add(v, g.at)
				t := (*time.Time)(q)
				sec := t.Unix()
				ns := uint32(t.Nanosecond())
				off := int32(0)
				if loc := t.Location(); loc != time.UTC {
					z := &zones[zoneSlot(loc)]
					if z.loc != loc || sec < z.start || sec >= z.end {
						return r, row, putValue
					}
					off = z.off
					ns |= zoneFlag
				}
				b := (*[timeSize]byte)(d)
				binary.LittleEndian.PutUint64(b[:], uint64(sec))
				binary.LittleEndian.PutUint32(b[8:], ns)
				binary.LittleEndian.PutUint32(b[12:], uint32(off))
				d = unsafe.Add(d, timeSize)
			case opBool:
				q = unsafe.Add(v, g.at)
				*(*byte)(d) = *(*byte)(q) // a bool's byte is 0 or 1
				d = unsafe.Add(d, 1)
			}
		}
	}
	return r, d, putDone
}

// A zoneCache holds the offsets of a few locations, each for the span of
// Unix seconds in which it holds, so that putFlat writes times outside UTC
// without calling Time.Zone.
type zoneCache [4]struct {
	loc        *time.Location
	off        int32
	start, end int64 // [start, end)
}

func zoneSlot(loc *time.Location) uintptr {
	return uintptr(unsafe.Pointer(loc)) * 0x9E3779B97F4A7C15 >> 62
}

// add caches the offset of t's location at t, unless t is in UTC.
func (c *zoneCache) add(t *time.Time) {
	loc := t.Location()
	if loc == time.UTC {
		return
	}
	_, off := t.Zone()
	start, end := t.ZoneBounds() // zero if unbounded
	z := &c[zoneSlot(loc)]
	z.loc, z.off, z.start, z.end = loc, int32(off), math.MinInt64, math.MaxInt64
	if !start.IsZero() {
		z.start = start.Unix()
	}
	if !end.IsZero() {
		z.end = end.Unix()
	}
}

// uvarintLen is how many bytes n takes as uvarint.
func uvarintLen(n int) int {
	return 1 + (bits.Len64(uint64(n)|1)-1)/7
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
