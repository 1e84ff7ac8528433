package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// decodeError is a decoding error: it wraps ErrCorrupt, and the error of a
// registered codec or UnmarshalBinary if one failed.
type decodeError struct {
	typ  string // the type decoded, set by the Codec
	path string // the field, set as the error returns through the ops
	msg  string
	err  error
}

func (e *decodeError) Error() string {
	s := "codec: corrupt input"
	if e.typ != "" {
		s += " decoding " + e.typ
	}
	if e.path != "" {
		s += ", field " + e.path
	}
	s += ": " + e.msg
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

func (e *decodeError) Unwrap() []error {
	if e.err != nil {
		return []error{ErrCorrupt, e.err}
	}
	return []error{ErrCorrupt}
}

func corrupt(format string, args ...any) *decodeError {
	return &decodeError{msg: fmt.Sprintf(format, args...)}
}

// at names the field of an error returned by a field's decoder.
func at(err error, name string) error {
	if e, ok := err.(*decodeError); ok {
		e.path = joinPath(name, e.path)
	}
	return err
}

func truncated(want, have int) *decodeError {
	return corrupt("truncated: need %d bytes, have %d", want, have)
}

// decodeOps decodes the value at p from the front of src, as ops describe
// it, and returns the rest of src.
func decodeOps(src []byte, ops []op, p unsafe.Pointer, depth int) ([]byte, error) {
	for i := range ops {
		o := &ops[i]
		q := unsafe.Add(p, o.off)
		switch o.kind {
		case opCopy:
			if len(src) < o.n {
				return nil, at(truncated(o.n, len(src)), o.name)
			}
			copyIn(q, unsafe.Pointer(unsafe.SliceData(src)), o.n)
			src = src[o.n:]
		case opString:
			if len(src) > 0 && src[0] < 0x80 && int(src[0]) < len(src) {
				n := int(src[0])
				*(*string)(q) = string(src[1 : 1+n])
				src = src[1+n:]
				continue
			}
			n, rest, err := readLen(src, 1)
			if err != nil {
				return nil, at(err, o.name)
			}
			*(*string)(q) = string(rest[:n])
			src = rest[n:]
		case opTime:
			if len(src) < timeSize {
				return nil, at(truncated(timeSize, len(src)), o.name)
			}
			if err := decodeTime(src[:timeSize], (*time.Time)(q)); err != nil {
				return nil, at(err, o.name)
			}
			src = src[timeSize:]
		case opBool:
			if len(src) == 0 {
				return nil, at(truncated(1, 0), o.name)
			}
			if src[0] > 1 {
				return nil, at(corrupt("bool byte %#02x", src[0]), o.name)
			}
			*(*bool)(q) = src[0] == 1
			src = src[1:]
		default:
			var err error
			src, err = decodeSlow(src, o, q, depth)
			if err != nil {
				return nil, err // named by decodeSlow
			}
		}
	}
	return src, nil
}

// decodeRows decodes n values of tc's type from the front of src into p,
// p+size, ..., and returns the rest of src, or the index of the value that
// failed and its error. Values of a type on the fast path getFlat decodes
// while they are plain (strings under 128 bytes, valid times and bools);
// one it leaves, decodeOps decodes, and errors come from there.
func decodeRows(src []byte, tc *typeCodec, p unsafe.Pointer, n int) ([]byte, int, error) {
	for r := 0; r < n; r++ {
		if tc.flat >= 0 && len(src) > 0 {
			var k int
			k, r = getFlat(tc, src, p, r, n)
			src = src[k:]
			if r == n {
				break
			}
		}
		var err error
		if src, err = decodeOps(src, tc.ops, unsafe.Add(p, r*tc.size), 0); err != nil {
			return nil, r, err
		}
	}
	return src, 0, nil
}

// Decoded strings of up to chunkString bytes are cut from chunks of
// chunkSize bytes, which consecutive values of a batch share: a string
// kept alive keeps its chunk alive, up to chunkSize bytes, much as Go's
// allocator packs allocations under 16 bytes together.
const (
	chunkSize   = 128
	chunkString = 32
)

// getFlat decodes values r to n-1 of tc's type, whose ops are all on the
// fast path, from src into p+r*size, ... It checks for tc.min bytes before
// each value and for a string's bytes before each string, and stops at a
// value it does not take: it returns the bytes of src it decoded and the
// index of the next value.
func getFlat(tc *typeCodec, src []byte, p unsafe.Pointer, r, n int) (int, int) {
	segs := tc.segs
	base := unsafe.Pointer(unsafe.SliceData(src))
	have := uintptr(len(src))
	pos := uintptr(0) // base+pos is read only if pos < have
	var chunk unsafe.Pointer
	var chunkLeft uintptr
	for ; r < n; r++ {
		row := pos
		if have-pos < uintptr(tc.min) {
			return int(row), r
		}
		v := unsafe.Add(p, r*tc.size)
		for i := range segs {
			g := &segs[i]
			q := unsafe.Add(v, g.off)
			s := unsafe.Add(base, pos)
			// The run, exactly: in words, the last overlapping the one before.
			type w8 = [8]byte
			switch k := g.n; {
			case k > 64:
				return int(row), r
			case k >= 8:
				switch k / 8 {
				case 8:
					*(*w8)(unsafe.Add(q, 56)) = *(*w8)(unsafe.Add(s, 56))
					fallthrough
				case 7:
					*(*w8)(unsafe.Add(q, 48)) = *(*w8)(unsafe.Add(s, 48))
					fallthrough
				case 6:
					*(*w8)(unsafe.Add(q, 40)) = *(*w8)(unsafe.Add(s, 40))
					fallthrough
				case 5:
					*(*w8)(unsafe.Add(q, 32)) = *(*w8)(unsafe.Add(s, 32))
					fallthrough
				case 4:
					*(*w8)(unsafe.Add(q, 24)) = *(*w8)(unsafe.Add(s, 24))
					fallthrough
				case 3:
					*(*w8)(unsafe.Add(q, 16)) = *(*w8)(unsafe.Add(s, 16))
					fallthrough
				case 2:
					*(*w8)(unsafe.Add(q, 8)) = *(*w8)(unsafe.Add(s, 8))
					fallthrough
				case 1:
					*(*w8)(q) = *(*w8)(s)
				}
				*(*w8)(unsafe.Add(q, k-8)) = *(*w8)(unsafe.Add(s, k-8))
			case k >= 4:
				*(*[4]byte)(q) = *(*[4]byte)(s)
				*(*[4]byte)(unsafe.Add(q, k-4)) = *(*[4]byte)(unsafe.Add(s, k-4))
			case k >= 2:
				*(*[2]byte)(q) = *(*[2]byte)(s)
				*(*[2]byte)(unsafe.Add(q, k-2)) = *(*[2]byte)(unsafe.Add(s, k-2))
			case k == 1:
				*(*byte)(q) = *(*byte)(s)
			}
			pos += uintptr(g.n)
			// s and q are formed only where a value follows: past the
			// last run they would point past the data or the row, which
			// checkptr (-race) rejects.
			switch g.kind {
			case opString:
				s, q = unsafe.Add(base, pos), unsafe.Add(v, g.at)
				// A length of one byte, and the string's bytes and the
				// value's rest after it.
				l := uintptr(*(*byte)(s))
				if l >= 0x80 || l+uintptr(g.rest) > have-pos-1 {
					return int(row), r
				}
				switch {
				case l == 0:
					*(*string)(q) = ""
				case l <= chunkString:
					if chunkLeft < l {
						b := make([]byte, chunkSize)
						chunk, chunkLeft = unsafe.Pointer(unsafe.SliceData(b)), chunkSize
					}
					// In pieces that overlap rather than pass the string's end.
					d, f := chunk, unsafe.Add(s, 1)
					switch {
					case l >= 16:
						*(*[16]byte)(d) = *(*[16]byte)(f)
						*(*[16]byte)(unsafe.Add(d, l-16)) = *(*[16]byte)(unsafe.Add(f, l-16))
					case l >= 8:
						*(*[8]byte)(d) = *(*[8]byte)(f)
						*(*[8]byte)(unsafe.Add(d, l-8)) = *(*[8]byte)(unsafe.Add(f, l-8))
					case l >= 4:
						*(*[4]byte)(d) = *(*[4]byte)(f)
						*(*[4]byte)(unsafe.Add(d, l-4)) = *(*[4]byte)(unsafe.Add(f, l-4))
					case l >= 2:
						*(*[2]byte)(d) = *(*[2]byte)(f)
						*(*[2]byte)(unsafe.Add(d, l-2)) = *(*[2]byte)(unsafe.Add(f, l-2))
					default:
						*(*byte)(d) = *(*byte)(f)
					}
					*(*string)(q) = unsafe.String((*byte)(d), l)
					if chunkLeft -= l; chunkLeft > 0 { // else the next string takes a new chunk
						chunk = unsafe.Add(chunk, l)
					}
				default:
					*(*string)(q) = string(unsafe.Slice((*byte)(unsafe.Add(s, 1)), l))
				}
				pos += 1 + l
			case opTime:
				s, q = unsafe.Add(base, pos), unsafe.Add(v, g.at)
				b := (*[timeSize]byte)(s)
				sec := int64(binary.LittleEndian.Uint64(b[:]))
				ns := binary.LittleEndian.Uint32(b[8:])
				off := int32(binary.LittleEndian.Uint32(b[12:]))
				if ns&^zoneFlag >= 1e9 {
					return int(row), r
				}
				t := (*time.Time)(q)
				if ns&zoneFlag == 0 {
					if off != 0 {
						return int(row), r
					}
					*t = time.Unix(sec, int64(ns)).UTC()
				} else {
					*t = time.Unix(sec, int64(ns&^zoneFlag)).In(fixedZone(off))
				}
				pos += timeSize
			case opBool:
				s, q = unsafe.Add(base, pos), unsafe.Add(v, g.at)
				b := *(*byte)(s)
				if b > 1 {
					return int(row), r
				}
				*(*bool)(q) = b == 1
				pos++
			}
		}
	}
	return int(pos), n
}

// copyIn copies n bytes from s to d: runs up to 64 bytes in words, exactly
// (the last word overlaps the one before), without a call.
func copyIn(d, s unsafe.Pointer, n int) {
	type w8 = [8]byte
	switch {
	case n > 64:
		copy(unsafe.Slice((*byte)(d), n), unsafe.Slice((*byte)(s), n))
	case n >= 8:
		switch n / 8 {
		case 8:
			*(*w8)(unsafe.Add(d, 56)) = *(*w8)(unsafe.Add(s, 56))
			fallthrough
		case 7:
			*(*w8)(unsafe.Add(d, 48)) = *(*w8)(unsafe.Add(s, 48))
			fallthrough
		case 6:
			*(*w8)(unsafe.Add(d, 40)) = *(*w8)(unsafe.Add(s, 40))
			fallthrough
		case 5:
			*(*w8)(unsafe.Add(d, 32)) = *(*w8)(unsafe.Add(s, 32))
			fallthrough
		case 4:
			*(*w8)(unsafe.Add(d, 24)) = *(*w8)(unsafe.Add(s, 24))
			fallthrough
		case 3:
			*(*w8)(unsafe.Add(d, 16)) = *(*w8)(unsafe.Add(s, 16))
			fallthrough
		case 2:
			*(*w8)(unsafe.Add(d, 8)) = *(*w8)(unsafe.Add(s, 8))
			fallthrough
		case 1:
			*(*w8)(d) = *(*w8)(s)
		}
		*(*w8)(unsafe.Add(d, n-8)) = *(*w8)(unsafe.Add(s, n-8))
	case n >= 4:
		*(*[4]byte)(d) = *(*[4]byte)(s)
		*(*[4]byte)(unsafe.Add(d, n-4)) = *(*[4]byte)(unsafe.Add(s, n-4))
	case n >= 2:
		*(*[2]byte)(d) = *(*[2]byte)(s)
		*(*[2]byte)(unsafe.Add(d, n-2)) = *(*[2]byte)(unsafe.Add(s, n-2))
	case n == 1:
		*(*byte)(d) = *(*byte)(s)
	}
}

// decodeSlow is decodeOps for the ops off the fast path.
func decodeSlow(src []byte, o *op, q unsafe.Pointer, depth int) ([]byte, error) {
	switch o.kind {
	case opLE16, opLE32, opLE64:
		if len(src) < o.n {
			return nil, at(truncated(o.n, len(src)), o.name)
		}
		switch o.kind {
		case opLE16:
			*(*uint16)(q) = binary.LittleEndian.Uint16(src)
		case opLE32:
			*(*uint32)(q) = binary.LittleEndian.Uint32(src)
		default:
			*(*uint64)(q) = binary.LittleEndian.Uint64(src)
		}
		return src[o.n:], nil
	case opInt:
		if len(src) < 8 {
			return nil, at(truncated(8, len(src)), o.name)
		}
		u := binary.LittleEndian.Uint64(src)
		if o.signed {
			if int64(int(int64(u))) != int64(u) {
				return nil, at(corrupt("int %d out of range on this host", int64(u)), o.name)
			}
			*(*int)(q) = int(int64(u))
		} else {
			if uint64(uint(u)) != u {
				return nil, at(corrupt("uint %d out of range on this host", u), o.name)
			}
			*(*uint)(q) = uint(u)
		}
		return src[8:], nil
	case opFunc:
		rest, err := o.fn.dec(src, q, depth)
		if err != nil {
			return nil, at(err, o.name)
		}
		return rest, nil
	case opArray:
		for i := range o.n {
			var err error
			src, err = decodeOps(src, o.sub.ops, unsafe.Add(q, i*o.sub.size), depth)
			if err != nil {
				return nil, at(err, o.name+"["+strconv.Itoa(i)+"]")
			}
		}
		return src, nil
	}
	if depth >= MaxDepth {
		return nil, at(corrupt("nested deeper than %d", MaxDepth), o.name)
	}
	switch o.kind {
	case opPtr:
		if len(src) == 0 {
			return nil, at(truncated(1, 0), o.name)
		}
		switch src[0] {
		case 0:
			*(*unsafe.Pointer)(q) = nil
			return src[1:], nil
		case 1:
			e := reflect.New(o.t).UnsafePointer()
			rest, err := decodeOps(src[1:], o.sub.ops, e, depth+1)
			if err != nil {
				return nil, at(err, o.name)
			}
			*(*unsafe.Pointer)(q) = e
			return rest, nil
		}
		return nil, at(corrupt("pointer tag %#02x", src[0]), o.name)
	case opSlice:
		return decodeSlice(src, o, q, depth+1)
	case opMap:
		return decodeMap(src, o, q, depth+1)
	}
	return nil, at(corrupt("unknown op %d", o.kind), o.name)
}

func decodeSlice(src []byte, o *op, q unsafe.Pointer, depth int) ([]byte, error) {
	v, src, err := readUvarint(src)
	if err != nil {
		return nil, at(err, o.name)
	}
	if v == 0 {
		*(*sliceHeader)(q) = sliceHeader{}
		return src, nil
	}
	if err := checkCount(v-1, len(src), o.sub.min); err != nil {
		return nil, at(err, o.name)
	}
	n := int(v - 1)
	s := reflect.MakeSlice(o.t, n, n)
	data := s.UnsafePointer()
	switch {
	case o.sub.raw:
		size := n * o.sub.size
		copy(unsafe.Slice((*byte)(data), size), src)
		src = src[size:]
	case o.sub.size > 0:
		for i := range n {
			src, err = decodeOps(src, o.sub.ops, unsafe.Add(data, i*o.sub.size), depth)
			if err != nil {
				return nil, at(err, o.name+"["+strconv.Itoa(i)+"]")
			}
		}
	}
	*(*sliceHeader)(q) = sliceHeader{data: data, len: n, cap: n}
	return src, nil
}

func decodeMap(src []byte, o *op, q unsafe.Pointer, depth int) ([]byte, error) {
	v, src, err := readUvarint(src)
	if err != nil {
		return nil, at(err, o.name)
	}
	m := reflect.NewAt(o.t, q).Elem()
	if v == 0 {
		m.SetZero()
		return src, nil
	}
	per := o.sub.min + o.val.min
	if per == 0 && v-1 > 1 {
		return nil, at(corrupt("%d entries in a map whose keys have one value", v-1), o.name)
	}
	if err := checkCount(v-1, len(src), per); err != nil {
		return nil, at(err, o.name)
	}
	n := int(v - 1)
	mv := reflect.MakeMapWithSize(o.t, n)
	k := reflect.New(o.t.Key()).Elem()
	e := reflect.New(o.t.Elem()).Elem()
	var prevK, prevV []byte
	for i := range n {
		kb := src
		src, err = decodeOps(src, o.sub.ops, k.Addr().UnsafePointer(), depth)
		if err != nil {
			return nil, at(err, o.name+"[key]")
		}
		kb = kb[:len(kb)-len(src)]
		vb := src
		src, err = decodeOps(src, o.val.ops, e.Addr().UnsafePointer(), depth)
		if err != nil {
			return nil, at(err, o.name+"[]")
		}
		vb = vb[:len(vb)-len(src)]
		if i > 0 {
			c := bytes.Compare(prevK, kb)
			if c == 0 {
				c = bytes.Compare(prevV, vb)
			}
			if c > 0 {
				return nil, at(corrupt("map entry %d out of order", i), o.name)
			}
		}
		prevK, prevV = kb, vb
		mv.SetMapIndex(k, e)
		if mv.Len() != i+1 {
			return nil, at(corrupt("map entry %d repeats a key", i), o.name)
		}
	}
	m.Set(mv)
	return src, nil
}

// readUvarint reads a minimal uvarint from the front of src.
func readUvarint(src []byte) (uint64, []byte, error) {
	if len(src) > 0 && src[0] < 0x80 {
		return uint64(src[0]), src[1:], nil
	}
	v, n := binary.Uvarint(src)
	switch {
	case n == 0:
		return 0, nil, corrupt("truncated uvarint")
	case n < 0:
		return 0, nil, corrupt("uvarint overflows 64 bits")
	case src[n-1] == 0:
		return 0, nil, corrupt("uvarint not minimal")
	}
	return v, src[n:], nil
}

// checkCount checks that n values of at least per bytes each fit in the
// have bytes left; values of no size (per 0) take none.
func checkCount(n uint64, have, per int) error {
	if per == 0 {
		if n > uint64(maxInt) {
			return corrupt("count %d overflows", n)
		}
		return nil
	}
	if n > uint64(have/per) {
		return corrupt("count %d of values of %d bytes or more, %d bytes left", n, per, have)
	}
	return nil
}

// readLen reads a length n as uvarint and checks that n values of per
// bytes fit in the rest.
func readLen(src []byte, per int) (int, []byte, error) {
	v, rest, err := readUvarint(src)
	if err != nil {
		return 0, nil, err
	}
	if err := checkCount(v, len(rest), per); err != nil {
		return 0, nil, err
	}
	return int(v), rest, nil
}

func decodeTime(b []byte, t *time.Time) error {
	sec := int64(binary.LittleEndian.Uint64(b))
	ns := binary.LittleEndian.Uint32(b[8:])
	off := int32(binary.LittleEndian.Uint32(b[12:]))
	zoned := ns&zoneFlag != 0
	ns &^= zoneFlag
	if ns >= 1e9 {
		return corrupt("time nanoseconds %d out of range", ns)
	}
	if !zoned {
		if off != 0 {
			return corrupt("UTC time with zone offset %d", off)
		}
		*t = time.Unix(sec, int64(ns)).UTC()
		return nil
	}
	*t = time.Unix(sec, int64(ns)).In(fixedZone(off))
	return nil
}

// The locations of decoded times, by offset, so that decoding a time
// allocates none: the offsets of a quarter hour up to a day each way in an
// array, up to maxZones others in a map.
var (
	quarters [2*96 + 1]atomic.Pointer[time.Location]
	zones    sync.Map // int32 → *time.Location
	numZones atomic.Int32
)

const maxZones = 1024

func fixedZone(off int32) *time.Location {
	if off%900 == 0 && off >= -96*900 && off <= 96*900 {
		if l := quarters[off/900+96].Load(); l != nil {
			return l // inlined: the common case
		}
	}
	return newZone(off)
}

func newZone(off int32) *time.Location {
	if off%900 == 0 && off >= -96*900 && off <= 96*900 {
		q := &quarters[off/900+96]
		if l := q.Load(); l != nil {
			return l
		}
		l := time.FixedZone("", int(off))
		if q.CompareAndSwap(nil, l) {
			return l
		}
		return q.Load()
	}
	if l, ok := zones.Load(off); ok {
		return l.(*time.Location)
	}
	l := time.FixedZone("", int(off))
	if numZones.Add(1) <= maxZones {
		if prev, loaded := zones.LoadOrStore(off, l); loaded {
			return prev.(*time.Location)
		}
	}
	return l
}
