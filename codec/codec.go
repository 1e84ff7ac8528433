package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"unsafe"
)

// Fingerprint identifies a type's encoded schema: the FNV-1a 64 hash of a
// canonical description of the type (see the package doc).
type Fingerprint uint64

// String returns f as 16 hex digits.
func (f Fingerprint) String() string { return fmt.Sprintf("%016x", uint64(f)) }

// Codec encodes values of one type. A Codec is safe for concurrent use.
type Codec[T any] interface {
	// Fingerprint identifies T's schema; it is the same in every process built from the same source.
	Fingerprint() Fingerprint
	// Type names T in errors, e.g. "examples.OrderUser".
	Type() string
	// Append appends v's encoding to dst and returns the extended slice.
	Append(dst []byte, v *T) []byte
	// Decode decodes one value from the front of src into v and returns the rest of src.
	Decode(src []byte, v *T) ([]byte, error)
}

var (
	// ErrUnsupported is wrapped by For's errors: the type (or a type
	// inside it) has no encoding.
	ErrUnsupported = errors.New("codec: cannot encode")
	// ErrCorrupt is wrapped by every decoding error but a fingerprint
	// mismatch: truncated input, an invalid byte, trailing bytes.
	ErrCorrupt = errors.New("codec: corrupt input")
	// ErrMismatch is wrapped by *MismatchError.
	ErrMismatch = errors.New("codec: schema mismatch")
)

// MismatchError says that encoded data was written for a schema other than
// the one it is read as. It wraps ErrMismatch.
type MismatchError struct {
	Type      string      // the type read as
	Want, Got Fingerprint // the reader's fingerprint and the data's
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("codec: schema mismatch reading %s: want fingerprint %s, data has %s", e.Type, e.Want, e.Got)
}

// Unwrap returns ErrMismatch.
func (e *MismatchError) Unwrap() error { return ErrMismatch }

// MaxDepth bounds how deeply pointers, slices and maps may nest in a value.
// Decoding deeper input is an error wrapping ErrCorrupt; encoding a deeper
// value (a pointer cycle, most likely) panics.
const MaxDepth = 10_000

// For returns the codec of T: the one registered for T if any, else one
// built for T's structure. It returns an error wrapping ErrUnsupported,
// naming the field, for a type that cannot be encoded. For is meant for
// graph-build time: it reflects over T once per type and caches the result.
//
// The codec's Append panics if the value nests deeper than MaxDepth, or if
// a MarshalBinary inside it fails. Its Decode leaves *v zero on error.
func For[T any]() (Codec[T], error) {
	t := reflect.TypeFor[T]()
	mu.Lock()
	defer mu.Unlock()
	if r, ok := registry[t]; ok {
		return r.codec.(Codec[T]), nil
	}
	if c, ok := typed[t]; ok {
		return c.(Codec[T]), nil
	}
	tc, err := compileLocked(t)
	if err != nil {
		return nil, err
	}
	c := &compiled[T]{tc: tc, fp: fingerprintLocked(t), name: t.String()}
	typed[t] = c
	return c, nil
}

// MustFor is For that panics with For's error.
func MustFor[T any]() Codec[T] {
	c, err := For[T]()
	if err != nil {
		panic(err)
	}
	return c
}

// Register makes c the codec of T, process-wide: For[T] returns c, and
// every type that holds a T (a field, an element, a pointee) encodes it
// with c. T may be an interface type: a field of that interface type is
// then encodable. Register is meant for init; it panics if c is nil or T
// already has a registered codec. Codecs that For returned before keep the
// encoding they had.
//
// A registered codec's Append must write at least one byte per value:
// decoders bound counts by the remaining input assuming so. Its Decode may
// return any error; the decoder wraps it with ErrCorrupt and the field, and
// turns a panic in it into such an error. The fingerprint of a type holding
// a T includes c.Type() and c.Fingerprint().
func Register[T any](c Codec[T]) {
	if c == nil {
		panic("codec: Register of a nil codec")
	}
	t := reflect.TypeFor[T]()
	mu.Lock()
	defer mu.Unlock()
	if _, ok := registry[t]; ok {
		panic(fmt.Sprintf("codec: Register called twice for %s", t))
	}
	name := c.Type()
	registry[t] = registered{
		codec: c,
		desc:  fmt.Sprintf("codec(%q,%s)", name, c.Fingerprint()),
		fn: &funcCodec{
			enc: func(dst []byte, p unsafe.Pointer, _ int) []byte { return c.Append(dst, (*T)(p)) },
			dec: func(src []byte, p unsafe.Pointer, _ int) (rest []byte, err error) {
				defer func() {
					if r := recover(); r != nil {
						rest, err = nil, &decodeError{msg: fmt.Sprintf("codec %s panicked: %v", name, r)}
					}
				}()
				rest, err = c.Decode(src, (*T)(p))
				if err != nil {
					return nil, &decodeError{msg: "codec " + name, err: err}
				}
				if len(rest) > len(src) {
					return nil, &decodeError{msg: fmt.Sprintf("codec %s returned more bytes than it was given", name)}
				}
				return rest, nil
			},
		},
	}
	// Codecs built before may hold T structurally or refuse it.
	clear(built)
	clear(typed)
}

type registered struct {
	codec any // Codec[T]
	desc  string
	fn    *funcCodec
}

var (
	mu       sync.Mutex
	registry = map[reflect.Type]registered{}
	built    = map[reflect.Type]*typeCodec{} // complete codecs, by type
	typed    = map[reflect.Type]any{}        // For's results, Codec[T] by T
)

// compiled is the Codec[T] that For builds from T's structure.
type compiled[T any] struct {
	tc   *typeCodec
	fp   Fingerprint
	name string
}

func (c *compiled[T]) Fingerprint() Fingerprint { return c.fp }
func (c *compiled[T]) Type() string             { return c.name }

func (c *compiled[T]) Append(dst []byte, v *T) []byte {
	return appendValue(dst, c.tc, unsafe.Pointer(v), 0)
}

func (c *compiled[T]) Decode(src []byte, v *T) ([]byte, error) {
	rest, _, err := decodeRows(src, c.tc, unsafe.Pointer(v), 1)
	if err != nil {
		var zero T
		*v = zero
		return nil, c.wrap(err)
	}
	return rest, nil
}

// wrap names c's type in a decoding error.
func (c *compiled[T]) wrap(err error) error {
	if e, ok := err.(*decodeError); ok {
		e.typ = c.name
	}
	return err
}

const (
	magic   = 0xC5 // first byte of every header
	version = 1    // second byte: the wire format's version
	// HeaderSize is the length of AppendHeader's header.
	HeaderSize = 2 + 8
)

// AppendHeader appends the header of a state chunk or batch: the magic byte
// 0xC5, the format version 1, and f as 8 bytes little-endian.
func AppendHeader(dst []byte, f Fingerprint) []byte {
	dst = append(dst, magic, version)
	return binary.LittleEndian.AppendUint64(dst, uint64(f))
}

// ReadHeader checks the header at the front of src and returns the rest. A
// header of another fingerprint than want is a *MismatchError naming typ;
// a missing or unknown header wraps ErrCorrupt.
func ReadHeader(src []byte, want Fingerprint, typ string) ([]byte, error) {
	if len(src) < HeaderSize {
		return nil, fmt.Errorf("%w: reading %s: header needs %d bytes, have %d", ErrCorrupt, typ, HeaderSize, len(src))
	}
	if src[0] != magic {
		return nil, fmt.Errorf("%w: reading %s: no header (first byte %#02x, want %#02x)", ErrCorrupt, typ, src[0], magic)
	}
	if src[1] != version {
		return nil, fmt.Errorf("%w: reading %s: format version %d, this build reads %d", ErrCorrupt, typ, src[1], version)
	}
	if got := Fingerprint(binary.LittleEndian.Uint64(src[2:])); got != want {
		return nil, &MismatchError{Type: typ, Want: want, Got: got}
	}
	return src[HeaderSize:], nil
}

// AppendBatch appends a batch of rows to dst: the header (AppendHeader with
// c's fingerprint), the row count as uvarint, and the rows back to back.
func AppendBatch[T any](dst []byte, c Codec[T], rows []T) []byte {
	dst = AppendHeader(dst, c.Fingerprint())
	dst = binary.AppendUvarint(dst, uint64(len(rows)))
	if s, ok := c.(*compiled[T]); ok { // the common case, without a dynamic call per row
		if len(rows) == 0 {
			return dst
		}
		return appendRows(dst, s.tc, unsafe.Pointer(&rows[0]), len(rows))
	}
	for i := range rows {
		dst = c.Append(dst, &rows[i])
	}
	return dst
}

// DecodeBatch decodes a batch written by AppendBatch, which must fill src,
// appending the rows to rows. A batch of another fingerprint is a
// *MismatchError; truncated, corrupt or trailing input wraps ErrCorrupt. On
// error it returns rows as it was (its spare capacity may be overwritten).
func DecodeBatch[T any](src []byte, c Codec[T], rows []T) ([]T, error) {
	src, err := ReadHeader(src, c.Fingerprint(), c.Type())
	if err != nil {
		return rows, err
	}
	s, isCompiled := c.(*compiled[T])
	per := 1 // a registered codec writes a byte at least
	if isCompiled {
		per = s.tc.min
	}
	v, src, err := readUvarint(src)
	if err == nil {
		err = checkCount(v, len(src), per)
	}
	if err != nil {
		return rows, fmt.Errorf("reading a batch of %s: row count: %w", c.Type(), err)
	}
	n := int(v)
	if n > maxInt-len(rows) {
		return rows, fmt.Errorf("%w: reading a batch of %s: %d rows do not fit after %d", ErrCorrupt, c.Type(), n, len(rows))
	}
	old := len(rows)
	out := slices.Grow(rows, n)[:old+n]
	if n == 0 || per == 0 {
		// rows of a type with no size: encoded as nothing, decoded as zero
		clear(out[old:])
	} else if isCompiled {
		if s.tc.flat < 0 {
			clear(out[old:]) // fast-path decoding sets every field; the others may expect zero
		}
		var r int
		src, r, err = decodeRows(src, s.tc, unsafe.Pointer(&out[old]), n)
		if err != nil {
			clear(out[old:])
			return rows, fmt.Errorf("reading a batch of %s: row %d of %d: %w", c.Type(), r, n, s.wrap(err))
		}
	} else {
		clear(out[old:])
		for i := old; i < len(out); i++ {
			if src, err = c.Decode(src, &out[i]); err != nil {
				clear(out[old:])
				return rows, fmt.Errorf("reading a batch of %s: row %d of %d: %w", c.Type(), i-old, n, err)
			}
		}
	}
	if len(src) != 0 {
		clear(out[old:])
		return rows, fmt.Errorf("%w: reading a batch of %s: %d bytes after %d rows", ErrCorrupt, c.Type(), len(src), n)
	}
	return out, nil
}

const maxInt = int(^uint(0) >> 1)
