package parquetio

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// The direct read path decodes a row group column by column, from each
// page's decoded values straight into the record's fields, for records
// whose Parquet columns are all flat (top level, not repeated) and of a
// plain Go type: int32, int64, float32, float64, string, and time.Time for
// a TIMESTAMP column, or a pointer to one of those for an optional column. parquet-go's GenericReader reconstructs every row as a
// parquet.Row of Values first and converts it when the file's schema is
// not exactly the record's (any projection); for W2's two columns that was
// 40% of the job's CPU time. The direct path reads five columns of 1M rows
// in 31-33 ms against 150-160 ms (`go test -run - -bench Read1M -count 3
// ./connectors/parquetio`, all and all-general), and W2 went from 2.12-2.25 s
// to 1.20-1.34 s. Other records take the general path, and so do files
// whose columns differ in type from the record's, except where convOf
// converts them (convert.go): those take the direct path always, with the
// converted columns' values converted a page (or a dictionary) at a time
// and stored as the other columns' are. The direct path also fills other
// integer widths, float64 from FLOAT, DATE, INT96 and DECIMAL, but only in
// such files, so that records reading files without conversions keep the
// path they had.

// directEnabled turns the direct path off for tests comparing both paths.
// Files that need a conversion (convert.go) take the direct path anyway:
// the general path has none.
var directEnabled = true

type directKind uint8

const (
	directInt32 directKind = iota + 1
	directInt64
	directFloat
	directDouble
	directString
	directTime // a time.Time field of a TIMESTAMP column
	directConv // values converted to the field's type (converter)
	directNil  // a pointer field whose column the file lacks: nil
)

// directField is one column of a direct read: where it is in the file and
// where its values go in the record.
type directField struct {
	column int // file column index
	offset uintptr
	kind   directKind
	unit   int64      // directTime: nanoseconds in the column's unit
	lo, hi int64      // directTime: the values that v*unit does not overflow for
	conv   *converter // directConv
	ptr    bool       // the field is a pointer: nil for a null
	name   string
}

// time converts a directTime value: parquet-go's time.Unix(0, v*unit).UTC(),
// and exactly where that would overflow.
func (f *directField) time(v int64) time.Time {
	if v >= f.lo && v <= f.hi {
		return time.Unix(0, v*f.unit).UTC()
	}
	return unixTime(v, f.unit)
}

// directPlan says how a file's columns fill the record's fields, or is nil
// when the file or the record does not allow the direct path (see plan).
func (r *record) directPlan(fs *parquet.Schema, ff *fileFit) []directField {
	p, _ := r.plan(fs, ff)
	return p
}

// plan says how a file's columns fill the record's fields on the direct
// path. It is nil, with a nil error, when the general path reads the file
// instead: the record has a field the direct path cannot fill, or a
// column's type is not exactly the record's. The file's column must not be
// repeated. A pointer field reads an optional column, nil for a null, or
// nil throughout when the file lacks the column; a field that is not a
// pointer reads an optional file column only where its row group holds no
// nulls, which fileFit.checkNulls ensures.
//
// A file that needs a conversion (ff.direct) must take the direct path,
// converting those columns and reading the others as they are: plan
// returns an error saying why when the record does not allow that.
func (r *record) plan(fs *parquet.Schema, ff *fileFit) ([]directField, error) {
	must := ff.direct
	if !directEnabled && !must {
		return nil, nil
	}
	general := func(format string, args ...any) ([]directField, error) {
		if must {
			return nil, fmt.Errorf("%w: %s, which only the direct read path does, for records whose fields are all flat and of its types (see the package documentation); %s",
				ErrSchema, r.conversionNeeded(fs), fmt.Sprintf(format, args...))
		}
		return nil, nil
	}
	var out []directField
	for i := range r.want {
		w := &r.want[i]
		f := r.typ.Field(w.field)
		if !w.top || w.rep != 0 || w.def > 1 {
			return general("column %s is nested or repeated", w.name)
		}
		if w.def == 1 && !w.ptr {
			// Optional in the record: only a pointer field, nil for null.
			return general("field %s is optional but not a pointer", f.Name)
		}
		got, ok := fs.Lookup(w.path...)
		if !ok {
			if ff.filled(w.field) {
				continue // a partition key: fileFit fills it
			}
			if !w.ptr {
				return nil, fmt.Errorf("%w: column %s is missing", ErrSchema, w.name) // fit refuses it
			}
			out = append(out, directField{offset: f.Offset, kind: directNil, ptr: true, name: w.name})
			continue
		}
		if got.MaxRepetitionLevel != 0 || got.MaxDefinitionLevel > 1 {
			return general("column %s is repeated in the file", w.name)
		}
		gt := got.Node.Type()
		fc, problem := convOf(w.elem, w.leafType(), gt, r.truncate)
		if problem != "" { // the file changed since fit
			return nil, fmt.Errorf("%w: column %s: %s", ErrSchema, w.name, problem)
		}
		if !must && (!fc.exact || fc.kind == directConv || !sameLogical(w.leafType().LogicalType(), gt.LogicalType())) {
			return nil, nil // the general path reads it as before
		}
		if fc.kind == 0 {
			return general("field %s is a %v", f.Name, f.Type)
		}
		df := directField{column: got.ColumnIndex, offset: f.Offset, kind: fc.kind, unit: fc.unit, conv: fc.conv, ptr: w.ptr, name: w.name}
		if df.kind == directTime {
			df.lo, df.hi = timeRange(df.unit)
		}
		out = append(out, df)
	}
	return out, nil
}

// conversionNeeded names the first column of fs that needs a conversion
// into the record, for messages.
func (r *record) conversionNeeded(fs *parquet.Schema) string {
	for i := range r.want {
		w := &r.want[i]
		got, ok := fs.Lookup(w.path...)
		if !ok || !w.top {
			continue
		}
		if w.decimal {
			return fmt.Sprintf("column %s is read into a parquetio.Decimal", w.name)
		}
		if fc, problem := convOf(w.elem, w.leafType(), got.Node.Type(), r.truncate); problem == "" && !fc.exact {
			return fmt.Sprintf("column %s needs a conversion (%s in the file into a %v field)", w.name, typeName(got.Node.Type()), w.elem)
		}
	}
	return "the file needs a conversion"
}

func sameLogical(a, b *format.LogicalType) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.String() == b.String()
}

// directKindOf returns how a field of Go type t holds values of the column
// type ct (and for a TIMESTAMP, its unit in nanoseconds), or 0 when the
// direct path cannot fill it.
func directKindOf(t reflect.Type, ct parquet.Type) (directKind, int64) {
	switch k := ct.Kind(); {
	case k == parquet.Int32 && t.Kind() == reflect.Int32:
		return directInt32, 0
	case k == parquet.Int64 && t == reflect.TypeFor[time.Time]():
		// parquet-go's own conversion: time.Unix(0, v*unit).UTC().
		if lt := ct.LogicalType(); lt != nil {
			if ts, ok := lt.Value.(*format.TimestampType); ok && ts.Unit.Value != nil {
				return directTime, int64(ts.Unit.Value.Duration())
			}
		}
		return 0, 0
	case k == parquet.Int64 && (t.Kind() == reflect.Int64 || t.Kind() == reflect.Int && t.Size() == 8):
		if lt := ct.LogicalType(); lt != nil {
			if _, isTime := lt.Value.(*format.TimeType); isTime {
				// parquet-go scales TIME to a time.Duration's
				// nanoseconds: the general path does that.
				return 0, 0
			}
		}
		return directInt64, 0
	case k == parquet.Float && t.Kind() == reflect.Float32:
		return directFloat, 0
	case k == parquet.Double && t.Kind() == reflect.Float64:
		return directDouble, 0
	case k == parquet.ByteArray && t.Kind() == reflect.String:
		return directString, 0
	}
	return 0, 0
}

// directReader reads a row group's columns into records.
type directReader struct {
	cols []*directColumn
	nils []uintptr // offsets of pointer fields the file has no column for
}

func newDirectReader(rg parquet.RowGroup, fields []directField) *directReader {
	chunks := rg.ColumnChunks()
	d := &directReader{}
	for _, f := range fields {
		if f.kind == directNil {
			d.nils = append(d.nils, f.offset)
			continue
		}
		d.cols = append(d.cols, &directColumn{field: f, pages: chunks[f.column].Pages()})
	}
	return d
}

// read fills n records, stride bytes apart from base, with the next n
// rows of every column.
func (d *directReader) read(base unsafe.Pointer, stride uintptr, n int) error {
	for _, c := range d.cols {
		if err := c.read(base, stride, n); err != nil {
			return err
		}
	}
	for _, off := range d.nils {
		for i := range n {
			*(*unsafe.Pointer)(unsafe.Add(base, off+uintptr(i)*stride)) = nil
		}
	}
	return nil
}

func (d *directReader) seek(row int64) error {
	for _, c := range d.cols {
		c.drop()
		if err := c.pages.SeekToRow(row); err != nil {
			return fmt.Errorf("column %s: %w", c.field.name, err)
		}
	}
	return nil
}

func (d *directReader) close() error {
	var errs []error
	for _, c := range d.cols {
		c.drop()
		errs = append(errs, c.pages.Close())
	}
	return errors.Join(errs...)
}

// directColumn is one column's pages and its place in the current one.
type directColumn struct {
	field directField
	pages parquet.Pages
	page  parquet.Page // nil before the first page and after drop
	next  int          // the next row of page to read
	left  int          // rows of page still to read
	vnext int          // the next value of page to read: rows less nulls
	defs  []byte       // the page's definition levels when it has nulls

	// The current page's values: plain, or indexes into dictionary values.
	idx   []int32
	i32   []int32
	i64   []int64
	f32   []float32
	f64   []float64
	bytes []byte
	offs  []uint32 // byte array offsets into bytes: value i is bytes[offs[i]:offs[i+1]]

	// The strings of the last dictionary seen, made once per dictionary.
	dict     parquet.Dictionary
	dictStrs []string

	// directConv: the current page's values converted (cv), the last
	// dictionary's converted once (dictCV), and a plain page's buffer.
	cv, dictCV, pageCV colValues
}

func (c *directColumn) drop() {
	if c.page != nil {
		parquet.Release(c.page)
		c.page = nil
	}
	c.left = 0
}

// load moves to the next page.
func (c *directColumn) load() error {
	c.drop()
	p, err := c.pages.ReadPage()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("column %s: %w", c.field.name, err)
	}
	nulls := int(p.NumNulls())
	if nulls != 0 && !c.field.ptr {
		parquet.Release(p)
		return fmt.Errorf("column %s: a page holds %d nulls but the field is not optional", c.field.name, nulls)
	}
	c.page, c.next, c.left, c.vnext = p, 0, int(p.NumRows()), 0
	c.idx, c.defs = nil, nil
	if nulls != 0 {
		if c.defs = p.DefinitionLevels(); len(c.defs) < c.left {
			return fmt.Errorf("column %s: a page of %d rows has %d definition levels", c.field.name, c.left, len(c.defs))
		}
	}
	data := p.Data()
	values := &data
	if dict := p.Dictionary(); dict != nil {
		c.idx = values.Int32()
		if c.dict != dict {
			c.dict = dict
			c.dictStrs, c.dictCV = nil, nil
		}
		dv := dict.Page().Data()
		values = &dv
	}
	switch c.field.kind {
	case directInt32:
		c.i32 = values.Int32()
	case directInt64, directTime:
		c.i64 = values.Int64()
	case directFloat:
		c.f32 = values.Float()
	case directDouble:
		c.f64 = values.Double()
	case directConv:
		// A copy for the converter, so that values itself stays on the
		// stack for the other kinds.
		src := *values
		var err error
		switch {
		case c.idx == nil:
			c.pageCV, err = c.field.conv.convert(&src, c.pageCV)
			c.cv = c.pageCV
		case c.dictCV == nil:
			c.dictCV, err = c.field.conv.convert(&src, nil)
			c.cv = c.dictCV
		default:
			c.cv = c.dictCV
		}
		if err != nil {
			return fmt.Errorf("column %s: %s: %w", c.field.name, c.field.conv.desc, err)
		}
	case directString:
		c.bytes, c.offs = values.ByteArray()
		if c.idx != nil && c.dictStrs == nil {
			c.dictStrs = make([]string, len(c.offs)-1)
			all := string(c.bytes)
			for i := range c.dictStrs {
				c.dictStrs[i] = all[c.offs[i]:c.offs[i+1]]
			}
		}
	}
	if present := c.left - nulls; c.idx != nil && len(c.idx) < present || c.idx == nil && c.values() < present {
		return fmt.Errorf("column %s: a page of %d rows and %d nulls holds fewer values", c.field.name, c.left, nulls)
	}
	return nil
}

// values is the number of plain values of the current page.
func (c *directColumn) values() int {
	switch c.field.kind {
	case directInt32:
		return len(c.i32)
	case directInt64, directTime:
		return len(c.i64)
	case directFloat:
		return len(c.f32)
	case directDouble:
		return len(c.f64)
	case directConv:
		return c.cv.count()
	default:
		return len(c.offs) - 1
	}
}

func (c *directColumn) read(base unsafe.Pointer, stride uintptr, n int) error {
	for done := 0; done < n; {
		if c.left == 0 {
			if err := c.load(); err != nil {
				return err
			}
			continue
		}
		// Pointers stay inside the records (checkptr): none is made past
		// the last one.
		dst := unsafe.Add(base, c.field.offset+uintptr(done)*stride)
		k := min(n-done, c.left)
		// The k rows from c.next hold the page's values vlo..vhi: one a
		// row, none for a null.
		vlo, vhi := c.vnext, c.vnext+k
		var defs []byte
		if c.defs != nil {
			defs = c.defs[c.next : c.next+k]
			vhi = vlo + present(defs)
		}
		if c.field.kind == directConv {
			if c.field.ptr {
				c.cv.putPointers(dst, stride, k, defs, c.idx, vlo, vhi)
			} else {
				c.cv.put(dst, stride, c.idx, vlo, vhi)
			}
		} else if c.field.ptr {
			c.putPointers(dst, stride, k, defs, vlo, vhi)
		} else if c.idx != nil {
			idx := c.idx[vlo:vhi]
			switch c.field.kind {
			case directInt32:
				putIndexed(dst, stride, c.i32, idx)
			case directInt64:
				putIndexed(dst, stride, c.i64, idx)
			case directFloat:
				putIndexed(dst, stride, c.f32, idx)
			case directDouble:
				putIndexed(dst, stride, c.f64, idx)
			case directString:
				putIndexed(dst, stride, c.dictStrs, idx)
			case directTime:
				for i, j := range idx {
					*(*time.Time)(unsafe.Add(dst, uintptr(i)*stride)) = c.field.time(c.i64[j])
				}
			}
		} else {
			switch c.field.kind {
			case directInt32:
				put(dst, stride, c.i32[vlo:vhi])
			case directInt64:
				put(dst, stride, c.i64[vlo:vhi])
			case directFloat:
				put(dst, stride, c.f32[vlo:vhi])
			case directDouble:
				put(dst, stride, c.f64[vlo:vhi])
			case directString:
				putStrings(dst, stride, c.bytes, c.offs[vlo:vhi+1])
			case directTime:
				for i, v := range c.i64[vlo:vhi] {
					*(*time.Time)(unsafe.Add(dst, uintptr(i)*stride)) = c.field.time(v)
				}
			}
		}
		c.next, c.left, c.vnext, done = c.next+k, c.left-k, vhi, done+k
	}
	return nil
}

// present counts the rows of defs that hold a value: level 1, the most a
// flat column has (parquet-go counts any other level as a null too).
func present(defs []byte) int {
	n := 0
	for _, d := range defs {
		if d == 1 {
			n++
		}
	}
	return n
}

// putPointers stores pointers to values vlo..vhi of the page in the field
// at dst of n consecutive records, nil where defs says null. The values
// are copied into one new slice that the pointers share: nothing points
// into parquet-go's pooled page buffers.
func (c *directColumn) putPointers(dst unsafe.Pointer, stride uintptr, n int, defs []byte, vlo, vhi int) {
	switch c.field.kind {
	case directInt32:
		putPtrs(dst, stride, n, defs, gather(c.i32, c.idx, vlo, vhi))
	case directInt64:
		putPtrs(dst, stride, n, defs, gather(c.i64, c.idx, vlo, vhi))
	case directFloat:
		putPtrs(dst, stride, n, defs, gather(c.f32, c.idx, vlo, vhi))
	case directDouble:
		putPtrs(dst, stride, n, defs, gather(c.f64, c.idx, vlo, vhi))
	case directTime:
		raw := gather(c.i64, c.idx, vlo, vhi)
		times := make([]time.Time, len(raw))
		for i, v := range raw {
			times[i] = c.field.time(v)
		}
		putPtrs(dst, stride, n, defs, times)
	case directString:
		var strs []string
		switch {
		case c.idx != nil:
			strs = gather(c.dictStrs, c.idx, vlo, vhi)
		case vhi > vlo:
			strs = make([]string, vhi-vlo)
			putStrings(unsafe.Pointer(unsafe.SliceData(strs)), unsafe.Sizeof(""), c.bytes, c.offs[vlo:vhi+1])
		}
		putPtrs(dst, stride, n, defs, strs)
	}
}

// gather returns a new slice of values vlo..vhi: vals[vlo:vhi], or looked
// up in vals through idx[vlo:vhi].
func gather[V any](vals []V, idx []int32, vlo, vhi int) []V {
	out := make([]V, vhi-vlo)
	if idx == nil {
		copy(out, vals[vlo:vhi])
		return out
	}
	for i, j := range idx[vlo:vhi] {
		out[i] = vals[j]
	}
	return out
}

// putPtrs stores &vals[j] for the j-th row that defs says is not null (all
// rows when defs is nil), and nil for the others, into n records.
func putPtrs[V any](dst unsafe.Pointer, stride uintptr, n int, defs []byte, vals []V) {
	j := 0
	for i := range n {
		p := (**V)(unsafe.Add(dst, uintptr(i)*stride))
		if defs == nil || defs[i] == 1 {
			*p = &vals[j]
			j++
		} else {
			*p = nil
		}
	}
}

// put stores vals into the field at dst of consecutive records.
func put[V any](dst unsafe.Pointer, stride uintptr, vals []V) {
	for i, v := range vals {
		*(*V)(unsafe.Add(dst, uintptr(i)*stride)) = v
	}
}

// putIndexed stores dictionary values. An index out of the dictionary
// (a corrupt file) panics, which the reader turns into ErrCorrupt.
func putIndexed[V any](dst unsafe.Pointer, stride uintptr, dict []V, idx []int32) {
	for i, j := range idx {
		*(*V)(unsafe.Add(dst, uintptr(i)*stride)) = dict[j]
	}
}

// putStrings stores the byte arrays that offs delimit: one string is
// allocated for the run and each field is a substring of it.
func putStrings(dst unsafe.Pointer, stride uintptr, bytes []byte, offs []uint32) {
	first := offs[0]
	all := string(bytes[first:offs[len(offs)-1]])
	for i := range len(offs) - 1 {
		*(*string)(unsafe.Add(dst, uintptr(i)*stride)) = all[offs[i]-first : offs[i+1]-first]
	}
}
