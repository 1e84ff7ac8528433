package csvio

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"unicode/utf8"

	"github.com/sluice-data/sluice/internal/filesplits"
	"github.com/sluice-data/sluice/stages"
)

// RowError reports a bad row: a wrong number of fields, a value that does
// not convert, or broken quoting.
type RowError struct {
	Path   string
	Line   int64  // 1-based: where the row starts, or where the bad field does
	Column string // the bad value's column, from the header (or the field's name); else ""
	// Err says what is wrong. It wraps csv.ErrFieldCount for a wrong number
	// of fields, the conversion's error (strconv, time) for a bad value, and
	// csv.ErrQuote or csv.ErrBareQuote for broken quoting.
	Err error
}

// Error returns "csvio: FILE:LINE: REASON".
func (e *RowError) Error() string { return fmt.Sprintf("csvio: %s:%d: %s", e.Path, e.Line, e.reason()) }

// reason is the message without the file and line.
func (e *RowError) reason() string {
	if e.Column != "" {
		return fmt.Sprintf("column %q: %v", e.Column, e.Err)
	}
	return e.Err.Error()
}

// Unwrap returns Err.
func (e *RowError) Unwrap() error { return e.Err }

// Is reports whether target is ErrBadRow.
func (e *RowError) Is(target error) bool { return target == ErrBadRow }

// fieldCount is a RowError's Err for a row with a wrong number of fields.
type fieldCount struct {
	got, want int
	header    bool
}

func (e *fieldCount) Error() string {
	if e.header {
		return fmt.Sprintf("%d fields, the header has %d", e.got, e.want)
	}
	return fmt.Sprintf("%d fields, the record type has %d", e.got, e.want)
}

func (e *fieldCount) Unwrap() error { return csv.ErrFieldCount }

// Read adds a source stage that reads the CSV files that pattern names into
// records of type T, failing the job on a bad row with a *RowError. The
// stage is named "csv" unless StageOptions name it. A record type or option
// that does not fit is a graph-building mistake, reported with the caller's
// line. See the package documentation for the mapping of columns to fields.
func Read[T any](p *stages.Pipeline, pattern string, opts ...Option) stages.Stream[T] {
	src := Source[T](pattern, opts...)
	if err := src.Err(); err != nil {
		p.Errorf("%v", err)
	}
	return stages.Read[T](p, src, src.stageOptions()...)
}

// FileSource reads CSV files as records of type T, failing on a bad row. It
// implements stages.Source[T]: Splits lists the files, one split per file,
// and Open reads one, checking its header first.
type FileSource[T any] struct {
	pattern string
	cfg     config
	schema  *schema
	err     error
}

// Source returns a source of the CSV files that pattern names (a path, or a
// filepath.Match glob). A pattern without glob characters must name a file;
// a glob must match at least one file (directories are skipped).
func Source[T any](pattern string, opts ...Option) *FileSource[T] {
	s := &FileSource[T]{pattern: pattern, cfg: newConfig(opts)}
	var err error
	s.schema, err = schemaOf(reflect.TypeFor[T](), s.cfg.timeLayout)
	if err = errors.Join(append(s.cfg.errs, err)...); err != nil {
		s.err = fmt.Errorf("reading %s: %w", pattern, err)
	}
	return s
}

// Err returns the source's configuration errors: options, and a record type
// that does not fit.
func (s *FileSource[T]) Err() error { return s.err }

func (s *FileSource[T]) stageOptions() []stages.Option {
	return append([]stages.Option{stages.Name("csv")}, s.cfg.stageOpts...)
}

// Splits implements stages.Source.
func (s *FileSource[T]) Splits(context.Context) ([]stages.Split, error) {
	if s.err != nil {
		return nil, s.err
	}
	return listFiles(s.pattern)
}

// Open implements stages.Source. It reads the file's header.
func (s *FileSource[T]) Open(ctx context.Context, _ stages.Instance, sp stages.Split) (stages.Reader[T], error) {
	d, err := s.open(ctx, sp)
	if err != nil {
		return nil, err
	}
	return (*reader[T])(d), nil
}

// listFiles makes one split per file that pattern names, in lexical order.
func listFiles(pattern string) ([]stages.Split, error) {
	return filesplits.List("csvio", pattern, ".csv", ErrNoFiles)
}

var bom = []byte("\xef\xbb\xbf")

// decoder reads the rows of one file into records of type T.
type decoder[T any] struct {
	ctx    context.Context
	path   string
	f      *os.File
	cr     *csv.Reader
	schema *schema
	header bool
	cols   []int // the field that each column reads, or -1
	names  []string
	base   int64 // bytes before what cr reads: a byte-order mark
	eof    bool
}

func (s *FileSource[T]) open(ctx context.Context, sp stages.Split) (*decoder[T], error) {
	if s.err != nil {
		return nil, s.err
	}
	path, ok := sp.Data.(string)
	if !ok {
		return nil, fmt.Errorf("csvio: split %q is not one of this source's", sp.Desc)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("csvio: %w", err)
	}
	br := bufio.NewReaderSize(f, 256<<10)
	d := &decoder[T]{ctx: ctx, path: path, f: f, schema: s.schema, header: !s.cfg.noHeader}
	if head, _ := br.Peek(len(bom)); bytes.Equal(head, bom) {
		_, _ = br.Discard(len(bom))
		d.base = int64(len(bom))
	}
	d.cr = csv.NewReader(br)
	d.cr.Comma, d.cr.Comment = s.cfg.comma, s.cfg.comment
	d.cr.LazyQuotes, d.cr.TrimLeadingSpace = s.cfg.lazyQuotes, s.cfg.trimLeadingSpace
	d.cr.FieldsPerRecord = -1 // counted here, for errors of our own
	d.cr.ReuseRecord = true
	if err := d.readHeader(); err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

// readHeader reads the header row, if the files have one, and maps its
// columns to fields.
func (d *decoder[T]) readHeader() error {
	if !d.header {
		d.cols = make([]int, len(d.schema.fields))
		d.names = make([]string, len(d.schema.fields))
		for i, f := range d.schema.fields {
			d.cols[i], d.names[i] = i, f.column
		}
		return nil
	}
	header, err := d.cr.Read()
	if errors.Is(err, io.EOF) {
		d.eof = true // no header, no rows
		return nil
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("%w: %s:%d: reading the header: %w", ErrHeader, d.path, pe.Line, pe.Err)
		}
		return fmt.Errorf("csvio: reading %s: %w", d.path, err)
	}
	d.names = slices.Clone(header)
	d.cols, err = d.schema.bind(d.path, d.names)
	return err
}

// decode reads the next row into *dst. It returns io.EOF at the end of the
// file, a *RowError for a bad row (the file can be read on), or another
// error that ends the file. With a bad row it also returns the row's byte
// range in the file.
func (d *decoder[T]) decode(dst *T) (bad *RowError, start, end int64, err error) {
	if d.eof {
		return nil, 0, 0, io.EOF
	}
	start = d.cr.InputOffset()
	rec, err := d.cr.Read()
	end = d.cr.InputOffset()
	if err != nil {
		var pe *csv.ParseError
		switch {
		case errors.Is(err, io.EOF):
			d.eof = true
			return nil, 0, 0, io.EOF
		case errors.As(err, &pe):
			reason := fmt.Errorf("%w at byte %d", pe.Err, pe.Column)
			if pe.StartLine != pe.Line {
				reason = fmt.Errorf("%w at byte %d (the row starts on line %d)", pe.Err, pe.Column, pe.StartLine)
			}
			return &RowError{Path: d.path, Line: int64(pe.Line), Err: reason}, start, end, nil
		default:
			return nil, 0, 0, fmt.Errorf("csvio: reading %s: %w", d.path, err)
		}
	}
	if len(rec) != len(d.cols) {
		line, _ := d.cr.FieldPos(0)
		return &RowError{Path: d.path, Line: int64(line),
			Err: &fieldCount{got: len(rec), want: len(d.cols), header: d.header}}, start, end, nil
	}
	var zero T
	*dst = zero
	v := reflect.ValueOf(dst).Elem()
	for i, fi := range d.cols {
		if fi < 0 {
			continue
		}
		f := &d.schema.fields[fi]
		fv := v.Field(f.index[0])
		if len(f.index) > 1 {
			fv = v.FieldByIndex(f.index)
		}
		if err := f.set(fv, rec[i]); err != nil {
			line, _ := d.cr.FieldPos(i)
			return &RowError{Path: d.path, Line: int64(line), Column: d.names[i], Err: err}, start, end, nil
		}
	}
	return nil, 0, 0, nil
}

// MaxRecord is the most bytes of a bad row that its dead letter keeps:
// longer rows are cut at a character boundary and end in "…". The dead
// letter's Where names the file and line, where the whole row remains.
const MaxRecord = 1024

// text returns the bytes [start, end) of the file as a dead letter's Record:
// the bad row as it stands in the file, without the empty and comment lines
// that the CSV reader skipped before it and without its final newline.
func (d *decoder[T]) text(start, end int64) string {
	n := min(end-start, MaxRecord+(64<<10))
	buf := make([]byte, n)
	k, err := d.f.ReadAt(buf, d.base+start)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	buf = buf[:k]
	for len(buf) > 0 {
		line, rest, _ := bytes.Cut(buf, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		r, _ := utf8.DecodeRune(line)
		if len(line) > 0 && (d.cr.Comment == 0 || r != d.cr.Comment) {
			break
		}
		buf = rest
	}
	buf = bytes.TrimSuffix(bytes.TrimSuffix(buf, []byte("\n")), []byte("\r"))
	return truncate(buf)
}

// truncate returns b as a string of at most MaxRecord bytes and an ellipsis.
func truncate(b []byte) string {
	if len(b) <= MaxRecord {
		return string(b)
	}
	i := MaxRecord
	for i > 0 && !utf8.RuneStart(b[i]) {
		i--
	}
	return string(b[:i]) + "…"
}

func (d *decoder[T]) close() error {
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	if err != nil {
		return fmt.Errorf("csvio: closing %s: %w", d.path, err)
	}
	return nil
}

// reader reads under the Fail policy.
type reader[T any] decoder[T]

func (r *reader[T]) Read(buf []T) (int, error) {
	d := (*decoder[T])(r)
	if err := d.ctx.Err(); err != nil {
		return 0, err
	}
	for n := range buf {
		bad, _, _, err := d.decode(&buf[n])
		if bad != nil {
			return n, bad
		}
		if err != nil {
			return n, err
		}
	}
	return len(buf), nil
}

func (r *reader[T]) Close() error { return (*decoder[T])(r).close() }

// where returns "FILE:LINE".
func (e *RowError) where() string { return fmt.Sprintf("%s:%d", e.Path, e.Line) }
