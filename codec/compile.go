package codec

import (
	"encoding"
	"encoding/binary"
	"fmt"
	"reflect"
	"strconv"
	"time"
	"unsafe"
)

// A typeCodec is the compiled encoding of one type: operations on a
// value's memory at fixed offsets. It is immutable once compileLocked
// returns it.
type typeCodec struct {
	t    reflect.Type
	ops  []op
	min  int  // the fewest bytes a value encodes to; 0 only for a type of no size
	size int  // t.Size()
	raw  bool // the value's memory is its encoding: ops is one opCopy of size bytes
	// flat is how many bytes the ops write besides strings' lengths and
	// bytes, if every op is on the fast path (opCopy, opString, opBool,
	// opTime); else -1. segs are the ops as the fast path runs them
	// (putFlat, getFlat); strs are the strings' offsets; rowMax
	// bounds what a value writes besides its strings' bytes, slack
	// included.
	flat   int
	segs   []flatSeg
	strs   []uintptr
	rowMax int
}

// A flatSeg is a step of the fast path: a run of fixed-size fields copied
// as bytes, then a field that is not copied (a string, a time.Time, a
// bool), or none.
type flatSeg struct {
	off   uintptr // the run's offset in the value
	n     int     // the run's length in bytes, maybe 0
	words int     // putFlat copies the run as this many 8-byte words (up to 8); -1: it leaves the value to appendOps
	kind  opKind  // the field after the run: opString, opTime, opBool; opCopy for none
	at    uintptr // its offset
	rest  int     // the fewest bytes the value takes after that field (getFlat's bound)
}

type opKind uint8

const (
	opCopy   opKind = iota // n bytes verbatim: fixed-size fields on a little-endian host, and bytes
	opLE16                 // fixed-size fields on a big-endian host
	opLE32                 //
	opLE64                 //
	opInt                  // int or uint of 4 bytes (a 32-bit host): 8 bytes, range-checked
	opBool                 // one byte, 0 or 1
	opString               // uvarint length, bytes
	opTime                 // time.Time, 16 bytes
	opPtr                  // sub is the pointee's codec; t the pointee's type
	opSlice                // sub is the element's codec; t the slice type
	opArray                // n elements of sub
	opMap                  // sub and val are the key's and value's codecs; t the map type
	opFunc                 // fn: a registered codec or a BinaryMarshaler
)

// An op encodes one field (or a run of adjacent fixed-size fields) of a
// value at offset off.
type op struct {
	kind   opKind
	signed bool // opInt
	n      int  // opCopy: bytes; opArray: elements
	off    uintptr
	sub    *typeCodec
	val    *typeCodec
	fn     *funcCodec
	t      reflect.Type
	name   string // the field's path from the compiled type, for errors
}

// encFunc and decFunc encode and decode the value at p; depth is how deeply
// p is nested in pointers, slices and maps.
type (
	encFunc func(dst []byte, p unsafe.Pointer, depth int) []byte
	decFunc func(src []byte, p unsafe.Pointer, depth int) ([]byte, error)
)

// funcCodec is a type encoded by functions: a registered codec, or the
// type's MarshalBinary and UnmarshalBinary.
type funcCodec struct {
	enc encFunc
	dec decFunc
}

var (
	timeType          = reflect.TypeFor[time.Time]()
	marshalerType     = reflect.TypeFor[encoding.BinaryMarshaler]()
	appenderType      = reflect.TypeFor[encoding.BinaryAppender]()
	unmarshalerType   = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	littleEndian      = func() bool { x := uint16(1); return *(*byte)(unsafe.Pointer(&x)) == 1 }()
	runs              = littleEndian // copy fixed-size fields as bytes; tests turn it off to check the other path
	maxInlineArrayLen = 16           // arrays up to this long are compiled inline, element by element
)

// compileLocked returns the codec of t, building it and the codecs of the
// types inside it if need be. mu must be held.
func compileLocked(t reflect.Type) (*typeCodec, error) {
	if tc := built[t]; tc != nil {
		return tc, nil
	}
	s := &session{root: t, new: map[reflect.Type]*typeCodec{}}
	tc, err := s.compile(t, "")
	if err != nil {
		return nil, err
	}
	// Only a whole success is kept: a codec built on the way may refer to
	// one whose compilation failed.
	for t, c := range s.new {
		built[t] = c
	}
	return tc, nil
}

// A session compiles one type and those inside it; new holds the codecs
// it built, those in progress included (a recursive type refers to itself).
type session struct {
	root reflect.Type
	new  map[reflect.Type]*typeCodec
}

func (s *session) compile(t reflect.Type, path string) (*typeCodec, error) {
	if tc := built[t]; tc != nil {
		return tc, nil
	}
	if tc := s.new[t]; tc != nil {
		return tc, nil
	}
	tc := &typeCodec{t: t, size: int(t.Size()), min: minSize(t)}
	s.new[t] = tc
	ops, err := s.flatten(nil, t, 0, path, "")
	if err != nil {
		return nil, err
	}
	tc.ops = mergeRuns(ops)
	tc.raw = len(tc.ops) == 1 && tc.ops[0].kind == opCopy && tc.ops[0].off == 0 && tc.ops[0].n == tc.size
	if tc.min == 0 {
		tc.ops = nil // a type of no size: nothing to encode
	}
	tc.flat, tc.segs = flatSegs(tc.ops)
	setWords(tc.segs, tc.size)
	for _, g := range tc.segs {
		if g.kind == opString {
			tc.strs = append(tc.strs, g.at)
		}
	}
	tc.rowMax = tc.flat + len(tc.strs)*binary.MaxVarintLen64 + slack
	return tc, nil
}

// flatSegs returns how many bytes ops write besides strings' lengths and
// bytes, and ops as segments, if every op is on the fast path; else -1 and
// nil.
func flatSegs(ops []op) (int, []flatSeg) {
	var segs []flatSeg
	flat := 0
	g := flatSeg{kind: opCopy}
	for _, o := range ops {
		switch o.kind {
		case opCopy:
			if g.n > 0 { // a run after a run: padding between them
				segs = append(segs, g)
				g = flatSeg{kind: opCopy}
			}
			g.off, g.n = o.off, o.n
			flat += o.n
			continue
		case opBool:
			flat++
		case opTime:
			flat += timeSize
		case opString:
		default:
			return -1, nil
		}
		g.kind, g.at = o.kind, o.off
		segs = append(segs, g)
		g = flatSeg{kind: opCopy}
	}
	if g.n > 0 {
		segs = append(segs, g)
	}
	return flat, segs
}

// setWords sets the segments' words and rest, for a value of size bytes:
// a run's words read only inside the value.
func setWords(segs []flatSeg, size int) {
	rest := 0
	for i := len(segs) - 1; i >= 0; i-- {
		g := &segs[i]
		g.rest = rest
		switch g.kind {
		case opString, opBool:
			rest++
		case opTime:
			rest += timeSize
		}
		rest += g.n
		g.words = -1
		if w := (g.n + 7) / 8; w <= 8 && int(g.off)+w*8 <= size {
			g.words = w
		}
	}
}

// flatten appends the ops of a value of type t at offset off, nested
// structs and short arrays inline. path names the value in the type being
// compiled (the ops' names), at names that type in the root type (for For's
// errors).
func (s *session) flatten(ops []op, t reflect.Type, off uintptr, at, path string) ([]op, error) {
	full := joinPath(at, path)
	if r, ok := registry[t]; ok {
		return append(ops, op{kind: opFunc, off: off, fn: r.fn, name: path}), nil
	}
	if t == timeType {
		return append(ops, op{kind: opTime, off: off, name: path}), nil
	}
	if fn := marshalerCodec(t); fn != nil {
		return append(ops, op{kind: opFunc, off: off, fn: fn, name: path}), nil
	}
	switch t.Kind() {
	case reflect.Bool:
		return append(ops, op{kind: opBool, off: off, name: path}), nil
	case reflect.Int8, reflect.Uint8:
		return append(ops, fixed(1, off, path)), nil
	case reflect.Int16, reflect.Uint16:
		return append(ops, fixed(2, off, path)), nil
	case reflect.Int32, reflect.Uint32, reflect.Float32:
		return append(ops, fixed(4, off, path)), nil
	case reflect.Int64, reflect.Uint64, reflect.Float64:
		return append(ops, fixed(8, off, path)), nil
	case reflect.Int, reflect.Uint, reflect.Uintptr:
		if t.Size() == 8 {
			return append(ops, fixed(8, off, path)), nil
		}
		return append(ops, op{kind: opInt, signed: t.Kind() == reflect.Int, off: off, name: path}), nil
	case reflect.Complex64:
		return append(ops, fixed(4, off, path), fixed(4, off+4, path)), nil
	case reflect.Complex128:
		return append(ops, fixed(8, off, path), fixed(8, off+8, path)), nil
	case reflect.String:
		return append(ops, op{kind: opString, off: off, name: path}), nil
	case reflect.Pointer:
		sub, err := s.compile(t.Elem(), full)
		if err != nil {
			return nil, err
		}
		return append(ops, op{kind: opPtr, off: off, sub: sub, t: t.Elem(), name: path}), nil
	case reflect.Slice:
		sub, err := s.compile(t.Elem(), full+"[]")
		if err != nil {
			return nil, err
		}
		return append(ops, op{kind: opSlice, off: off, sub: sub, t: t, name: path}), nil
	case reflect.Array:
		if t.Len() == 0 {
			return ops, nil // nothing to encode, whatever the element
		}
		if t.Len() <= maxInlineArrayLen {
			var err error
			for i := range t.Len() {
				ops, err = s.flatten(ops, t.Elem(), off+uintptr(i)*t.Elem().Size(), at, path+"["+strconv.Itoa(i)+"]")
				if err != nil {
					return nil, err
				}
			}
			return ops, nil
		}
		sub, err := s.compile(t.Elem(), full+"[]")
		if err != nil {
			return nil, err
		}
		if sub.raw || sub.size == 0 {
			return append(ops, op{kind: opCopy, n: int(t.Size()), off: off, name: path}), nil
		}
		return append(ops, op{kind: opArray, n: t.Len(), off: off, sub: sub, name: path}), nil
	case reflect.Map:
		key, err := s.compile(t.Key(), full+"[key]")
		if err != nil {
			return nil, err
		}
		val, err := s.compile(t.Elem(), full+"[]")
		if err != nil {
			return nil, err
		}
		return append(ops, op{kind: opMap, off: off, sub: key, val: val, t: t, name: path}), nil
	case reflect.Struct:
		var err error
		for i := range t.NumField() {
			f := t.Field(i)
			ops, err = s.flatten(ops, f.Type, off+f.Offset, at, joinPath(path, f.Name))
			if err != nil {
				return nil, err
			}
		}
		return ops, nil
	case reflect.Interface:
		return nil, s.unsupported(full, t, "an interface: Register a codec for it")
	default: // chan, func, unsafe.Pointer
		return nil, s.unsupported(full, t, "a "+t.Kind().String()+" has no encoding")
	}
}

func (s *session) unsupported(path string, t reflect.Type, why string) error {
	if path == "" {
		return fmt.Errorf("%w %s: %s", ErrUnsupported, s.root, why)
	}
	return fmt.Errorf("%w %s: field %s of type %s: %s", ErrUnsupported, s.root, path, t, why)
}

// fixed is the op of a fixed-size field of n bytes.
func fixed(n int, off uintptr, path string) op {
	if runs || n == 1 {
		return op{kind: opCopy, n: n, off: off, name: path}
	}
	k := map[int]opKind{2: opLE16, 4: opLE32, 8: opLE64}[n]
	return op{kind: k, n: n, off: off, name: path}
}

// mergeRuns merges adjacent opCopy ops into one.
func mergeRuns(ops []op) []op {
	out := ops[:0]
	last := ""
	for _, o := range ops {
		if n := len(out); n > 0 && o.kind == opCopy && out[n-1].kind == opCopy && out[n-1].off+uintptr(out[n-1].n) == o.off {
			out[n-1].n += o.n
			last = o.name
			continue
		}
		if n := len(out); n > 0 && last != "" && last != out[n-1].name {
			out[n-1].name += ".." + last
		}
		last = ""
		out = append(out, o)
	}
	if n := len(out); n > 0 && last != "" && last != out[n-1].name {
		out[n-1].name += ".." + last
	}
	return out
}

func joinPath(outer, inner string) string {
	switch {
	case outer == "":
		return inner
	case inner == "":
		return outer
	case inner[0] == '[':
		return outer + inner
	}
	return outer + "." + inner
}

// minSize is the fewest bytes a value of t encodes to. It recurses only
// into what t holds by value, which cannot be cyclic.
func minSize(t reflect.Type) int {
	if _, ok := registry[t]; ok {
		return 1
	}
	if t == timeType {
		return timeSize
	}
	if isMarshaler(t) {
		return 1
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int8, reflect.Uint8:
		return 1
	case reflect.Int16, reflect.Uint16:
		return 2
	case reflect.Int32, reflect.Uint32, reflect.Float32:
		return 4
	case reflect.Int64, reflect.Uint64, reflect.Float64, reflect.Int, reflect.Uint, reflect.Uintptr, reflect.Complex64:
		return 8
	case reflect.Complex128:
		return 16
	case reflect.String, reflect.Pointer, reflect.Slice, reflect.Map:
		return 1
	case reflect.Array:
		if t.Len() == 0 {
			return 0
		}
		return t.Len() * minSize(t.Elem())
	case reflect.Struct:
		n := 0
		for i := range t.NumField() {
			n += minSize(t.Field(i).Type)
		}
		return n
	}
	return 0
}

// isMarshaler says whether t is encoded by its own MarshalBinary (or
// AppendBinary) and UnmarshalBinary. Methods promoted from an embedded
// field do not count: they would encode the embedded value alone.
func isMarshaler(t reflect.Type) bool {
	if t.Kind() == reflect.Interface {
		return false
	}
	pt := reflect.PointerTo(t)
	if !pt.Implements(unmarshalerType) || !(pt.Implements(marshalerType) || pt.Implements(appenderType)) {
		return false
	}
	if t.Kind() == reflect.Struct {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous && reflect.PointerTo(f.Type).Implements(unmarshalerType) {
				return false
			}
		}
	}
	return true
}

// marshalerCodec is the funcCodec of a type encoded by its MarshalBinary
// and UnmarshalBinary, or nil.
func marshalerCodec(t reflect.Type) *funcCodec {
	if !isMarshaler(t) {
		return nil
	}
	appends := reflect.PointerTo(t).Implements(appenderType)
	return &funcCodec{
		enc: func(dst []byte, p unsafe.Pointer, _ int) []byte {
			v := reflect.NewAt(t, p).Interface()
			if !appends {
				b, err := v.(encoding.BinaryMarshaler).MarshalBinary()
				if err != nil {
					panic(fmt.Sprintf("codec: encoding %s: %v", t, err))
				}
				return append(appendLen(dst, len(b)), b...)
			}
			start := len(dst)
			dst = append(dst, 0) // room for the length, if it takes one byte
			dst, err := v.(encoding.BinaryAppender).AppendBinary(dst)
			if err != nil {
				panic(fmt.Sprintf("codec: encoding %s: %v", t, err))
			}
			n := len(dst) - start - 1
			var l [binary.MaxVarintLen64]byte
			k := binary.PutUvarint(l[:], uint64(n))
			if k > 1 { // move the bytes up to make room
				dst = append(dst, l[1:k]...)
				copy(dst[start+k:], dst[start+1:start+1+n])
			}
			copy(dst[start:], l[:k])
			return dst
		},
		dec: func(src []byte, p unsafe.Pointer, _ int) (rest []byte, err error) {
			n, rest, err := readLen(src, 1)
			if err != nil {
				return nil, err
			}
			v := reflect.NewAt(t, p)
			v.Elem().SetZero()
			defer func() {
				if r := recover(); r != nil {
					rest, err = nil, &decodeError{msg: fmt.Sprintf("%s.UnmarshalBinary panicked: %v", t, r)}
				}
			}()
			if err := v.Interface().(encoding.BinaryUnmarshaler).UnmarshalBinary(rest[:n:n]); err != nil {
				return nil, &decodeError{msg: t.String() + ".UnmarshalBinary", err: err}
			}
			return rest[n:], nil
		},
	}
}
