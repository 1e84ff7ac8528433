package csvio

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/sluice-data/sluice/internal/filesplits"
	"github.com/sluice-data/sluice/stages"
)

// RowError reports a bad row: a wrong number of fields, a value that does
// not convert (or is not valid UTF-8 for a string field), or broken
// quoting.
type RowError struct {
	Path string
	// Line is 1-based: where the row starts, where the bad field does, or,
	// for a quoted field that does not close, where its quote opens.
	Line   int64
	Column string // the bad value's column, from the header (or the field's name); else ""
	// Err says what is wrong. It wraps csv.ErrFieldCount for a wrong number
	// of fields, the conversion's error (strconv, time) for a bad value,
	// ErrInvalidUTF8 for a string that is not valid UTF-8, and csv.ErrQuote
	// or csv.ErrBareQuote for broken quoting.
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

func (s *FileSource[T]) stageOptions() []stages.SourceOption {
	return append([]stages.SourceOption{stages.Name("csv")}, s.cfg.stageOpts...)
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
	br     *bufio.Reader // over f, from base
	cr     *csv.Reader   // over br
	cfg    *config
	schema *schema
	header bool
	cols   []int // the field that each column reads, or -1
	names  []string
	// base is the offset in the file where cr started reading (after a
	// byte-order mark, or where reading resumed after a quoted field that
	// did not close), and line0 the number of lines before it: cr's
	// offsets and lines are relative to them.
	base, line0 int64
	eof         bool
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
	d := &decoder[T]{ctx: ctx, path: path, f: f, br: br, cfg: &s.cfg, schema: s.schema, header: !s.cfg.noHeader}
	if head, _ := br.Peek(len(bom)); bytes.Equal(head, bom) {
		_, _ = br.Discard(len(bom))
		d.base = int64(len(bom))
	}
	d.cr = d.csvReader()
	if err := d.readHeader(); err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

// csvReader returns a CSV reader over d.br with the source's options.
func (d *decoder[T]) csvReader() *csv.Reader {
	cr := csv.NewReader(d.br)
	cr.Comma, cr.Comment = d.cfg.comma, d.cfg.comment
	cr.LazyQuotes, cr.TrimLeadingSpace = d.cfg.lazyQuotes, d.cfg.trimLeadingSpace
	cr.FieldsPerRecord = -1 // counted here, for errors of our own
	cr.ReuseRecord = true
	return cr
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
	start = d.base + d.cr.InputOffset()
	rec, err := d.cr.Read()
	end = d.base + d.cr.InputOffset()
	if err != nil {
		var pe *csv.ParseError
		switch {
		case errors.Is(err, io.EOF):
			d.eof = true
			return nil, 0, 0, io.EOF
		case errors.As(err, &pe):
			return d.parseError(pe, start, end)
		default:
			return nil, 0, 0, fmt.Errorf("csvio: reading %s: %w", d.path, err)
		}
	}
	if len(rec) != len(d.cols) {
		line, _ := d.cr.FieldPos(0)
		return &RowError{Path: d.path, Line: d.line0 + int64(line),
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
			return &RowError{Path: d.path, Line: d.line0 + int64(line), Column: d.names[i], Err: err}, start, end, nil
		}
	}
	return nil, 0, 0, nil
}

// parseError turns the CSV reader's error for the row at [start, end) of
// the file into a RowError. A quoted field that does not close (its quote
// is never matched, or the matching quote is followed by something other
// than a delimiter or the end of a line) runs on over later lines, to the
// end of the file at worst: the row is then reported at the line where the
// quote opens, and reading resumes on the line after it, so that the rows
// the field swallowed are read as rows. The byte range returned ends there.
func (d *decoder[T]) parseError(pe *csv.ParseError, start, end int64) (*RowError, int64, int64, error) {
	rowLine, line := d.line0+int64(pe.StartLine), d.line0+int64(pe.Line)
	if pe.Err == csv.ErrQuote {
		if q, ok := d.openQuote(start, end); ok {
			open := rowLine + q.line
			var reason error
			switch {
			case q.eof:
				reason = fmt.Errorf("%w: the quoted field at byte %d does not close before the end of the file", pe.Err, q.col)
			case open < line:
				reason = fmt.Errorf("%w: the quoted field at byte %d closes on line %d, byte %d, without a delimiter after its quote", pe.Err, q.col, line, pe.Column)
			}
			if reason != nil {
				if open != rowLine {
					reason = fmt.Errorf("%w (the row starts on line %d)", reason, rowLine)
				}
				if open < line {
					// Resume on the line after the quote's.
					end = start + q.next
					if err := d.resume(end, open); err != nil {
						return nil, 0, 0, err
					}
				}
				return &RowError{Path: d.path, Line: open, Err: reason}, start, end, nil
			}
		}
	}
	reason := fmt.Errorf("%w at byte %d", pe.Err, pe.Column)
	if rowLine != line {
		reason = fmt.Errorf("%w at byte %d (the row starts on line %d)", pe.Err, pe.Column, rowLine)
	}
	return &RowError{Path: d.path, Line: line, Err: reason}, start, end, nil
}

// resume makes the CSV reader read on from offset off of the file, the
// start of line lines+1.
func (d *decoder[T]) resume(off, lines int64) error {
	if _, err := d.f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("csvio: reading %s: %w", d.path, err)
	}
	d.br.Reset(d.f)
	d.cr = d.csvReader()
	d.base, d.line0 = off, lines
	return nil
}

// quote is where the quoted field that broke a row opens.
type quote struct {
	line int64 // counted from the row's first line, 0
	col  int   // the quote's byte in its line, 1-based
	next int64 // the offset of the line after the quote's, from the row's start
	eof  bool  // the field runs to the end of the file
}

// openQuote finds the quoted field in which the CSV reader failed with
// csv.ErrQuote, reading the row again from the bytes [start, end) of the
// file, which the reader read for it (the empty and comment lines it
// skipped first included). It follows encoding/csv's rules for a record;
// ok is false if the row reads otherwise (it should not).
func (d *decoder[T]) openQuote(start, end int64) (q quote, ok bool) {
	lr := lineReader{r: bufio.NewReaderSize(io.NewSectionReader(d.f, start, end-start), 64<<10)}
	comma, commaLen := d.cfg.comma, utf8.RuneLen(d.cfg.comma)
	var line []byte
	for {
		if line, ok = lr.next(); !ok {
			return q, false
		}
		if d.cfg.comment != 0 && nextRune(line) == d.cfg.comment || len(line) == lengthNL(line) {
			continue // skipped by the reader
		}
		break
	}
	row := lr.lines
	col := 1
	for {
		if d.cfg.trimLeadingSpace {
			i := bytes.IndexFunc(line, func(r rune) bool { return !unicode.IsSpace(r) })
			if i < 0 {
				i = len(line)
			}
			line = line[i:]
			col += i
		}
		if len(line) == 0 || line[0] != '"' {
			i := bytes.IndexRune(line, comma)
			if i < 0 {
				return q, false // the row ends
			}
			line = line[i+commaLen:]
			col += i + commaLen
			continue
		}
		q = quote{line: int64(lr.lines - row), col: col, next: lr.off}
		line = line[1:]
		col++
	quoted:
		for {
			i := bytes.IndexByte(line, '"')
			if i < 0 {
				if line, ok = lr.next(); !ok {
					q.eof = true
					return q, !d.cfg.lazyQuotes
				}
				col = 1
				continue
			}
			line = line[i+1:]
			col += i + 1
			switch r := nextRune(line); {
			case r == '"':
				line = line[1:]
				col++
			case r == comma:
				line = line[commaLen:]
				col += commaLen
				break quoted
			case len(line) == lengthNL(line):
				return q, false // the row ends
			case d.cfg.lazyQuotes:
			default:
				return q, true
			}
		}
	}
}

// lineReader reads lines as encoding/csv does: \r\n reads as \n, and a \r
// before the end of the input is dropped.
type lineReader struct {
	r     *bufio.Reader
	buf   []byte
	lines int   // lines read
	off   int64 // bytes read
}

// next returns the next line, or false at the end of the input. The line
// is valid until the next call.
func (lr *lineReader) next() ([]byte, bool) {
	line, err := lr.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		lr.buf = append(lr.buf[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = lr.r.ReadSlice('\n')
			lr.buf = append(lr.buf, line...)
		}
		line = lr.buf
	}
	if len(line) == 0 {
		return nil, false
	}
	lr.lines++
	lr.off += int64(len(line))
	if err != nil && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if n := len(line); n >= 2 && line[n-2] == '\r' && line[n-1] == '\n' {
		line[n-2] = '\n'
		line = line[:n-1]
	}
	return line, true
}

// nextRune returns the first rune of b, as encoding/csv does.
func nextRune(b []byte) rune {
	r, _ := utf8.DecodeRune(b)
	return r
}

// lengthNL reports the number of bytes of the newline at the end of b.
func lengthNL(b []byte) int {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		return 1
	}
	return 0
}

// MaxRecord is the most bytes of a bad row that its dead letter keeps:
// longer rows are cut at a character boundary and end in "…". The dead
// letter's Where names the file and line, where the whole row remains.
const MaxRecord = 1024

// text returns the bytes [start, end) of the file as a dead letter's Record:
// the bad row as it stands in the file, without the empty and comment lines
// that the CSV reader skipped before it and without its final newline (see
// truncate for bytes that are not UTF-8).
func (d *decoder[T]) text(start, end int64) string {
	n := min(end-start, MaxRecord+(64<<10))
	buf := make([]byte, n)
	k, err := d.f.ReadAt(buf, start)
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

// truncate returns b as a dead letter's Record (filesplits.Excerpt).
func truncate(b []byte) string { return filesplits.Excerpt(b, MaxRecord) }

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

// position is where a reader is in its file: the byte offset of the next
// row.
type position struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
}

// Position implements stages.Positioner.
func (r *reader[T]) Position() ([]byte, error) {
	d := (*decoder[T])(r)
	return json.Marshal(position{File: d.path, Offset: d.base + d.cr.InputOffset()})
}

// OpenAt implements stages.Seeker: the file opens (its header read, if it
// has one) and reads on from the row at the position's offset; the lines
// before it are counted, so that errors name their lines as before.
func (s *FileSource[T]) OpenAt(ctx context.Context, _ stages.Instance, sp stages.Split, pos []byte) (stages.Reader[T], error) {
	var p position
	if err := json.Unmarshal(pos, &p); err != nil {
		return nil, fmt.Errorf("csvio: opening %s at %q: %w", sp.Desc, pos, err)
	}
	d, err := s.open(ctx, sp)
	if err != nil {
		return nil, err
	}
	if p.File != d.path || p.Offset < d.base+d.cr.InputOffset() {
		d.close()
		return nil, fmt.Errorf("csvio: opening %s at byte %d of %s: not a row of this file", sp.Desc, p.Offset, p.File)
	}
	lines, err := countLines(d.f, p.Offset)
	if err == nil {
		err = d.resume(p.Offset, lines)
	}
	if err != nil {
		d.close()
		return nil, fmt.Errorf("csvio: opening %s at byte %d: %w", sp.Desc, p.Offset, err)
	}
	return (*reader[T])(d), nil
}

// countLines counts the newlines in the first n bytes of f.
func countLines(f *os.File, n int64) (int64, error) {
	buf := make([]byte, 256<<10)
	var lines int64
	for off := int64(0); off < n; {
		k, err := f.ReadAt(buf[:min(int64(len(buf)), n-off)], off)
		lines += int64(bytes.Count(buf[:k], []byte{'\n'}))
		off += int64(k)
		if err != nil && !(errors.Is(err, io.EOF) && off == n) {
			return 0, err
		}
	}
	return lines, nil
}

// where returns "FILE:LINE".
func (e *RowError) where() string { return fmt.Sprintf("%s:%d", e.Path, e.Line) }
