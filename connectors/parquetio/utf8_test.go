package parquetio

import (
	"reflect"
	"runtime/debug"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/parquet-go/parquet-go"
)

type u8Addr struct {
	City string `parquet:"city"`
	Zip  []byte `parquet:"zip"` // binary
}

type u8Base struct {
	Note string `parquet:"note"`
}

// u8Doc is written to a JSON column by encoding/json; it refers to itself.
type u8Doc struct {
	Title string            `json:"title"`
	Refs  []string          `json:"refs"`
	Skip  string            `json:"-"`
	Next  *u8Doc            `json:"next"`
	Meta  map[string]string `json:"meta"`
	Data  []byte            `json:"data"` // base64
	Any   any               `json:"any"`  // not checked
}

// u8Rec has a field of every shape that the checker knows.
type u8Rec struct {
	u8Base
	ID     int64             `parquet:"id"`
	Name   string            `parquet:"name"`
	Nick   *string           `parquet:"nick"`
	Raw    []byte            `parquet:"raw"`         // binary
	Text   []byte            `parquet:"text,string"` // STRING
	Blob   string            `parquet:"blob,bytes"`  // binary
	Kind   string            `parquet:"kind,enum"`
	Tags   []string          `parquet:"tags"`
	Labels []string          `parquet:"labels,list"`
	Addr   u8Addr            `parquet:"addr"`
	Home   *u8Addr           `parquet:"home"`
	Past   []u8Addr          `parquet:"past"`
	Attrs  map[string]string `parquet:"attrs"`
	Doc    u8Doc             `parquet:"doc,json"`
	JS     string            `parquet:"js,json"`
	At     time.Time         `parquet:"at"`
	Skip   string            `parquet:"-"`
	hidden string
}

func goodU8Rec() u8Rec {
	nick := "nick"
	return u8Rec{u8Base: u8Base{Note: "n"}, ID: 1, Name: "ünï", Nick: &nick, Raw: []byte{0xff}, Text: []byte("t"),
		Blob: "\xff", Kind: "k", Tags: []string{"a", "b"}, Labels: []string{"l"}, Addr: u8Addr{City: "c", Zip: []byte{0xfe}},
		Home: &u8Addr{City: "h"}, Past: []u8Addr{{City: "p"}, {City: "q"}}, Attrs: map[string]string{"k": "v", "k2": "v2"},
		Doc: u8Doc{Title: "t", Refs: []string{"r"}, Skip: "\xff", Next: &u8Doc{Title: "next"}, Meta: map[string]string{"m": "v"},
			Data: []byte{0xff}, Any: "\xff"},
		JS: `{"a":1}`, At: time.Now(), Skip: "\xff", hidden: "\xff"}
}

// TestUTF8Checker breaks one string of a record at a time and checks that
// the checker names its column (a column of the record's Parquet schema),
// and that the strings that go to binary columns, or nowhere, pass.
func TestUTF8Checker(t *testing.T) {
	check := utf8Checker(reflect.TypeFor[u8Rec]())
	if check == nil {
		t.Fatal("no checker for a record with strings")
	}
	rec := goodU8Rec()
	if column, ok := check(unsafe.Pointer(&rec)); !ok {
		t.Fatalf("a good record fails at %q", column)
	}
	schema := parquet.SchemaOf(new(u8Rec))
	const bad = "a\xffb"
	tested := map[string]bool{}
	for _, tc := range []struct {
		column string
		breaks func(r *u8Rec)
	}{
		{"note", func(r *u8Rec) { r.Note = bad }},
		{"name", func(r *u8Rec) { r.Name = bad }},
		{"nick", func(r *u8Rec) { *r.Nick = bad }},
		{"text", func(r *u8Rec) { r.Text = []byte(bad) }},
		{"kind", func(r *u8Rec) { r.Kind = bad }},
		{"tags", func(r *u8Rec) { r.Tags[1] = bad }},
		{"labels.list.element", func(r *u8Rec) { r.Labels[0] = bad }},
		{"addr.city", func(r *u8Rec) { r.Addr.City = bad }},
		{"home.city", func(r *u8Rec) { r.Home.City = bad }},
		{"past.city", func(r *u8Rec) { r.Past[1].City = bad }},
		{"attrs.key_value.key", func(r *u8Rec) { r.Attrs[bad] = "v" }},
		{"attrs.key_value.value", func(r *u8Rec) { r.Attrs["k2"] = bad }},
		{"doc", func(r *u8Rec) { r.Doc.Title = bad }},
		{"doc", func(r *u8Rec) { r.Doc.Refs[0] = bad }},
		{"doc", func(r *u8Rec) { r.Doc.Next.Title = bad }},
		{"doc", func(r *u8Rec) { r.Doc.Next.Next = &u8Doc{Meta: map[string]string{bad: ""}} }},
		{"js", func(r *u8Rec) { r.JS = bad }},
	} {
		r := goodU8Rec()
		tc.breaks(&r)
		column, ok := check(unsafe.Pointer(&r))
		if ok || column != tc.column {
			t.Errorf("breaking %s: check = %q, %v", tc.column, column, ok)
		}
		if _, isColumn := schema.Lookup(strings.Split(tc.column, ".")...); !isColumn {
			t.Errorf("%q is not a column of %v", tc.column, schema)
		}
		tested[tc.column] = true
	}
	// Every UTF-8 column of the schema is among them.
	for _, path := range schema.Columns() {
		leaf, _ := schema.Lookup(path...)
		if column := strings.Join(path, "."); utf8Column(leaf.Node) != tested[column] {
			t.Errorf("column %s (%v): UTF-8 %v, tested %v", column, leaf.Node.Type(), utf8Column(leaf.Node), tested[column])
		}
	}
	// The first bad field in field order is named.
	r := goodU8Rec()
	r.Attrs["k"], r.Name, r.Note = bad, bad, bad
	if column, _ := check(unsafe.Pointer(&r)); column != "note" {
		t.Errorf("three bad fields: check names %q, want note (embedded, first)", column)
	}
	// Nil pointers, empty slices and maps pass.
	r = u8Rec{Name: "x"}
	if column, ok := check(unsafe.Pointer(&r)); !ok {
		t.Errorf("a record of zeros fails at %q", column)
	}
}

// TestUTF8CheckerNil checks that a record type without a string that goes
// to a UTF-8 column has no checker.
func TestUTF8CheckerNil(t *testing.T) {
	type binary struct {
		ID    int64             `parquet:"id"`
		Raw   []byte            `parquet:"raw"`
		Blob  string            `parquet:"blob,bytes"`
		Fixed [4]byte           `parquet:"fixed"`
		At    time.Time         `parquet:"at"`
		Nums  map[int64]float64 `parquet:"nums"`
		Skip  string            `parquet:"-"`
	}
	if utf8Checker(reflect.TypeFor[binary]()) != nil {
		t.Error("a checker for a record without UTF-8 columns")
	}
}

// TestUTF8CheckerAllocs checks that a check, maps included, allocates
// nothing. (Under the race detector sync.Pool drops some of what it is
// given, so the scratch space of maps is allocated again now and then.)
func TestUTF8CheckerAllocs(t *testing.T) {
	check := utf8Checker(reflect.TypeFor[u8Rec]())
	rec := goodU8Rec()
	if raceEnabled() {
		rec.Attrs, rec.Doc.Meta = nil, nil
	}
	if n := testing.AllocsPerRun(100, func() { check(unsafe.Pointer(&rec)) }); n != 0 {
		t.Errorf("a check allocates %v times", n)
	}
}

// raceEnabled reports whether the test runs under the race detector.
func raceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

// u8Flat is the shape of most records: numbers and a few strings.
type u8Flat struct {
	UserID  int64   `parquet:"user_id"`
	OrderID int64   `parquet:"order_id"`
	TS      int64   `parquet:"ts,timestamp(millisecond)"`
	Amount  float64 `parquet:"amount"`
	Country string  `parquet:"country"`
	City    string  `parquet:"city"`
	Email   *string `parquet:"email"`
}

// BenchmarkUTF8Checker measures a check per record: a flat record of three
// strings (24 bytes of text) and the record of every shape.
func BenchmarkUTF8Checker(b *testing.B) {
	email := "someone@example.com"
	flat := make([]u8Flat, 1024)
	for i := range flat {
		flat[i] = u8Flat{UserID: int64(i), Country: "DE", City: "Düsseldorf", Email: &email}
	}
	wide := make([]u8Rec, 1024)
	for i := range wide {
		wide[i] = goodU8Rec()
	}
	b.Run("flat", func(b *testing.B) { benchChecker(b, flat) })
	// The floor: the same checks written out by hand.
	b.Run("flat-by-hand", func(b *testing.B) {
		n := 0
		for b.Loop() {
			for i := range flat {
				r := &flat[i]
				if !utf8.ValidString(r.Country) || !utf8.ValidString(r.City) || r.Email != nil && !utf8.ValidString(*r.Email) {
					b.Fatalf("record %d fails", i)
				}
			}
			n += len(flat)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/record")
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("wide", func(b *testing.B) { benchChecker(b, wide) })
}

func benchChecker[T any](b *testing.B, recs []T) {
	check := utf8Checker(reflect.TypeFor[T]())
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for i := range recs {
			if column, ok := check(unsafe.Pointer(&recs[i])); !ok {
				b.Fatalf("record %d fails at %s", i, column)
			}
		}
		n += len(recs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/record")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
