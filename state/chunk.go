package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/sluice-data/sluice/codec"
)

// Coder encodes values of T: a codec.Codec, as stages builds with
// codec.For. Append appends v's encoding to dst; Decode decodes one value
// from the front of src into v and returns the rest; Fingerprint and Type
// identify T's schema, which every chunk records for each type it holds
// and a restore checks.
type Coder[T any] = codec.Codec[T]

// schema is what a chunk records of a Coder.
type schema interface {
	Fingerprint() codec.Fingerprint
	Type() string
}

// Kind names what a snapshot chunk holds.
type Kind uint8

const (
	KindAggregate Kind = 1 + iota
	KindJoin
	KindWindows
	KindTriggered
	KindLists
)

func (k Kind) String() string {
	switch k {
	case KindAggregate:
		return "aggregate"
	case KindJoin:
		return "join"
	case KindWindows:
		return "windows"
	case KindTriggered:
		return "triggered windows"
	case KindLists:
		return "lists"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Version is the snapshot format's version, written in every chunk.
// Version 2 added the schema headers.
const Version = 2

var (
	// ErrCorrupt: a chunk whose checksum, length or contents are wrong.
	ErrCorrupt = errors.New("state: corrupt snapshot")
	// ErrVersion: a chunk of a format version this build cannot read.
	ErrVersion = errors.New("state: unknown snapshot version")
	// ErrMismatch: a chunk of another kind of state, another number of key
	// groups, or one that overlaps what the state holds.
	ErrMismatch = errors.New("state: snapshot does not fit")
)

var (
	magic      = [4]byte{'S', 'L', 'S', 'T'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// headerLen: magic, version, kind, body length (4 bytes LE), CRC-32C of the
// body (4 bytes LE).
const headerLen = 4 + 1 + 1 + 4 + 4

// startChunk appends a chunk header to dst, to be finished by endChunk, and
// the fields every chunk's body starts with: a codec header
// (codec.AppendHeader: the type's fingerprint) for each type the chunk
// holds, in the order of the kind's Coders, then the number of key groups
// and the range.
func startChunk(dst []byte, kind Kind, max int, r Range, types ...schema) ([]byte, int) {
	at := len(dst)
	dst = append(dst, magic[:]...)
	dst = append(dst, Version, byte(kind), 0, 0, 0, 0, 0, 0, 0, 0)
	for _, t := range types {
		dst = codec.AppendHeader(dst, t.Fingerprint())
	}
	dst = binary.AppendUvarint(dst, uint64(max))
	dst = binary.AppendUvarint(dst, uint64(r.Start))
	dst = binary.AppendUvarint(dst, uint64(r.End))
	return dst, at
}

func endChunk(dst []byte, at int) []byte {
	body := dst[at+headerLen:]
	binary.LittleEndian.PutUint32(dst[at+6:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[at+10:], crc32.Checksum(body, castagnoli))
	return dst
}

// reader decodes a chunk's body; the first error sticks.
type reader struct {
	b   []byte
	err error
}

// openChunk checks src's header and checksum and the schema of each of
// types, and returns a reader of its body, its number of key groups and
// range. A type of another schema is ErrMismatch wrapping a
// *codec.MismatchError, which names the type and both fingerprints.
func openChunk(src []byte, kind Kind, types ...schema) (*reader, int, Range, error) {
	if len(src) < headerLen || [4]byte(src[:4]) != magic {
		return nil, 0, Range{}, fmt.Errorf("%w: no chunk header", ErrCorrupt)
	}
	if src[4] != Version {
		return nil, 0, Range{}, fmt.Errorf("%w: version %d, want %d", ErrVersion, src[4], Version)
	}
	if Kind(src[5]) != kind {
		return nil, 0, Range{}, fmt.Errorf("%w: a %v chunk, not %v", ErrMismatch, Kind(src[5]), kind)
	}
	n := binary.LittleEndian.Uint32(src[6:])
	body := src[headerLen:]
	if uint64(len(body)) != uint64(n) {
		return nil, 0, Range{}, fmt.Errorf("%w: body of %d bytes, header says %d", ErrCorrupt, len(body), n)
	}
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(src[10:]) {
		return nil, 0, Range{}, fmt.Errorf("%w: checksum", ErrCorrupt)
	}
	r := &reader{b: body}
	if types == nil { // ChunkRange: the schemas are not checked
		if n := kind.types() * codec.HeaderSize; len(r.b) >= n {
			r.b = r.b[n:]
		}
	}
	for _, t := range types {
		rest, err := codec.ReadHeader(r.b, t.Fingerprint(), t.Type())
		if errors.Is(err, codec.ErrMismatch) {
			return nil, 0, Range{}, fmt.Errorf("%w: %v chunk: %w", ErrMismatch, kind, err)
		}
		if err != nil {
			return nil, 0, Range{}, fmt.Errorf("%w: %v chunk: %w", ErrCorrupt, kind, err)
		}
		r.b = rest
	}
	max := int(r.uvarint())
	rg := Range{int(r.uvarint()), int(r.uvarint())}
	if r.err == nil && (max < 1 || rg.Start > rg.End || rg.End > max) {
		r.err = fmt.Errorf("%w: %v of %d", ErrCorrupt, rg, max)
	}
	return r, max, rg, r.err
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: truncated", ErrCorrupt)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: truncated", ErrCorrupt)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a count of items of at least one byte each.
func (r *reader) count() int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: count %d over %d bytes left", ErrCorrupt, n, len(r.b))
		return 0
	}
	return int(n)
}

func decode[T any](r *reader, c Coder[T], v *T) {
	if r.err != nil {
		return
	}
	rest, err := c.Decode(r.b, v)
	if err != nil {
		r.err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		return
	}
	r.b = rest
}

func (r *reader) end() error {
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%w: %d bytes after the end", ErrCorrupt, len(r.b))
	}
	return r.err
}

// writeAll writes b to w, for a snapshot's WriteTo.
func writeAll(w io.Writer, b []byte) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

// types returns how many schema headers a chunk of kind k holds.
func (k Kind) types() int {
	if k == KindJoin {
		return 3
	}
	return 2
}

// Cut returns the first chunk of src, which may hold several back to back,
// and the rest.
func Cut(src []byte) (chunk, rest []byte, err error) {
	if len(src) < headerLen || [4]byte(src[:4]) != magic {
		return nil, src, fmt.Errorf("%w: no chunk header", ErrCorrupt)
	}
	n := uint64(binary.LittleEndian.Uint32(src[6:]))
	if n > uint64(len(src)-headerLen) {
		return nil, src, fmt.Errorf("%w: body of %d bytes, %d left", ErrCorrupt, n, len(src)-headerLen)
	}
	return src[:headerLen+int(n)], src[headerLen+int(n):], nil
}

// ChunkRange returns the kind of a chunk and the key groups it holds,
// checking its header and checksum but not its schemas.
func ChunkRange(src []byte) (Kind, Range, error) {
	if len(src) < headerLen {
		return 0, Range{}, fmt.Errorf("%w: no chunk header", ErrCorrupt)
	}
	k := Kind(src[5])
	if k < KindAggregate || k > KindLists {
		return 0, Range{}, fmt.Errorf("%w: unknown kind %v", ErrCorrupt, k)
	}
	_, _, rg, err := openChunk(src, k)
	return k, rg, err
}
