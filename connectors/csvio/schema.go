package csvio

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// field is one column that the record type reads.
type field struct {
	column   string // the column's name: the tag's, else the field's
	goName   string // the Go field, dotted through embedded structs
	index    []int
	optional bool
	set      func(v reflect.Value, s string) error
}

// schema is how a record type reads a row.
type schema struct {
	typ    reflect.Type
	fields []field
}

var (
	timeType            = reflect.TypeFor[time.Time]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// schemaOf works out the columns of record type t.
func schemaOf(t reflect.Type, layout string) (*schema, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: record type %v is not a struct", ErrConfig, t)
	}
	s := &schema{typ: t}
	if err := s.add(t, nil, "", layout); err != nil {
		return nil, err
	}
	if len(s.fields) == 0 {
		return nil, fmt.Errorf("%w: record type %v has no exported fields to read", ErrConfig, t)
	}
	for i, f := range s.fields {
		for _, g := range s.fields[:i] {
			if strings.EqualFold(f.column, g.column) {
				return nil, fmt.Errorf("%w: %v fields %s and %s both read column %q", ErrConfig, t, g.goName, f.goName, f.column)
			}
		}
	}
	return s, nil
}

func (s *schema) add(t reflect.Type, index []int, prefix, layout string) error {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, hasTag := sf.Tag.Lookup("csv")
		if tag == "-" || !sf.IsExported() && !sf.Anonymous {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		optional := false
		for o := range strings.SplitSeq(opts, ",") {
			switch o {
			case "":
			case "optional":
				optional = true
			default:
				return fmt.Errorf("%w: %v field %s: unknown tag option %q", ErrConfig, s.typ, prefix+sf.Name, o)
			}
		}
		idx := append(append([]int(nil), index...), i)
		ft := sf.Type
		if sf.Anonymous && !hasTag && ft.Kind() == reflect.Struct && setterOf(ft, layout) == nil {
			if err := s.add(ft, idx, prefix+sf.Name+".", layout); err != nil {
				return err
			}
			continue
		}
		if !sf.IsExported() {
			continue // an unexported embedded type that is not a struct
		}
		set := setterOf(ft, layout)
		if set == nil {
			return fmt.Errorf("%w: %v field %s: unsupported type %v (tag it `csv:\"-\"` to skip it)", ErrConfig, s.typ, prefix+sf.Name, ft)
		}
		if name == "" {
			name = sf.Name
		}
		s.fields = append(s.fields, field{column: name, goName: prefix + sf.Name, index: idx, optional: optional, set: set})
	}
	return nil
}

// setterOf returns a function that parses a value into a field of type t,
// or nil if t is not supported.
func setterOf(t reflect.Type, layout string) func(reflect.Value, string) error {
	if t.Kind() == reflect.Pointer {
		elem := t.Elem()
		if elem.Kind() == reflect.Pointer {
			return nil
		}
		set := setterOf(elem, layout)
		if set == nil {
			return nil
		}
		return func(v reflect.Value, s string) error {
			if s == "" {
				v.SetZero()
				return nil
			}
			p := reflect.New(elem)
			if err := set(p.Elem(), s); err != nil {
				return err
			}
			v.Set(p)
			return nil
		}
	}
	if t == timeType {
		return func(v reflect.Value, s string) error {
			x, err := time.Parse(layout, s)
			if err != nil {
				return err
			}
			*v.Addr().Interface().(*time.Time) = x // without boxing x
			return nil
		}
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return func(v reflect.Value, s string) error {
			return v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s))
		}
	}
	switch t.Kind() {
	case reflect.String:
		return func(v reflect.Value, s string) error {
			if !utf8.ValidString(s) {
				return invalidUTF8(s)
			}
			v.SetString(s)
			return nil
		}
	case reflect.Bool:
		return func(v reflect.Value, s string) error {
			x, err := strconv.ParseBool(s)
			v.SetBool(x)
			return err
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := t.Bits()
		return func(v reflect.Value, s string) error {
			x, err := strconv.ParseInt(s, 10, bits)
			v.SetInt(x)
			return err
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		bits := t.Bits()
		return func(v reflect.Value, s string) error {
			x, err := strconv.ParseUint(s, 10, bits)
			v.SetUint(x)
			return err
		}
	case reflect.Float32, reflect.Float64:
		bits := t.Bits()
		return func(v reflect.Value, s string) error {
			x, err := strconv.ParseFloat(s, bits)
			v.SetFloat(x)
			return err
		}
	}
	return nil
}

// utf8Error is the error for a string value that is not valid UTF-8.
type utf8Error struct {
	at int  // the first bad byte's offset in the value
	b  byte // that byte
}

func invalidUTF8(s string) error {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			break
		}
		i += n
	}
	return &utf8Error{at: i, b: s[i]}
}

func (e *utf8Error) Error() string {
	return fmt.Sprintf("not valid UTF-8 (byte %d of the value is %#02x)", e.at+1, e.b)
}

// Is reports whether target is ErrInvalidUTF8.
func (e *utf8Error) Is(target error) bool { return target == ErrInvalidUTF8 }

// bind maps a file's header to the fields: cols[i] is the field that column
// i reads, or -1. It fails if a field's column is missing (and not optional)
// or matched twice.
func (s *schema) bind(path string, header []string) ([]int, error) {
	cols := make([]int, len(header))
	for i := range cols {
		cols[i] = -1
	}
	var missing, twice []string
	for fi, f := range s.fields {
		var exact, folded []int
		for i, h := range header {
			h = strings.TrimSpace(h)
			if h == f.column {
				exact = append(exact, i)
			} else if strings.EqualFold(h, f.column) {
				folded = append(folded, i)
			}
		}
		match := exact
		if len(match) == 0 {
			match = folded
		}
		switch len(match) {
		case 0:
			if !f.optional {
				missing = append(missing, strconv.Quote(f.column))
			}
		case 1:
			cols[match[0]] = fi
		default:
			var at []string
			for _, i := range match {
				at = append(at, strconv.Itoa(i+1))
			}
			twice = append(twice, fmt.Sprintf("%q (columns %s)", f.column, strings.Join(at, ", ")))
		}
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, "lacks column"+plural(missing)+" "+strings.Join(missing, ", "))
	}
	if len(twice) > 0 {
		problems = append(problems, "has more than one column for "+strings.Join(twice, "; "))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s: the header %s of record type %v (header: %s)",
			ErrHeader, path, strings.Join(problems, " and "), s.typ, strings.Join(quoteAll(header), ","))
	}
	return cols, nil
}

func plural(xs []string) string {
	if len(xs) == 1 {
		return ""
	}
	return "s"
}

func quoteAll(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = strconv.Quote(x)
	}
	return out
}
