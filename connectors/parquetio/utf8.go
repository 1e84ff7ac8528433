package parquetio

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// utf8Checker returns a function that checks a record of type t, a struct
// type that parquet.SchemaOf accepts (recordOf checks that first: it panics
// otherwise), for text that is not valid UTF-8 on its way to a column that
// must hold UTF-8: a BYTE_ARRAY column with the STRING, ENUM or JSON logical
// type. parquet-go writes such bytes as they are, and readers then fail or
// replace them. rec points to a T (unsafe.Pointer(&recs[i])); the function
// returns the column path of the first bad value in field order
// ("name", "address.city", "tags.list.element", "attrs.key_value.value"),
// with ok false, or ("", true). It returns nil when no such column can
// receive a string from t, so that the writer need not call it.
//
// What is checked, as parquet-go maps the fields (tags included):
//
//   - string fields (and named string types) of STRING and ENUM columns,
//     and []byte fields tagged `parquet:",string"`; not []byte fields
//     otherwise, nor strings tagged bytes or uuid, which are binary;
//   - through pointers, nested and embedded structs, slices (repeated or
//     tagged list) and maps (keys and values);
//   - a field of a JSON column (tagged json): a string or []byte is written
//     as it is and checked; any other value is encoded by encoding/json,
//     which replaces invalid UTF-8 with U+FFFD without a word, so every
//     string in it is checked as encoding/json would write it (exported
//     fields, not those tagged `json:"-"`), except inside interface values
//     and types with a MarshalJSON or MarshalText method of their own.
//
// The checks are built once per type: the offsets of the fields are worked
// out ahead, and a record costs utf8.ValidString over each of its strings
// and no allocation (a map field takes scratch space from a pool). The
// function is safe for concurrent use.
func utf8Checker(t reflect.Type) func(rec unsafe.Pointer) (column string, ok bool) {
	schema := parquet.SchemaOf(reflect.New(t).Interface())
	b := &utf8Builder{json: map[reflect.Type]*utf8Lazy{}}
	items := b.value(t, schema, "")
	if len(items) == 0 {
		return nil
	}
	return func(rec unsafe.Pointer) (string, bool) { return runUTF8(items, rec) }
}

// utf8Check checks the value at p.
type utf8Check func(p unsafe.Pointer) (column string, ok bool)

// utf8Item is one check of a value at an offset from the start of the
// value that holds it.
type utf8Item struct {
	kind   utf8Kind
	off    uintptr
	column string    // utf8String, utf8Bytes
	check  utf8Check // utf8Nested
}

type utf8Kind uint8

const (
	utf8String utf8Kind = iota // a string
	utf8Bytes                  // a []byte
	utf8Nested                 // a pointer, a slice, a map, a JSON value
)

// runUTF8 runs items over the value at p, in order.
func runUTF8(items []utf8Item, p unsafe.Pointer) (string, bool) {
	for i := range items {
		it := &items[i]
		switch it.kind {
		case utf8String:
			if !utf8.ValidString(*(*string)(unsafe.Add(p, it.off))) {
				return it.column, false
			}
		case utf8Bytes:
			if !utf8.Valid(*(*[]byte)(unsafe.Add(p, it.off))) {
				return it.column, false
			}
		default:
			if column, ok := it.check(unsafe.Add(p, it.off)); !ok {
				return column, false
			}
		}
	}
	return "", true
}

// shiftUTF8 returns items for a value at offset off.
func shiftUTF8(items []utf8Item, off uintptr) []utf8Item {
	for i := range items {
		items[i].off += off
	}
	return items
}

// utf8Builder builds the checks of one record type.
type utf8Builder struct {
	// json holds the checks of the struct types inside JSON columns, made
	// or being made: a type may refer to itself there.
	json map[reflect.Type]*utf8Lazy
}

// utf8Lazy is the check of a struct type, filled once it is built.
type utf8Lazy struct {
	items []utf8Item
	done  bool
}

func (l *utf8Lazy) run(p unsafe.Pointer) (string, bool) { return runUTF8(l.items, p) }

// value returns the checks of a value of type t that parquet-go writes
// under node n, whose column path is column.
func (b *utf8Builder) value(t reflect.Type, n parquet.Node, column string) []utf8Item {
	isBytes := t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8
	if n.Leaf() && hasLogicalType[*format.JsonType](n) && t.Kind() != reflect.String && !isBytes {
		return b.jsonValue(t, column) // parquet-go encodes it with encoding/json
	}
	switch t.Kind() {
	case reflect.String:
		if utf8Column(n) {
			return []utf8Item{{kind: utf8String, column: column}}
		}
	case reflect.Slice:
		if isBytes {
			if utf8Column(n) {
				return []utf8Item{{kind: utf8Bytes, column: column}}
			}
			return nil
		}
		en, ecolumn := n, column
		if hasLogicalType[*format.ListType](n) && len(n.Fields()) == 1 && len(n.Fields()[0].Fields()) == 1 {
			list := n.Fields()[0]
			elem := list.Fields()[0]
			en, ecolumn = elem, joinColumnPath(joinColumnPath(column, list.Name()), elem.Name())
		}
		return utf8SliceItems(t, b.value(t.Elem(), en, ecolumn))
	case reflect.Pointer:
		return utf8PointerItems(b.value(t.Elem(), n, column))
	case reflect.Struct:
		if n.Leaf() {
			return nil // time.Time and the like
		}
		return b.structItems(t, n, column)
	case reflect.Map:
		if n.Leaf() || len(n.Fields()) != 1 {
			return nil
		}
		kv := n.Fields()[0]
		kn, vn := utf8FieldNamed(kv, "key", 0), utf8FieldNamed(kv, "value", 1)
		if kn == nil || vn == nil {
			return nil
		}
		kvColumn := joinColumnPath(column, kv.Name())
		return utf8MapItems(t, b.value(t.Key(), kn, joinColumnPath(kvColumn, kn.Name())),
			b.value(t.Elem(), vn, joinColumnPath(kvColumn, vn.Name())))
	}
	return nil
}

// structItems returns the checks of the fields of struct type t, which
// parquet-go writes as group n, in field order, flattened.
func (b *utf8Builder) structItems(t reflect.Type, n parquet.Node, column string) []utf8Item {
	nodes := map[string]parquet.Field{}
	for _, f := range n.Fields() {
		nodes[f.Name()] = f
	}
	var items []utf8Item
	for _, f := range utf8Fields(t, nil, 0) {
		fcolumn := joinColumnPath(column, f.name)
		var fi []utf8Item
		if fn, ok := nodes[f.name]; ok {
			fi = b.value(f.typ, fn, fcolumn)
		} else {
			// Not where parquet-go puts it (it should be): check every
			// string, to err on the side of a loud failure.
			fi = b.jsonValue(f.typ, fcolumn)
		}
		items = append(items, shiftUTF8(fi, f.offset)...)
	}
	return items
}

// utf8Field is a struct field as parquet-go sees it.
type utf8Field struct {
	name   string
	typ    reflect.Type
	offset uintptr // from the outer struct, through embedded ones
}

// utf8Fields lists the fields of t as parquet-go's struct schema does:
// in order, embedded structs flattened, named by the parquet tag, else the
// protobuf tag's name, else the Go name; `parquet:"-"` skipped.
func utf8Fields(t reflect.Type, out []utf8Field, base uintptr) []utf8Field {
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Name
		if tag := f.Tag.Get("parquet"); tag != "" {
			n, _, _ := strings.Cut(tag, ",")
			if tag != "-," && n == "-" {
				continue
			}
			if n != "" {
				name = n
			} else if pn := utf8ProtoName(f.Tag); pn != "" {
				name = pn
			}
		} else if pn := utf8ProtoName(f.Tag); pn != "" {
			name = pn
		}
		switch {
		case f.Anonymous && f.Type.Kind() == reflect.Struct:
			out = utf8Fields(f.Type, out, base+f.Offset)
		case f.IsExported() && !f.Anonymous:
			out = append(out, utf8Field{name: name, typ: f.Type, offset: base + f.Offset})
		}
	}
	return out
}

// utf8ProtoName returns the name in a protobuf struct tag, as parquet-go reads
// it.
func utf8ProtoName(tag reflect.StructTag) string {
	for part := range strings.SplitSeq(tag.Get("protobuf"), ",") {
		if k, v, ok := strings.Cut(part, "="); ok && k == "name" {
			return v
		}
	}
	return ""
}

var (
	utf8JSONMarshaler = reflect.TypeFor[json.Marshaler]()
	utf8TextMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// jsonValue returns the checks of a value of type t that encoding/json
// encodes into the JSON column column: every string in it.
func (b *utf8Builder) jsonValue(t reflect.Type, column string) []utf8Item {
	if t.Implements(utf8JSONMarshaler) || t.Implements(utf8TextMarshaler) ||
		reflect.PointerTo(t).Implements(utf8JSONMarshaler) || reflect.PointerTo(t).Implements(utf8TextMarshaler) {
		return nil // it writes itself
	}
	switch t.Kind() {
	case reflect.String:
		return []utf8Item{{kind: utf8String, column: column}}
	case reflect.Pointer:
		return utf8PointerItems(b.jsonValue(t.Elem(), column))
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil // base64
		}
		return utf8SliceItems(t, b.jsonValue(t.Elem(), column))
	case reflect.Array:
		elem := b.jsonValue(t.Elem(), column)
		if len(elem) == 0 || t.Len() == 0 {
			return nil
		}
		n, size := t.Len(), t.Elem().Size()
		return []utf8Item{{kind: utf8Nested, check: func(p unsafe.Pointer) (string, bool) {
			for i := range n {
				if column, ok := runUTF8(elem, unsafe.Add(p, uintptr(i)*size)); !ok {
					return column, false
				}
			}
			return "", true
		}}}
	case reflect.Map:
		return utf8MapItems(t, b.jsonValue(t.Key(), column), b.jsonValue(t.Elem(), column))
	case reflect.Struct:
		if l, ok := b.json[t]; ok {
			if l.done && len(l.items) == 0 {
				return nil
			}
			return []utf8Item{{kind: utf8Nested, check: l.run}} // l may be being built: t refers to itself
		}
		l := &utf8Lazy{}
		b.json[t] = l
		var items []utf8Item
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() && !f.Anonymous || f.Tag.Get("json") == "-" {
				continue
			}
			if !f.IsExported() && f.Type.Kind() != reflect.Struct &&
				!(f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct) {
				continue // encoding/json skips an unexported embedded non-struct
			}
			items = append(items, shiftUTF8(b.jsonValue(f.Type, column), f.Offset)...)
		}
		l.items, l.done = items, true
		if len(items) == 0 {
			return nil
		}
		return []utf8Item{{kind: utf8Nested, check: l.run}}
	}
	return nil // an interface holds a type known only when it runs
}

// utf8PointerItems returns the checks of a pointer whose element has the checks
// elem.
func utf8PointerItems(elem []utf8Item) []utf8Item {
	if len(elem) == 0 {
		return nil
	}
	return []utf8Item{{kind: utf8Nested, check: func(p unsafe.Pointer) (string, bool) {
		q := *(*unsafe.Pointer)(p)
		if q == nil {
			return "", true
		}
		return runUTF8(elem, q)
	}}}
}

// utf8SliceItems returns the checks of a slice of type t whose elements have
// the checks elem.
func utf8SliceItems(t reflect.Type, elem []utf8Item) []utf8Item {
	if len(elem) == 0 {
		return nil
	}
	if t.Elem().Kind() == reflect.String && len(elem) == 1 && elem[0].kind == utf8String {
		column := elem[0].column
		return []utf8Item{{kind: utf8Nested, check: func(p unsafe.Pointer) (string, bool) {
			for _, s := range *(*[]string)(p) {
				if !utf8.ValidString(s) {
					return column, false
				}
			}
			return "", true
		}}}
	}
	size := t.Elem().Size()
	return []utf8Item{{kind: utf8Nested, check: func(p unsafe.Pointer) (string, bool) {
		h := (*utf8SliceHeader)(p)
		for i := range h.len {
			if column, ok := runUTF8(elem, unsafe.Add(h.data, uintptr(i)*size)); !ok {
				return column, false
			}
		}
		return "", true
	}}}
}

// utf8SliceHeader is the layout of a slice.
type utf8SliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

// utf8MapScratch holds copies of one map entry to check.
type utf8MapScratch struct {
	it   reflect.MapIter
	k, v reflect.Value // addressable
}

// utf8MapItems returns the checks of a map of type t whose keys and values have
// the checks key and val. Entries are copied into scratch space from a pool,
// where the checks read them.
func utf8MapItems(t reflect.Type, key, val []utf8Item) []utf8Item {
	if len(key) == 0 && len(val) == 0 {
		return nil
	}
	pool := &sync.Pool{New: func() any {
		return &utf8MapScratch{k: reflect.New(t.Key()).Elem(), v: reflect.New(t.Elem()).Elem()}
	}}
	return []utf8Item{{kind: utf8Nested, check: func(p unsafe.Pointer) (string, bool) {
		m := reflect.NewAt(t, p).Elem()
		if m.Len() == 0 {
			return "", true
		}
		s := pool.Get().(*utf8MapScratch)
		defer func() {
			s.it.Reset(reflect.Value{})
			s.k.SetZero()
			s.v.SetZero()
			pool.Put(s)
		}()
		s.it.Reset(m)
		for s.it.Next() {
			if len(key) > 0 {
				s.k.SetIterKey(&s.it)
				if column, ok := runUTF8(key, s.k.Addr().UnsafePointer()); !ok {
					return column, false
				}
			}
			if len(val) > 0 {
				s.v.SetIterValue(&s.it)
				if column, ok := runUTF8(val, s.v.Addr().UnsafePointer()); !ok {
					return column, false
				}
			}
		}
		return "", true
	}}}
}

// utf8Column reports whether n is a column that must hold UTF-8.
func utf8Column(n parquet.Node) bool {
	return n.Leaf() && n.Type().Kind() == parquet.ByteArray &&
		(hasLogicalType[*format.StringType](n) || hasLogicalType[*format.EnumType](n) || hasLogicalType[*format.JsonType](n))
}

// hasLogicalType reports whether n's logical type is a V.
func hasLogicalType[V format.LogicalTypeValue](n parquet.Node) bool {
	lt := n.Type().LogicalType()
	if lt == nil {
		return false
	}
	_, ok := lt.Value.(V)
	return ok
}

// utf8FieldNamed returns n's field called name, else its i-th, else nil.
func utf8FieldNamed(n parquet.Node, name string, i int) parquet.Field {
	fields := n.Fields()
	for _, f := range fields {
		if f.Name() == name {
			return f
		}
	}
	if i < len(fields) {
		return fields[i]
	}
	return nil
}

func joinColumnPath(column, name string) string {
	if column == "" {
		return name
	}
	return column + "." + name
}
