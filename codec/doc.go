// Package codec encodes records to bytes and back: a codec per record type,
// chosen at graph-build time by For[T], for shuffles between workers and for
// state chunks in checkpoints.
//
// For[T] reflects over T once and compiles it to a flat list of field
// operations at fixed offsets, which Append and Decode run over the value's
// memory with no reflection: structs of fixed-size fields, strings and
// time.Time take that fast path (on a little-endian host, adjacent
// fixed-size fields are copied as one run of bytes). Pointers, slices, maps
// and arrays take a general path; Register supplies a codec for a type the
// structure does not serve. A batch of fast-path values is written with one
// room check per value and per string, in a loop that calls no function,
// and read with one length check per value and per string.
//
// Decoded strings of up to 32 bytes are cut from 128-byte chunks that
// consecutive values of a batch share, so that a batch of short strings
// allocates once per chunk, not once per string: a string kept alive keeps
// its chunk, at most 128 bytes, alive (as Go's allocator does for
// allocations under 16 bytes). Longer strings have their own allocations.
//
// The package is deterministic: no clock, no OS, no global randomness. The
// same value encodes to the same bytes in every process built from the same
// source, map entries included.
//
// # Wire format (version 1)
//
// A value is its fields in declaration order, nested structs inline, with no
// tags, names or padding. Every field is encoded, unexported and blank ones
// too: what is in memory is what arrives.
//
//   - bool: one byte, 0 or 1.
//   - int8, int16, int32, int64, the unsigned ones, float32, float64: the
//     value's bits, little-endian, in as many bytes as the type is wide;
//     int, uint and uintptr always take 8 bytes. Floats keep their bits:
//     NaN payloads, -0 and ±Inf survive. complex64 and complex128 are their
//     real then imaginary parts.
//   - string: its length as uvarint, then its bytes, UTF-8 or not.
//   - time.Time: 16 bytes: the Unix seconds (int64 LE); the nanoseconds
//     (uint32 LE) with bit 31 set unless the location is UTC; the zone
//     offset in seconds east of UTC (int32 LE; 0 for UTC). Like
//     time.Time.MarshalBinary, it keeps the instant and the offset, not the
//     Location or the zone's name, and drops the monotonic reading: a
//     decoded time is Equal to the encoded one and has its offset, in UTC
//     or in a time.FixedZone with no name. The zero Time decodes to itself.
//   - pointer: 0 for nil, or 1 then the pointee. Pointees are encoded by
//     value: sharing between pointers is not kept, and a cycle panics.
//   - slice: 0 for nil, or the length + 1 as uvarint then the elements; nil
//     and empty slices both survive. []byte and slices of other fixed-size
//     elements are their bytes.
//   - array: its elements, no length.
//   - map: 0 for nil, or the length + 1 as uvarint then key, value, key,
//     value, ... ordered by the bytes of each key's encoding (then of the
//     value's, for keys like NaN that repeat).
//   - a type with a codec given to Register: that codec's bytes.
//   - a type whose pointer has MarshalBinary and UnmarshalBinary (methods
//     of its own, not promoted from an embedded field): the length of
//     MarshalBinary's result as uvarint, then the result.
//
// Channels, functions, unsafe.Pointer and interfaces (unless registered)
// have no encoding: For refuses them with ErrUnsupported, naming the field.
// Uvarints must be minimal and every byte is checked, so a value has exactly
// one encoding: encode, decode and encode again gives the same bytes.
//
// A batch (AppendBatch) and a state chunk start with a header
// (AppendHeader): the byte 0xC5, the format version 1, and the type's
// Fingerprint (8 bytes LE). A batch follows it with the row count as uvarint
// and the rows back to back.
//
// # Fingerprints
//
// A Fingerprint is the FNV-1a 64 hash of the format version and a canonical
// description of the type as encoded: struct field names in order, each
// field's kind and width, nested types (recursive types refer back by
// depth), and for a registered codec its Type and Fingerprint. Type names
// are not part of it, so a type renamed or moved keeps its fingerprint, and
// types that encode alike hash alike (int and int64 among them). A reader
// refuses data of another fingerprint with a *MismatchError.
//
// # Decoding untrusted input
//
// Decoding never panics on bad input, never reads past it, and never trusts
// a length: every count is bounded by the bytes left (a value takes at
// least one byte, or none if its type has no size), so a corrupt length
// cannot allocate more than a small multiple of the input. Nesting is
// bounded by MaxDepth. Errors wrap ErrCorrupt and say which type and field
// failed.
package codec
