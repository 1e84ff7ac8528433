package parquetio

import (
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// record describes a record type T: its Parquet schema, its top-level
// fields by column name and the columns it reads.
type record struct {
	typ    reflect.Type
	schema *parquet.Schema
	fields map[string]int // top-level column name → struct field index
	want   []wantColumn
	// truncate allows conversions of timestamps to a coarser unit
	// (TruncateTimestamps).
	truncate bool
}

// wantColumn is a column that a record reads: a leaf of its Parquet schema
// or a top-level Decimal field (which parquet-go's schema has no leaf for).
type wantColumn struct {
	path     []string
	name     string // path joined with dots
	field    int    // the top-level struct field that holds it
	top      bool   // the field itself holds the column (path has one name)
	decimal  bool   // a Decimal or *Decimal field
	ptr      bool   // the top-level field is a pointer
	elem     reflect.Type
	leaf     parquet.LeafColumn // the record schema's column, unless decimal
	def, rep int                // the record's maximum definition and repetition levels
}

// leafType is the column's type in the record's schema, nil for a Decimal.
func (w *wantColumn) leafType() parquet.Type {
	if w.decimal {
		return nil
	}
	return w.leaf.Node.Type()
}

func recordOf[T any]() (rec *record, err error) {
	t := reflect.TypeFor[T]()
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: record type %v is not a struct", ErrConfig, t)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: record type %v has no Parquet schema: %v", ErrConfig, t, r)
		}
	}()
	rec = &record{typ: t, schema: parquet.SchemaOf(new(T)), fields: map[string]int{}}
	var decimals []wantColumn
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("parquet"); ok {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
		}
		rec.fields[name] = i
		ft, ptr := f.Type, f.Type.Kind() == reflect.Pointer
		if ptr {
			ft = ft.Elem()
		}
		if ft == decimalType {
			w := wantColumn{path: []string{name}, name: name, field: i, top: true, decimal: true, ptr: ptr, elem: ft}
			if ptr {
				w.def = 1
			}
			decimals = append(decimals, w)
		} else if inner := decimalFields(f.Type, name, map[reflect.Type]bool{}); len(inner) > 0 {
			return nil, fmt.Errorf("%w: record type %v: %s: a parquetio.Decimal must be a top-level field (or a pointer to one)",
				ErrConfig, t, strings.Join(inner, ", "))
		}
	}
	for _, path := range rec.schema.Columns() {
		leaf, _ := rec.schema.Lookup(path...)
		i := rec.fields[path[0]]
		ft := t.Field(i).Type
		w := wantColumn{path: path, name: strings.Join(path, "."), field: i, top: len(path) == 1,
			ptr: ft.Kind() == reflect.Pointer, leaf: leaf, def: leaf.MaxDefinitionLevel, rep: leaf.MaxRepetitionLevel}
		if w.ptr {
			ft = ft.Elem()
		}
		w.elem = ft
		rec.want = append(rec.want, w)
	}
	rec.want = append(rec.want, decimals...)
	if len(rec.want) == 0 {
		return nil, fmt.Errorf("%w: record type %v has no Parquet columns (no exported fields?)", ErrConfig, t)
	}
	return rec, nil
}

// decimalFields names the Decimal fields within t (a field's type, named
// prefix), which only a record's top level may hold.
func decimalFields(t reflect.Type, prefix string, seen map[reflect.Type]bool) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t == decimalType {
		return []string{prefix}
	}
	if t.Kind() != reflect.Struct || t == timeType || seen[t] {
		return nil
	}
	seen[t] = true
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() {
			out = append(out, decimalFields(f.Type, prefix+"."+f.Name, seen)...)
		}
	}
	return out
}

// brokenDateFields names the time.Time fields of t tagged date: parquet-go
// v0.32 writes them as nanoseconds truncated to 32 bits instead of days
// (an int32 field tagged date is written right), so the sink refuses them.
func brokenDateFields(t reflect.Type, prefix string, seen map[reflect.Type]bool) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == timeType || seen[t] {
		return nil
	}
	seen[t] = true
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("parquet")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft == timeType && slices.Contains(strings.Split(opts, ","), "date") {
			out = append(out, prefix+name)
		}
		out = append(out, brokenDateFields(f.Type, prefix+name+".", seen)...)
	}
	return out
}

// fileFit is how one file's schema fits the record type.
type fileFit struct {
	// nonNull lists the file's column indexes, with their names, that are
	// optional in the file but required in the record: a null there would
	// be read as a zero value, so row groups with nulls are refused.
	nonNull []nonNullColumn
	// fills sets record fields that are partition keys of the file's path
	// and not columns of the file.
	fills []fill
	// direct: some column needs a conversion (convOf) or the record has a
	// Decimal field, which only the direct read path does.
	direct bool
	// int32s lists the INT32 columns read, for checkDeltas.
	int32s []int32Column
}

type int32Column struct {
	index    int
	name     string
	unsigned bool
}

type nonNullColumn struct {
	index int
	name  string
}

type fill struct {
	field int
	value reflect.Value
}

// fit checks the file schema fs against the record type. parquet-go would
// read a missing column as zeros and convert some mismatched types
// silently; both are errors here (DESIGN §7), except the conversions that
// convOf allows for top-level columns, which are exact (or truncate
// timestamps where the user asked for it). A column the file lacks reads
// as nil into a pointer field (schema evolution) and is an error for any
// other top-level field. parts are the file's partition values. The
// errors name the columns; the caller adds the file.
func (r *record) fit(fs *parquet.Schema, parts []partition) (*fileFit, error) {
	ff := &fileFit{}
	var problems []string
	filled := map[string]bool{}
	for _, p := range parts {
		i, ok := r.fields[p.key]
		if !ok || filled[p.key] {
			continue
		}
		if _, inFile := fs.Lookup(p.key); inFile {
			continue
		}
		if _, isLeaf := r.schema.Lookup(p.key); !isLeaf {
			continue
		}
		v, err := parsePartitionValue(r.typ.Field(i).Type, p.value)
		if err != nil {
			problems = append(problems, fmt.Sprintf("field %s: partition value %s=%s: %v", r.typ.Field(i).Name, p.key, p.value, err))
			continue
		}
		ff.fills = append(ff.fills, fill{field: i, value: v})
		filled[p.key] = true
	}
	for i := range r.want {
		w := &r.want[i]
		if w.decimal {
			ff.direct = true
		}
		got, ok := fs.Lookup(w.path...)
		if !ok {
			if w.top && filled[w.path[0]] {
				continue
			}
			switch {
			case w.top && w.rep == 0 && !w.ptr:
				problems = append(problems, fmt.Sprintf("column %s is missing and field %s (%v) is not a pointer, which would read nil",
					w.name, r.typ.Field(w.field).Name, r.typ.Field(w.field).Type))
			case !w.top && w.def == 0 && w.rep == 0:
				problems = append(problems, fmt.Sprintf("column %s (%s) is missing", w.name, typeName(w.leafType())))
			}
			continue
		}
		gt := got.Node.Type()
		if w.top && w.rep == 0 && got.MaxRepetitionLevel == 0 {
			fc, problem := convOf(w.elem, w.leafType(), gt, r.truncate)
			if problem != "" {
				problems = append(problems, fmt.Sprintf("column %s: %s", w.name, problem))
				continue
			}
			if !fc.exact {
				ff.direct = true
			}
		} else if !w.decimal && !exactType(w.leafType(), gt) {
			problems = append(problems, fmt.Sprintf("column %s is %s in the file but %s in %v", w.name, typeName(gt), typeName(w.leafType()), r.typ))
			continue
		}
		if w.rep != got.MaxRepetitionLevel {
			problems = append(problems, fmt.Sprintf("column %s is %s in the file but %s in %v", w.name,
				repetition(got.MaxRepetitionLevel), repetition(w.rep), r.typ))
			continue
		}
		if w.def < got.MaxDefinitionLevel {
			ff.nonNull = append(ff.nonNull, nonNullColumn{index: got.ColumnIndex, name: w.name})
		}
		if gt.Kind() == parquet.Int32 {
			_, signed, _ := intOf(gt)
			ff.int32s = append(ff.int32s, int32Column{index: got.ColumnIndex, name: w.name, unsigned: !signed && decimalOf(gt) == nil})
		}
	}
	if ff.direct && len(problems) == 0 {
		if _, err := r.plan(fs, ff); err != nil {
			return nil, err
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrSchema, strings.Join(problems, "; "))
	}
	return ff, nil
}

func repetition(level int) string {
	if level > 0 {
		return "repeated"
	}
	return "not repeated"
}

// checkNulls refuses a row group that holds nulls in a column that the
// record type cannot represent as null.
func (ff *fileFit) checkNulls(rg parquet.RowGroup) error {
	chunks := rg.ColumnChunks()
	for _, c := range ff.nonNull {
		fc, ok := chunks[c.index].(*parquet.FileColumnChunk)
		if !ok {
			continue
		}
		if n := fc.NullCount(); n > 0 {
			return fmt.Errorf("%w: column %s holds %d nulls but its field is not optional (make it a pointer or tag it optional)", ErrSchema, c.name, n)
		}
	}
	return nil
}

// checkDeltas refuses a row group with an INT32 column in
// DELTA_BINARY_PACKED pages whose values span more than an int32: DuckDB
// (V2 pages) computes such deltas in 64 bits, and parquet-go v0.32 decodes
// them in 32 and gets values wrong by one, or refuses an unsigned page whose
// first value is 2^31 or more. The column chunk's statistics bound the
// span; without statistics the row group is read as it is.
func (ff *fileFit) checkDeltas(md *format.RowGroup) error {
	for _, c := range ff.int32s {
		if c.index >= len(md.Columns) {
			continue
		}
		cm := &md.Columns[c.index].MetaData
		if !slices.Contains(cm.Encoding, format.DeltaBinaryPacked) {
			continue
		}
		lo, hi := cm.Statistics.MinValue, cm.Statistics.MaxValue
		if len(lo) != 4 || len(hi) != 4 {
			if lo, hi = cm.Statistics.Min, cm.Statistics.Max; len(lo) != 4 || len(hi) != 4 {
				continue
			}
		}
		min, max := int64(int32(binary.LittleEndian.Uint32(lo))), int64(int32(binary.LittleEndian.Uint32(hi)))
		if c.unsigned {
			min, max = int64(binary.LittleEndian.Uint32(lo)), int64(binary.LittleEndian.Uint32(hi))
		}
		if max-min > math.MaxInt32 {
			return fmt.Errorf("%w: column %s: its DELTA_BINARY_PACKED values span %d to %d, more than an int32, which parquet-go v0.32 decodes wrong (write the file with V1 pages or another encoding)",
				ErrCorrupt, c.name, min, max)
		}
	}
	return nil
}

// filled reports whether the file's partition values fill record field i.
func (ff *fileFit) filled(i int) bool {
	for _, f := range ff.fills {
		if f.field == i {
			return true
		}
	}
	return false
}

// apply fills partition values into records.
func (ff *fileFit) apply(recs reflect.Value) {
	if len(ff.fills) == 0 {
		return
	}
	for i := range recs.Len() {
		rv := recs.Index(i)
		for _, f := range ff.fills {
			rv.Field(f.field).Set(f.value)
		}
	}
}

// ---- partition values ----

// partition is one key=value segment of a Hive-style path.
type partition struct{ key, value string }

// parsePartitions returns the key=value segments of dirs, unescaped.
func parsePartitions(dirs []string) []partition {
	var out []partition
	for _, d := range dirs {
		k, v, ok := strings.Cut(d, "=")
		if !ok || k == "" {
			continue
		}
		out = append(out, partition{key: unescapePath(k), value: unescapePath(v)})
	}
	return out
}

func parsePartitionValue(t reflect.Type, raw string) (reflect.Value, error) {
	if t.Kind() == reflect.Pointer {
		if raw == defaultPartition {
			return reflect.Zero(t), nil
		}
		v, err := parsePartitionValue(t.Elem(), raw)
		if err != nil {
			return reflect.Value{}, err
		}
		p := reflect.New(t.Elem())
		p.Elem().Set(v)
		return p, nil
	}
	v := reflect.New(t).Elem()
	if raw == defaultPartition {
		return v, nil
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, t.Bits())
		if err != nil {
			return reflect.Value{}, err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(raw, 10, t.Bits())
		if err != nil {
			return reflect.Value{}, err
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(raw, t.Bits())
		if err != nil {
			return reflect.Value{}, err
		}
		v.SetFloat(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return reflect.Value{}, err
		}
		v.SetBool(b)
	default:
		return reflect.Value{}, fmt.Errorf("cannot fill a %v from a path", t)
	}
	return v, nil
}

// appendPartitionValue appends a field value as a partition value.
func appendPartitionValue(buf []byte, v reflect.Value) []byte {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return append(buf, defaultPartition...)
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.String:
		return appendEscaped(buf, v.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(buf, v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.AppendUint(buf, v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return strconv.AppendFloat(buf, v.Float(), 'g', -1, v.Type().Bits())
	case reflect.Bool:
		return strconv.AppendBool(buf, v.Bool())
	}
	panic(fmt.Sprintf("parquetio: a %v cannot be a partition value", v.Type())) // checked by Sink
}

func partitionable(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// escapePath escapes a partition value as Hive does (FileUtils.escapePathName):
// characters that are unsafe in a path segment become %XX. An empty value
// is Hive's null partition.
func escapePath(s string) string { return string(appendEscaped(nil, s)) }

func appendEscaped(buf []byte, s string) []byte {
	if s == "" {
		return append(buf, defaultPartition...)
	}
	// Most values need no escape: append them whole (this runs per record
	// when writing partitioned output).
	i := 0
	for i < len(s) && !unsafeInPath[s[i]] {
		i++
	}
	buf = append(buf, s[:i]...)
	const hex = "0123456789ABCDEF"
	for ; i < len(s); i++ {
		c := s[i]
		if unsafeInPath[c] {
			buf = append(buf, '%', hex[c>>4], hex[c&15])
			continue
		}
		buf = append(buf, c)
	}
	return buf
}

// unsafeInPath marks the bytes that Hive escapes in a path segment.
var unsafeInPath = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t[0x7F] = true
	for _, c := range []byte("\"#%'*/:=?\\{[]^") {
		t[c] = true
	}
	return t
}()

func unescapePath(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
