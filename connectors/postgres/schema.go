package postgres

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// record describes a record type T: its fields by column name.
type record struct {
	typ    reflect.Type
	fields []field
}

type field struct {
	column string
	name   string // the Go field's name, for errors
	index  int
	offset uintptr
	typ    reflect.Type // the field's type
	elem   reflect.Type // what values are scanned into: typ, or typ.Elem() for a pointer
	ptr    bool         // a pointer field: NULL reads as nil
}

func recordOf[T any]() (*record, error) {
	t := reflect.TypeFor[T]()
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: record type %v is not a struct", ErrConfig, t)
	}
	rec := &record{typ: t}
	seen := map[string]string{}
	var problems []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := strings.ToLower(f.Name)
		if tag, ok := f.Tag.Lookup("pg"); ok {
			if tag == "-" {
				continue
			}
			if tag != "" {
				name = tag
			}
		}
		if other, ok := seen[name]; ok {
			problems = append(problems, fmt.Sprintf("fields %s and %s both read column %s", other, f.Name, name))
			continue
		}
		seen[name] = f.Name
		fd := field{column: name, name: f.Name, index: i, offset: f.Offset, typ: f.Type, elem: f.Type}
		if f.Type.Kind() == reflect.Pointer {
			fd.ptr, fd.elem = true, f.Type.Elem()
		}
		rec.fields = append(rec.fields, fd)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: record type %v: %s", ErrConfig, t, strings.Join(problems, "; "))
	}
	if len(rec.fields) == 0 {
		return nil, fmt.Errorf("%w: record type %v has no exported fields", ErrConfig, t)
	}
	return rec, nil
}

// Type OIDs (pg_type.oid), fixed since PostgreSQL 8.
const (
	oidBool        = 16
	oidBytea       = 17
	oidChar        = 18
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidJSON        = 114
	oidXML         = 142
	oidFloat4      = 700
	oidFloat8      = 701
	oidBpchar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

// column is a column of the result, as the server describes it.
type column struct {
	name     string
	oid      uint32
	typeName string // format_type(oid, NULL): usable in SQL casts
	category byte   // pg_type.typcategory: S string, E enum...
}

var (
	timeType    = reflect.TypeFor[time.Time]()
	bytesType   = reflect.TypeFor[[]byte]()
	uuidType    = reflect.TypeFor[[16]byte]()
	rawJSONType = reflect.TypeFor[json.RawMessage]()
	scannerType = reflect.TypeFor[sql.Scanner]()
	pgtypePath  = reflect.TypeFor[pgtype.Numeric]().PkgPath()
)

// fits says whether a value of column c goes into a Go value of type t
// without losing anything; when it does not, why says what would.
func fits(c column, t reflect.Type) (ok bool, why string) {
	// Types that decode themselves take anything pgx can give them.
	if t.PkgPath() == pgtypePath || reflect.PointerTo(t).Implements(scannerType) {
		return true, ""
	}
	isText := c.category == 'S' || c.category == 'E' // string types, enums
	switch {
	case t == timeType:
		return c.oid == oidDate || c.oid == oidTimestamp || c.oid == oidTimestamptz, ""
	case t == uuidType:
		return c.oid == oidUUID, ""
	case t == rawJSONType:
		return c.oid == oidJSON || c.oid == oidJSONB, ""
	case t == bytesType || (t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8):
		return c.oid == oidBytea || c.oid == oidJSON || c.oid == oidJSONB || isText, ""
	}
	switch t.Kind() {
	case reflect.Bool:
		return c.oid == oidBool, ""
	case reflect.Int16:
		return c.oid == oidInt2, widerInt(c)
	case reflect.Int32:
		return c.oid == oidInt2 || c.oid == oidInt4, widerInt(c)
	case reflect.Int64, reflect.Int:
		return c.oid == oidInt2 || c.oid == oidInt4 || c.oid == oidInt8, widerInt(c)
	case reflect.Float32:
		return c.oid == oidFloat4, widerFloat(c)
	case reflect.Float64:
		return c.oid == oidFloat4 || c.oid == oidFloat8, widerFloat(c)
	case reflect.String:
		return isText || c.oid == oidNumeric || c.oid == oidUUID || c.oid == oidJSON ||
			c.oid == oidJSONB || c.oid == oidXML, ""
	case reflect.Struct, reflect.Map, reflect.Slice:
		return c.oid == oidJSON || c.oid == oidJSONB, "" // through encoding/json
	}
	return false, ""
}

func widerInt(c column) string {
	switch c.oid {
	case oidInt2, oidInt4, oidInt8:
		return "a narrower integer would overflow"
	case oidNumeric:
		return "numeric has fractions and more digits: read it into a string or pgtype.Numeric"
	case oidFloat4, oidFloat8:
		return "floats have fractions"
	}
	return ""
}

func widerFloat(c column) string {
	switch c.oid {
	case oidFloat8:
		return "float4 would round it"
	case oidNumeric:
		return "a float would round it: read it into a string or pgtype.Numeric, or cast it in a query"
	case oidInt2, oidInt4, oidInt8:
		return "cast it to a float in a query if rounding is meant"
	}
	return ""
}

// fit checks the result's columns against the record type, reporting every
// problem at once, and returns the columns each field reads.
func (r *record) fit(what string, cols []column) error {
	byName := map[string]column{}
	times := map[string]int{}
	var names []string
	for _, c := range cols {
		byName[c.name] = c
		times[c.name]++
		names = append(names, c.name)
	}
	var problems []string
	for _, f := range r.fields {
		c, ok := byName[f.column]
		if !ok {
			problems = append(problems, fmt.Sprintf("column %s (field %s) is missing", f.column, f.name))
			continue
		}
		if times[f.column] > 1 {
			problems = append(problems, fmt.Sprintf("column %s (field %s) appears %d times: name them apart with AS", f.column, f.name, times[f.column]))
			continue
		}
		if ok, why := fits(c, f.elem); !ok {
			p := fmt.Sprintf("column %s is %s, which field %s (%v) cannot hold", c.name, c.typeName, f.name, f.typ)
			if why != "" {
				p += ": " + why
			}
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s: %s (the result has columns %s)", ErrSchema, what,
			strings.Join(problems, "; "), strings.Join(names, ", "))
	}
	return nil
}

// decoder fills records from raw values of one result, for a reader.
type decoder struct {
	m      *pgtype.Map
	fields []field
	plans  []pgtype.ScanPlan
	fds    []pgconn.FieldDescription // one per field, in select-list order
}

func (r *record) decoder(m *pgtype.Map, fds []pgconn.FieldDescription) *decoder {
	d := &decoder{m: m, fields: r.fields, fds: fds[:len(r.fields)]}
	for i, f := range r.fields {
		d.plans = append(d.plans, m.PlanScan(fds[i].DataTypeOID, fds[i].Format, reflect.New(f.elem).Interface()))
	}
	return d
}

// nullError reports a NULL into field i; the caller adds the row.
type nullError struct{ f field }

func (e nullError) Error() string {
	return fmt.Sprintf("column %s is NULL but field %s (%v) is not a pointer", e.f.column, e.f.name, e.f.typ)
}

// decode fills *rec from one row's raw values (in select-list order).
func (d *decoder) decode(rec unsafe.Pointer, raw [][]byte) error {
	for i, f := range d.fields {
		p := unsafe.Add(rec, f.offset)
		src := raw[i]
		if f.ptr {
			if src == nil {
				*(*unsafe.Pointer)(p) = nil
				continue
			}
			v := reflect.New(f.elem)
			if err := d.plans[i].Scan(src, v.Interface()); err != nil {
				return fmt.Errorf("column %s into field %s (%v): %w", f.column, f.name, f.typ, err)
			}
			*(*unsafe.Pointer)(p) = v.UnsafePointer()
			continue
		}
		if src == nil {
			return nullError{f}
		}
		if err := d.plans[i].Scan(src, reflect.NewAt(f.elem, p).Interface()); err != nil {
			return fmt.Errorf("column %s into field %s (%v): %w", f.column, f.name, f.typ, err)
		}
	}
	return nil
}
