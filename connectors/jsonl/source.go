package jsonl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

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

// LineError reports a line that does not parse.
type LineError struct {
	Path string
	Line int64 // 1-based
	Err  error // from encoding/json
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
func Read[T any](p *stages.Pipeline, pattern string, opts ...stages.Option) stages.Stream[T] {
	return stages.Read(p, Source[T](pattern, Fail), append([]stages.Option{stages.Name("jsonl")}, opts...)...)
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
	return &reader[T]{ctx: ctx, sc: sc}, nil
}

type reader[T any] struct {
	ctx context.Context
	sc  *scanner
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
		if err := json.Unmarshal(line, &buf[n]); err != nil {
			return n, &LineError{Path: r.sc.path, Line: r.sc.line, Err: err}
		}
		n++
	}
	return n, nil
}

func (r *reader[T]) Close() error { return r.sc.close() }

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
