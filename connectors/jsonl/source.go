package jsonl

import (
	"bufio"
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/sluice-data/sluice/internal/filesplits"
	"github.com/sluice-data/sluice/stages"
)

// Policy says what a source does with a line that does not parse as a T.
// To route bad lines to a dead-letter stream instead, use ReadOrDeadLetter:
// a source has one output, so that policy is a stage of its own.
type Policy int

const (
	// Fail fails the job with a *LineError naming the file and line.
	Fail Policy = iota
)

// String returns the policy's name.
func (p Policy) String() string {
	if p == Fail {
		return "Fail"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ErrNoFiles is wrapped by the error of a source whose pattern matches no
// file.
var ErrNoFiles = errors.New("jsonl: no files match")

// ErrBadLine is matched (errors.Is) by every *LineError.
var ErrBadLine = errors.New("jsonl: line does not parse")

// ErrInvalidUTF8 is matched (errors.Is) by the *LineError of a line that is
// not valid UTF-8, or that escapes a lone surrogate (\ud800 not followed by
// a low surrogate's escape, or a low one alone): encoding/json would decode
// either into U+FFFD without a word. The whole line is checked, fields that
// the record type does not read included.
var ErrInvalidUTF8 = errors.New("jsonl: invalid UTF-8")

// ErrNotRecord is matched (errors.Is) by the *LineError of a line that holds
// null, which encoding/json would decode into a zero record, or a value
// other than an object for a record type read from objects (a struct, a
// map, an interface, or a pointer to one, without a decoding method of its
// own).
var ErrNotRecord = errors.New("jsonl: not a record")

// LineError reports a line that does not parse.
type LineError struct {
	Path string
	Line int64 // 1-based
	// Err is from encoding/json, or matches ErrInvalidUTF8 or ErrNotRecord.
	Err error
}

// Error returns "jsonl: FILE:LINE: REASON".
func (e *LineError) Error() string { return fmt.Sprintf("jsonl: %s:%d: %v", e.Path, e.Line, e.Err) }

// Unwrap returns the decoding error.
func (e *LineError) Unwrap() error { return e.Err }

// Is reports whether target is ErrBadLine.
func (e *LineError) Is(target error) bool { return target == ErrBadLine }

// Read adds a source stage that reads the JSON lines files that pattern
// names (a path, or a filepath.Match glob), one split per file, failing on a
// line that does not parse. The stage is named "jsonl" unless opts name it.
func Read[T any](p *stages.Pipeline, pattern string, opts ...stages.SourceOption) stages.Stream[T] {
	return stages.Read(p, Source[T](pattern, Fail), append([]stages.SourceOption{stages.Name("jsonl")}, opts...)...)
}

// Source returns a source of the JSON lines files that pattern names, one
// split per file in lexical order; policy says what to do with a line that
// does not parse. A pattern without glob characters must name a file; a glob
// must match at least one file (directories are skipped).
func Source[T any](pattern string, policy Policy) stages.Source[T] {
	return source[T]{pattern: pattern, policy: policy}
}

type source[T any] struct {
	pattern string
	policy  Policy
}

func (s source[T]) Splits(context.Context) ([]stages.Split, error) {
	if s.policy != Fail {
		return nil, fmt.Errorf("jsonl: unknown policy %v", s.policy)
	}
	return listFiles(s.pattern)
}

// listFiles makes one split per file that pattern names, in lexical order.
func listFiles(pattern string) ([]stages.Split, error) {
	return filesplits.List("jsonl", pattern, ".jsonl", ErrNoFiles)
}

func (s source[T]) Open(ctx context.Context, _ stages.Instance, sp stages.Split) (stages.Reader[T], error) {
	sc, err := openLines(sp)
	if err != nil {
		return nil, err
	}
	return &reader[T]{ctx: ctx, sc: sc, shape: shapeOf(reflect.TypeFor[T]())}, nil
}

type reader[T any] struct {
	ctx   context.Context
	sc    *scanner
	shape shape
}

func (r *reader[T]) Read(buf []T) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	for n < len(buf) {
		line, err := r.sc.scan()
		if err != nil {
			return n, err
		}
		if line == nil {
			return n, io.EOF
		}
		var zero T
		buf[n] = zero
		if err := decode(line, &buf[n], r.shape); err != nil {
			return n, &LineError{Path: r.sc.path, Line: r.sc.line, Err: err}
		}
		n++
	}
	return n, nil
}

func (r *reader[T]) Close() error { return r.sc.close() }

// position is where a reader is in its file: the byte offset of the next
// line and the number of the last line read.
type position struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Line   int64  `json:"line"`
}

// Position implements stages.Positioner.
func (r *reader[T]) Position() ([]byte, error) { return r.sc.position() }

// OpenAt implements stages.Seeker: the file opens at the byte offset of
// the line after the last one read.
func (s source[T]) OpenAt(ctx context.Context, _ stages.Instance, sp stages.Split, pos []byte) (stages.Reader[T], error) {
	sc, err := openLinesAt(sp, pos)
	if err != nil {
		return nil, err
	}
	return &reader[T]{ctx: ctx, sc: sc, shape: shapeOf(reflect.TypeFor[T]())}, nil
}

func (s *scanner) position() ([]byte, error) {
	return json.Marshal(position{File: s.path, Offset: s.off, Line: s.line})
}

// openLinesAt opens a split at a position a scanner of it returned.
func openLinesAt(sp stages.Split, pos []byte) (*scanner, error) {
	var p position
	if err := json.Unmarshal(pos, &p); err != nil {
		return nil, fmt.Errorf("jsonl: opening %s at %q: %w", sp.Desc, pos, err)
	}
	sc, err := openLines(sp)
	if err != nil {
		return nil, err
	}
	if p.File != sc.path || p.Offset < 0 {
		_ = sc.close()
		return nil, fmt.Errorf("jsonl: opening %s at a position in %s: another file", sp.Desc, p.File)
	}
	if _, err := sc.f.Seek(p.Offset, io.SeekStart); err != nil {
		_ = sc.close()
		return nil, fmt.Errorf("jsonl: opening %s at byte %d: %w", sp.Desc, p.Offset, err)
	}
	sc.off, sc.line = p.Offset, p.Line
	return sc, nil
}

// shape is what JSON values a record type is decoded from.
type shape uint8

const (
	anyValue shape = iota // any but null
	objects               // objects only
)

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// shapeOf returns the shape of record type t: objects for a struct, a map,
// an interface or a pointer to one, unless a decoding method of its own
// (UnmarshalJSON, UnmarshalText) says otherwise.
func shapeOf(t reflect.Type) shape {
	for {
		if t.Implements(jsonUnmarshaler) || t.Implements(textUnmarshaler) ||
			t.Kind() != reflect.Interface && t.Kind() != reflect.Pointer &&
				(reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)) {
			return anyValue
		}
		if t.Kind() != reflect.Pointer {
			break
		}
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map, reflect.Interface:
		return objects
	}
	return anyValue
}

// decode decodes a line (not empty, without surrounding white space) into
// v, a pointer to a record of the given shape. It refuses what
// encoding/json would change or accept silently: text that is not UTF-8, an
// escaped lone surrogate, null, and a value of the wrong shape.
func decode(line []byte, v any, sh shape) error {
	if bad := badText(line); bad >= 0 {
		return textErrorAt(line, bad, v)
	}
	if err := json.Unmarshal(line, v); err != nil {
		return err
	}
	switch c := line[0]; {
	case c == 'n':
		if sh == objects {
			return &notRecord{"null, not an object"}
		}
		return &notRecord{"null, not a record"}
	case sh == objects && c != '{':
		return &notRecord{valueKind(c) + ", not an object"}
	}
	return nil
}

// badText returns the offset in line of the first byte that is not valid
// UTF-8 or of the first escape of a lone surrogate, or -1 if there is none.
// It costs a pass over the line, and one more over the parts of it after a
// backslash.
func badText(line []byte) int {
	if !utf8.Valid(line) {
		for i := 0; i < len(line); {
			r, n := utf8.DecodeRune(line[i:])
			if r == utf8.RuneError && n == 1 {
				if j := loneSurrogate(line[:i]); j >= 0 {
					return j
				}
				return i
			}
			i += n
		}
	}
	return loneSurrogate(line)
}

// loneSurrogate returns the offset of the first \uXXXX escape in line that
// encoding/json would decode as U+FFFD because it is half of a surrogate
// pair without the other half, or -1. A backslash appears in JSON only
// inside a string, where it starts an escape of two characters or six.
func loneSurrogate(line []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(line[i:], '\\')
		if j < 0 {
			return -1
		}
		i += j
		r, ok := escapedRune(line[i:])
		switch {
		case !ok:
			if i += 2; i >= len(line) {
				return -1
			}
			continue
		case utf16.IsSurrogate(r):
			if r < 0xdc00 { // a high surrogate: a low one must follow
				if r2, ok := escapedRune(line[i+6:]); ok && utf16.DecodeRune(r, r2) != utf8.RuneError {
					i += 12
					continue
				}
			}
			return i
		}
		i += 6
	}
}

// escapedRune decodes the \uXXXX escape at the start of b.
func escapedRune(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// textErrorAt returns the error for the bad text at line[bad], naming the
// field whose string holds it. A bad byte outside any string is bad JSON:
// encoding/json's error says so.
func textErrorAt(line []byte, bad int, v any) error {
	what, ok := stringAt(line, bad)
	if !ok {
		if err := json.Unmarshal(line, v); err != nil {
			return err
		}
		what = "the line"
	}
	if line[bad] == '\\' {
		return &textError{what: what, esc: string(line[bad : bad+6])}
	}
	return &textError{what: what, b: line[bad]}
}

// stringAt names the string of the JSON text line that holds byte off:
// `field "items[2].name"`, `a key in "items[2]"`, or "the string" for a
// line that is one; ok is false if off is in no string.
func stringAt(line []byte, off int) (what string, ok bool) {
	type frame struct {
		object  bool
		wantKey bool   // an object's next string is a key
		key     string // an object's last key
		index   int    // an array's last element
	}
	var stack []frame
	path := func(frames []frame) string {
		var b strings.Builder
		for _, f := range frames {
			if !f.object {
				fmt.Fprintf(&b, "[%d]", f.index)
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.key)
		}
		return b.String()
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	for {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		key := false
		if n := len(stack); n > 0 {
			top := &stack[n-1]
			if top.object {
				key = top.wantKey
				top.wantKey = !top.wantKey
			} else {
				top.index++
			}
		}
		switch tok := tok.(type) {
		case string:
			if int64(off) >= before && int64(off) < dec.InputOffset() {
				switch {
				case len(stack) == 0:
					return "the string", true
				case key && len(stack) == 1:
					return "a key", true
				case key:
					return fmt.Sprintf("a key in %q", path(stack[:len(stack)-1])), true
				}
				return fmt.Sprintf("field %q", path(stack)), true
			}
			if key {
				stack[len(stack)-1].key = tok
			}
		case json.Delim:
			stack = append(stack, frame{object: tok == '{', wantKey: tok == '{', index: -1})
		}
	}
}

// textError is the error for a line whose text encoding/json would change.
type textError struct {
	what string // the string that holds it
	b    byte   // the byte that is not UTF-8
	esc  string // or the escape of a lone surrogate
}

func (e *textError) Error() string {
	if e.esc != "" {
		return fmt.Sprintf("%s escapes a lone surrogate (%s), which encoding/json would decode as U+FFFD", e.what, e.esc)
	}
	return fmt.Sprintf("%s is not valid UTF-8 (byte %#02x)", e.what, e.b)
}

// Is reports whether target is ErrInvalidUTF8.
func (e *textError) Is(target error) bool { return target == ErrInvalidUTF8 }

// notRecord is the error for a line that holds no record.
type notRecord struct{ what string }

func (e *notRecord) Error() string { return "the line holds " + e.what }

// Is reports whether target is ErrNotRecord.
func (e *notRecord) Is(target error) bool { return target == ErrNotRecord }

// valueKind names the kind of JSON value that starts with c.
func valueKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

// openLines opens one of listFiles' splits for scanning.
func openLines(sp stages.Split) (*scanner, error) {
	path, ok := sp.Data.(string)
	if !ok {
		return nil, fmt.Errorf("jsonl: split %q is not one of this source's", sp.Desc)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("jsonl: %w", err)
	}
	return &scanner{path: path, f: f, br: bufio.NewReaderSize(f, 256<<10)}, nil
}

// scanner reads the non-blank lines of one file.
type scanner struct {
	path string
	f    *os.File
	br   *bufio.Reader
	long []byte // a line longer than br's buffer, gathered
	line int64  // the number of the line last read, 1-based
	off  int64  // the byte offset of the next line
	eof  bool
}

var bom = []byte("\xef\xbb\xbf")

// scan returns the next line that is not blank, without the byte-order mark
// of a first line and without leading and trailing JSON whitespace, or nil
// at the end of the file; s.line is its number. The line is valid until the
// next call.
func (s *scanner) scan() ([]byte, error) {
	for !s.eof {
		line, err := s.next()
		if err != nil {
			return nil, fmt.Errorf("jsonl: reading %s: %w", s.path, err)
		}
		if line == nil {
			continue
		}
		if s.line == 1 {
			line = bytes.TrimPrefix(line, bom)
		}
		line = bytes.Trim(line, " \t\r\n") // JSON whitespace
		if len(line) > 0 {
			return line, nil
		}
	}
	return nil, nil
}

// next returns the next line, without its newline, counting lines; it sets
// s.eof after the last and returns nil when there was no line left. The
// line is valid until the next call.
func (s *scanner) next() ([]byte, error) {
	s.long = s.long[:0]
	for {
		chunk, err := s.br.ReadSlice('\n')
		switch {
		case err == nil:
			s.line++
			s.off += int64(len(s.long) + len(chunk))
			if len(s.long) > 0 {
				return append(s.long, chunk...), nil
			}
			return chunk, nil
		case errors.Is(err, bufio.ErrBufferFull):
			s.long = append(s.long, chunk...)
		case errors.Is(err, io.EOF):
			s.eof = true
			line := append(s.long, chunk...)
			if len(line) == 0 {
				return nil, nil
			}
			s.off += int64(len(line))
			s.line++ // a last line without a newline
			return line, nil
		default:
			return nil, err
		}
	}
}

func (s *scanner) close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("jsonl: closing %s: %w", s.path, err)
	}
	return nil
}
