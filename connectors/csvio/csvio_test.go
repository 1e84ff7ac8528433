package csvio_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/connectors/csvio"
	"github.com/sluice-data/sluice/stages"
)

func writeFile(t testing.TB, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func noRestarts() *actors.Config {
	cfg := actors.DefaultConfig()
	cfg.Restart.MaxRestarts = 0
	return &cfg
}

// run runs p, failing the test on an error.
func run(t *testing.T, p *stages.Pipeline) *sluice.Result {
	t.Helper()
	res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// readAll runs a job that reads pattern under the Fail policy.
func readAll[T any](t *testing.T, pattern string, opts ...csvio.Option) ([]T, error) {
	t.Helper()
	p := stages.NewPipeline("read")
	out := stages.Collect(csvio.Read[T](p, pattern, opts...))
	_, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2, Runtime: noRestarts()})
	return out.Values(), err
}

// readDead runs a job that reads pattern under the dead-letter policy and
// checks that the summary counts the dead letters.
func readDead[T any](t *testing.T, pattern string, opts ...csvio.Option) ([]T, []stages.DeadLetter) {
	t.Helper()
	p := stages.NewPipeline("read-dead")
	good, dead := csvio.ReadOrDeadLetter[T](p, pattern, opts...)
	g, d := stages.Collect(good), stages.Collect(dead)
	res := run(t, p)
	ds := d.Values()
	slices.SortFunc(ds, func(x, y stages.DeadLetter) int { return strings.Compare(x.Where, y.Where) })
	var counted int64 = -1
	for _, s := range res.Stages {
		if strings.HasSuffix(s.Name, `/parse"`) {
			counted = s.Side[0]
		}
	}
	if counted != int64(len(ds)) {
		t.Errorf("the summary counts %d dead letters, the stream holds %d", counted, len(ds))
	}
	return g.Values(), ds
}

type Base struct {
	ID int64 `csv:"id"`
}

type level int

func (l *level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low":
		*l = 1
	case "high":
		*l = 2
	default:
		return fmt.Errorf("unknown level %q", b)
	}
	return nil
}

func (l level) String() string { return [...]string{"", "low", "high"}[l] }

// wide has a field of every supported kind.
type wide struct {
	Base
	Name    string
	Flag    bool `csv:"flag"`
	I8      int8
	I16     int16
	I32     int32
	I       int
	U8      uint8
	U16     uint16
	U32     uint32
	U64     uint64
	U       uint
	F32     float32
	F64     float64
	At      time.Time  `csv:"at"`
	Addr    netip.Addr `csv:"addr"`
	Level   level      `csv:"level"`
	Email   *string    `csv:"email"`
	Maybe   *int       `csv:"maybe"`
	When    *time.Time `csv:"when"`
	Ignored chan int   `csv:"-"`
	hidden  int
}

var wideHeader = []string{"id", "name", "FLAG", "i8", "i16", "i32", "i", "u8", "u16", "u32", "u64", "u",
	"f32", "f64", "at", "addr", "level", "email", "maybe", "when"}

func wides(n int) []wide {
	odd := []string{"plain", "comma, inside", "quote \" inside", "line\nbreak", "tab\there", " spaces ", "ünïcødé ✓", ""}
	out := make([]wide, n)
	for i := range out {
		w := wide{Base: Base{ID: int64(i)}, Name: odd[i%len(odd)], Flag: i%2 == 0,
			I8: int8(-i), I16: int16(-300 * i), I32: int32(-70000 * i), I: -i << 33,
			U8: uint8(i), U16: uint16(300 * i), U32: uint32(70000 * i), U64: uint64(i) << 60, U: uint(i),
			F32: float32(i) / 3, F64: float64(i) / 7,
			At:    time.Date(2024, 1, 2, 3, 4, 5, i*1000, time.FixedZone("", 3600*(i%5-2))),
			Addr:  netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}),
			Level: level(1 + i%2)}
		if i%3 == 0 {
			s := fmt.Sprintf("u%d@example.com", i)
			w.Email = &s
		}
		if i%4 == 0 {
			m := i * 10
			w.Maybe = &m
			at := w.At.Add(time.Hour)
			w.When = &at
		}
		out[i] = w
	}
	return out
}

func (w wide) row() []string {
	opt := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	maybe, when := "", ""
	if w.Maybe != nil {
		maybe = strconv.Itoa(*w.Maybe)
	}
	if w.When != nil {
		when = w.When.Format(time.RFC3339Nano)
	}
	return []string{fmt.Sprint(w.ID), w.Name, fmt.Sprint(w.Flag), fmt.Sprint(w.I8), fmt.Sprint(w.I16),
		fmt.Sprint(w.I32), fmt.Sprint(w.I), fmt.Sprint(w.U8), fmt.Sprint(w.U16), fmt.Sprint(w.U32),
		fmt.Sprint(w.U64), fmt.Sprint(w.U), strconv.FormatFloat(float64(w.F32), 'g', -1, 32),
		strconv.FormatFloat(w.F64, 'g', -1, 64), w.At.Format(time.RFC3339Nano), w.Addr.String(),
		w.Level.String(), opt(w.Email), maybe, when}
}

// encode renders rows with encoding/csv.
func encode(t testing.TB, rows [][]string, crlf bool) string {
	t.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.UseCRLF = crlf
	if err := w.WriteAll(rows); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func byID(ws []wide) []wide {
	slices.SortFunc(ws, func(a, b wide) int { return int(a.ID - b.ID) })
	return ws
}

// equalWide compares records, times by instant.
func equalWide(t *testing.T, got, want []wide) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	norm := func(w wide) wide {
		w.At = w.At.UTC()
		if w.When != nil {
			at := w.When.UTC()
			w.When = &at
		}
		return w
	}
	for i := range want {
		if g, w := norm(got[i]), norm(want[i]); !reflect.DeepEqual(g, w) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

// TestRoundTrip writes records of every supported kind with encoding/csv,
// over three files (one with a byte-order mark and \r\n, one with its
// columns shuffled and an extra one), and reads them back under both
// policies.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := wides(3000)
	rows := func(ws []wide, perm []int, extra bool) [][]string {
		head := make([]string, 0, len(wideHeader)+1)
		for _, j := range perm {
			head = append(head, wideHeader[j])
		}
		if extra {
			head = append(head, "unused")
		}
		out := [][]string{head}
		for _, w := range ws {
			r, full := []string{}, w.row()
			for _, j := range perm {
				r = append(r, full[j])
			}
			if extra {
				r = append(r, "whatever")
			}
			out = append(out, r)
		}
		return out
	}
	ident := make([]int, len(wideHeader))
	for i := range ident {
		ident[i] = i
	}
	shuffled := slices.Clone(ident)
	slices.Reverse(shuffled)
	writeFile(t, filepath.Join(dir, "a.csv"), "\xef\xbb\xbf"+encode(t, rows(want[:1000], ident, false), true))
	writeFile(t, filepath.Join(dir, "b.csv"), encode(t, rows(want[1000:2000], shuffled, true), false))
	writeFile(t, filepath.Join(dir, "c.csv"), encode(t, rows(want[2000:], ident, false), false))

	got, err := readAll[wide](t, filepath.Join(dir, "*.csv"))
	if err != nil {
		t.Fatal(err)
	}
	equalWide(t, byID(got), want)
	got, dead := readDead[wide](t, filepath.Join(dir, "*.csv"))
	if len(dead) != 0 {
		t.Fatalf("dead letters %+v", dead)
	}
	equalWide(t, byID(got), want)
}

type person struct {
	Name  string  // by name, case-insensitively
	Age   int     `csv:"age"`
	Email *string `csv:"e-mail"`
	Note  string  `csv:"note,optional"`
}

func str(s string) *string { return &s }

// badRows is a file with good rows, rows with a wrong number of fields and
// rows with bad values; some rows span lines.
const badRows = "NAME,age,e-mail,extra\n" + // 1
	"ann,31,ann@x.org,1\n" + // 2
	"bob,42,,2\n" + // 3
	"cid,7,cid@x.org\n" + // 4: three fields
	"\n" + // 5: skipped
	"\"dee\nstill dee\",50,\"d@x\n.org\",3\n" + // 6-8: spans lines
	"eve,x,,4\n" + // 9: bad age
	"\"fay\",\"9\",\"f@x\n\n.org\",5,6\n" + // 10-12: five fields, spans lines
	"\"gus\nx\",\"\",,7\n" + // 13-14: the age, on line 14, is empty
	"hal,61,h@x.org,8"

// TestWrongColumnCount fails on the first bad row with file and line.
func TestWrongColumnCount(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "people.csv"), badRows)
	_, err := readAll[person](t, path)
	want := "csvio: " + path + ":4: 3 fields, the header has 4"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to contain %q", err, want)
	}
	var re *csvio.RowError
	if !errors.Is(err, csvio.ErrBadRow) || !errors.Is(err, csv.ErrFieldCount) || !errors.As(err, &re) || re.Line != 4 || re.Path != path {
		t.Fatalf("error %v, want a RowError at line 4 wrapping csv.ErrFieldCount", err)
	}
}

// TestBadRowsDeadLetter reads the same file under the dead-letter policy:
// the good rows arrive, and each bad row becomes one dead letter with its
// file and line, the row's text and the reason.
func TestBadRowsDeadLetter(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "people.csv"), badRows)
	got, dead := readDead[person](t, path)
	slices.SortFunc(got, func(a, b person) int { return strings.Compare(a.Name, b.Name) })
	want := []person{{Name: "ann", Age: 31, Email: str("ann@x.org")}, {Name: "bob", Age: 42},
		{Name: "dee\nstill dee", Age: 50, Email: str("d@x\n.org")}, {Name: "hal", Age: 61, Email: str("h@x.org")}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("good rows %+v, want %+v", got, want)
	}
	const stage = `flatmap "csv/parse"`
	wantDead := []stages.DeadLetter{
		{Stage: stage, Where: path + ":10", Record: "\"fay\",\"9\",\"f@x\n\n.org\",5,6", Err: "5 fields, the header has 4"},
		{Stage: stage, Where: path + ":14", Record: "\"gus\nx\",\"\",,7", Err: `column "age": strconv.ParseInt: parsing "": invalid syntax`},
		{Stage: stage, Where: path + ":4", Record: "cid,7,cid@x.org", Err: "3 fields, the header has 4"},
		{Stage: stage, Where: path + ":9", Record: "eve,x,,4", Err: `column "age": strconv.ParseInt: parsing "x": invalid syntax`},
	}
	if !reflect.DeepEqual(dead, wantDead) {
		t.Errorf("dead letters:\n%q\nwant\n%q", dead, wantDead)
	}
}

// TestBadValue checks the error for a value that does not convert under the
// Fail policy, and the line of a field inside a row that spans lines.
func TestBadValue(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ content, want string }{
		{"name,age,e-mail\nann,3x,\n", `:2: column "age": strconv.ParseInt: parsing "3x": invalid syntax`},
		{"name,age,e-mail\n\"a\nb\nc\",12345678901234567890,\n", `:4: column "age": strconv.ParseInt: parsing "12345678901234567890": value out of range`},
		{"e-mail,Age,Name\n,,ann\n", `:2: column "Age": strconv.ParseInt: parsing "": invalid syntax`},
	} {
		path := writeFile(t, filepath.Join(dir, "x.csv"), tc.content)
		_, err := readAll[person](t, path)
		if want := "csvio: " + path + tc.want; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.content, err, want)
		}
		var ne *strconv.NumError
		if !errors.As(err, &ne) {
			t.Errorf("%q: error %v does not wrap the strconv error", tc.content, err)
		}
	}
}

// TestMultiLineLines checks line numbers after quoted fields that span
// lines, with \r\n endings and comments, under both policies.
func TestMultiLineLines(t *testing.T) {
	content := "# exported\r\nname,age,e-mail\r\n" + // 1-2
		"\"a\r\nb\",1,\r\n" + // 3-4
		"# a comment\r\n" + // 5
		"c,2,\"x\r\ny\r\nz\"\r\n" + // 6-8
		"d,\"3\r\n\",\r\n" + // 9-10: the age holds a newline
		"e,4\r\n" + // 11: two fields
		"f,5,\"g\r\n" // 12: the quote never closes
	path := writeFile(t, filepath.Join(t.TempDir(), "m.csv"), content)
	_, err := readAll[person](t, path, csvio.Comment('#'))
	if want := "csvio: " + path + `:9: column "age": strconv.ParseInt: parsing "3\n": invalid syntax`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to contain %q", err, want)
	}
	got, dead := readDead[person](t, path, csvio.Comment('#'))
	slices.SortFunc(got, func(a, b person) int { return strings.Compare(a.Name, b.Name) })
	if want := []person{{Name: "a\nb", Age: 1}, {Name: "c", Age: 2, Email: str("x\ny\nz")}}; !reflect.DeepEqual(got, want) {
		t.Errorf("good rows %+v, want %+v", got, want)
	}
	wantDead := []stages.DeadLetter{
		{Where: path + ":11", Record: "e,4", Err: "2 fields, the header has 3"},
		{Where: path + ":12", Record: "f,5,\"g", Err: `extraneous or missing " in quoted-field: the quoted field at byte 5 does not close before the end of the file`},
		{Where: path + ":9", Record: "d,\"3\r\n\",", Err: `column "age": strconv.ParseInt: parsing "3\n": invalid syntax`},
	}
	for i := range dead {
		dead[i].Stage = ""
	}
	if !reflect.DeepEqual(dead, wantDead) {
		t.Errorf("dead letters:\n%q\nwant\n%q", dead, wantDead)
	}
}

// TestBadQuoting checks broken quoting: the Fail policy fails wrapping
// encoding/csv's error, the dead-letter policy reads on.
func TestBadQuoting(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "q.csv"), "name,age,e-mail\nan\"n,1,\n\"bob\"x,2,\ncid,3,\n")
	_, err := readAll[person](t, path)
	if want := "csvio: " + path + `:2: bare " in non-quoted-field at byte 3`; !errors.Is(err, csv.ErrBareQuote) || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to contain %q", err, want)
	}
	got, dead := readDead[person](t, path)
	if want := []person{{Name: "cid", Age: 3}}; !reflect.DeepEqual(got, want) {
		t.Errorf("good rows %+v, want %+v", got, want)
	}
	if len(dead) != 2 || dead[0].Where != path+":2" || dead[0].Record != "an\"n,1," ||
		dead[1].Where != path+":3" || dead[1].Err != `extraneous or missing " in quoted-field at byte 5` {
		t.Errorf("dead letters %q", dead)
	}
	// A quoted field that closes on a later line without a delimiter after
	// its quote names the line where it opens, and the line where it closes.
	path = writeFile(t, filepath.Join(t.TempDir(), "later.csv"), "name,age,e-mail\n\"x\ny\"z,1,\n")
	_, err = readAll[person](t, path)
	if want := "csvio: " + path + `:2: extraneous or missing " in quoted-field: the quoted field at byte 1 closes on line 3, byte 2, without a delimiter after its quote`; !errors.Is(err, csv.ErrQuote) || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want it to contain %q", err, want)
	}
	// LazyQuotes accepts a bare quote.
	path = writeFile(t, filepath.Join(t.TempDir(), "lazy.csv"), "name,age,e-mail\nan\"n,1,\n")
	got, err = readAll[person](t, path, csvio.LazyQuotes())
	if want := []person{{Name: `an"n`, Age: 1}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("with LazyQuotes: %+v, %v; want %+v", got, err, want)
	}
}

// TestHeader checks the mapping of header columns to fields: by tag, by
// name whatever the case, optional columns, and a header that lacks
// columns or has one twice, which fails the job under either policy.
func TestHeader(t *testing.T) {
	dir := t.TempDir()
	ok := writeFile(t, filepath.Join(dir, "ok.csv"), " e-mail ,other,AGE,name,Note\nx@y,?,3,ann,hi\n")
	got, err := readAll[person](t, ok)
	if want := []person{{Name: "ann", Age: 3, Email: str("x@y"), Note: "hi"}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("read %+v, %v; want %+v", got, err, want)
	}
	type exact struct{ Name string }
	path := writeFile(t, filepath.Join(dir, "exact.csv"), "NAME,Name\nfolded,exact\n")
	if got, err := readAll[exact](t, path); err != nil || !reflect.DeepEqual(got, []exact{{Name: "exact"}}) {
		t.Errorf("an exact match goes first: %+v, %v", got, err)
	}

	missing := writeFile(t, filepath.Join(dir, "missing.csv"), "Name,note\nann,hi\n")
	twice := writeFile(t, filepath.Join(dir, "twice.csv"), "name,age,e-mail,NAME\nann,1,,ann\n")
	for _, tc := range []struct{ path, want string }{
		{missing, "csvio: header does not fit the record type: " + missing + `: the header lacks columns "age", "e-mail" of record type csvio_test.person (header: "Name","note")`},
		{twice, "csvio: header does not fit the record type: " + twice + `: the header has more than one column for "Name" (columns 1, 4)`},
	} {
		_, err := readAll[person](t, tc.path)
		if !errors.Is(err, csvio.ErrHeader) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Read: error %v, want it to contain %q", err, tc.want)
		}
		p := stages.NewPipeline("dead-header")
		good, dead := csvio.ReadOrDeadLetter[person](p, tc.path)
		stages.Collect(good)
		stages.Collect(dead)
		_, err = sluice.Run(context.Background(), p, sluice.Options{Runtime: noRestarts()})
		if !errors.Is(err, csvio.ErrHeader) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadOrDeadLetter: error %v, want it to contain %q", err, tc.want)
		}
	}
}

// TestOptions reads files with another delimiter, comments, no header, a
// time layout and leading spaces.
func TestOptions(t *testing.T) {
	type day struct {
		Day   time.Time
		Count uint16
		Tag   *string
	}
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "days.tsv"), "# day\tcount\ttag\n2024-02-29\t 7\t\n\n2024-03-01\t8\t x\n")
	got, err := readAll[day](t, path, csvio.Delimiter('\t'), csvio.Comment('#'), csvio.NoHeader(),
		csvio.TimeLayout(time.DateOnly), csvio.TrimLeadingSpace(), csvio.StageOptions(stages.Name("days")))
	slices.SortFunc(got, func(a, b day) int { return a.Day.Compare(b.Day) })
	want := []day{{Day: time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), Count: 7},
		{Day: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), Count: 8, Tag: str("x")}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("read %+v, %v; want %+v", got, err, want)
	}
	// Without a header a row must have one field per struct field.
	short := writeFile(t, filepath.Join(dir, "short.csv"), "2024-02-29,7\n")
	_, err = readAll[day](t, short, csvio.NoHeader(), csvio.TimeLayout(time.DateOnly))
	if want := "csvio: " + short + ":1: 2 fields, the record type has 3"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want it to contain %q", err, want)
	}
	// A bad time names its column and the layout.
	short = writeFile(t, filepath.Join(dir, "short.csv"), "2024-02-29,7,\n")
	_, err = readAll[day](t, short, csvio.NoHeader())
	if want := `:1: column "Day": parsing time "2024-02-29" as "2006-01-02T15:04:05Z07:00"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want it to contain %q", err, want)
	}
}

// TestEmptyFiles reads a file with no bytes and one with only a header.
func TestEmptyFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.csv"), "")
	writeFile(t, filepath.Join(dir, "b.csv"), "\xef\xbb\xbfname,age,e-mail\r\n")
	got, err := readAll[person](t, filepath.Join(dir, "*.csv"))
	if err != nil || len(got) != 0 {
		t.Fatalf("read %+v, %v", got, err)
	}
}

// TestConfigErrors checks that record types and options that do not fit
// are graph-building mistakes naming the caller's line.
func TestConfigErrors(t *testing.T) {
	type nested struct{ Inner struct{ X int } }
	type ptrptr struct{ P **int }
	type clash struct {
		A int `csv:"x"`
		B int `csv:"X"`
	}
	type badTag struct {
		A int `csv:"a,required"`
	}
	for _, tc := range []struct {
		build func(p *stages.Pipeline)
		want  string
	}{
		{func(p *stages.Pipeline) { stages.Collect(csvio.Read[int](p, "x.csv")) }, "record type int is not a struct"},
		{func(p *stages.Pipeline) { stages.Collect(csvio.Read[struct{ x int }](p, "x.csv")) }, "has no exported fields"},
		{func(p *stages.Pipeline) { stages.Collect(csvio.Read[nested](p, "x.csv")) }, "field Inner: unsupported type struct { X int }"},
		{func(p *stages.Pipeline) { stages.Collect(csvio.Read[ptrptr](p, "x.csv")) }, "field P: unsupported type **int"},
		{func(p *stages.Pipeline) { stages.Collect(csvio.Read[clash](p, "x.csv")) }, `fields A and B both read column "X"`},
		{func(p *stages.Pipeline) { stages.Collect(csvio.Read[badTag](p, "x.csv")) }, `unknown tag option "required"`},
		{func(p *stages.Pipeline) { stages.Collect(csvio.Read[person](p, "x.csv", csvio.Delimiter('"'))) }, `Delimiter '"'`},
		{func(p *stages.Pipeline) {
			stages.Collect(csvio.Read[person](p, "x.csv", csvio.Delimiter(';'), csvio.Comment(';')))
		}, `Comment ';' with Delimiter ';'`},
		{func(p *stages.Pipeline) {
			good, dead := csvio.ReadOrDeadLetter[person](p, "x.csv", csvio.TimeLayout(""))
			stages.Collect(good)
			stages.Collect(dead)
		}, "empty TimeLayout"},
	} {
		p := stages.NewPipeline("config")
		tc.build(p)
		err := p.Err()
		if !errors.Is(err, stages.ErrBuild) || !strings.Contains(err.Error(), "reading x.csv: csvio: invalid configuration: ") || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), "csvio_test.go:") {
			t.Errorf("error %v, want a build error at the caller's line containing %q", err, tc.want)
		}
	}
}

func TestSplits(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "b.csv"), "name,age,e-mail\n")
	writeFile(t, filepath.Join(dir, "a.csv"), "name,age,e-mail\nann,1,\n")
	if err := os.Mkdir(filepath.Join(dir, "c.csv"), 0o755); err != nil {
		t.Fatal(err)
	}
	splits, err := csvio.Source[person](filepath.Join(dir, "*.csv")).Splits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) != 2 || splits[0].Desc != filepath.Join(dir, "a.csv") || splits[0].Bytes != 23 || splits[0].Records != -1 || splits[1].Index != 1 {
		t.Fatalf("splits %+v", splits)
	}
	for _, tc := range []struct {
		pattern string
		is      error
		msg     string
	}{
		{filepath.Join(dir, "missing.csv"), fs.ErrNotExist, "missing.csv"},
		{filepath.Join(dir, "*.tsv"), csvio.ErrNoFiles, "*.tsv"},
		{"", csvio.ErrNoFiles, "empty pattern"},
		{dir, nil, "is a directory"},
		{filepath.Join(dir, "[.csv"), filepath.ErrBadPattern, "[.csv"},
	} {
		_, err := csvio.Source[person](tc.pattern).Splits(context.Background())
		if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("pattern %q: error %v, want %v mentioning %q", tc.pattern, err, tc.is, tc.msg)
		}
	}
}

// TestReaderByHand drives a reader with a buffer of one record: a bad row
// returns the records before it with the error, and Close is idempotent.
func TestReaderByHand(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "x.csv"), "name,age,e-mail,note\nann,1,a@b,hi\nbob,2,,\n")
	src := csvio.Source[person](path)
	splits, err := src.Splits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r, err := src.Open(context.Background(), stages.Instance{Parallelism: 1}, splits[0])
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]person, 1)
	var got []person
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || n != 1 {
			t.Fatalf("Read: %d, %v", n, err)
		}
	}
	// The second record reuses the buffer: its empty e-mail and note are
	// zero, not left from the first.
	if want := []person{{Name: "ann", Age: 1, Email: str("a@b"), Note: "hi"}, {Name: "bob", Age: 2}}; !reflect.DeepEqual(got, want) {
		t.Errorf("read %+v, want %+v", got, want)
	}
	for range 2 {
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUnterminatedQuote reads 10,000 good rows around two quotes that never
// close: the first runs on to the second's quote (where a letter follows the
// quote), the second to the end of the file. Each is one dead letter at the
// line where its quote opens, and every good row arrives, through a
// byte-order mark, \r\n endings, comments and empty lines (the lines and
// offsets after a resumption). The Fail policy names the first quote's line.
func TestUnterminatedQuote(t *testing.T) {
	const good = 10_000
	var b strings.Builder
	b.WriteString("\xef\xbb\xbf# people\r\nname,age,e-mail\r\n")
	line := 2
	var badLines []int
	for i := range good {
		switch i {
		case 3000, 7000:
			b.WriteString("bad,1,\"oops\r\n")
			line++
			badLines = append(badLines, line)
		case 5000:
			b.WriteString("# a comment\r\n\r\n")
			line += 2
		}
		if i == 100 {
			// A good row whose quoted field spans lines.
			fmt.Fprintf(&b, "p%d,%d,\"p%d@x\r\n.org\"\r\n", i, i, i)
			line += 2
			continue
		}
		fmt.Fprintf(&b, "p%d,%d,p%d@x.org\r\n", i, i, i)
		line++
	}
	path := writeFile(t, filepath.Join(t.TempDir(), "people.csv"), b.String())

	got, dead := readDead[person](t, path, csvio.Comment('#'))
	if len(got) != good {
		t.Errorf("%d good rows, want %d", len(got), good)
	}
	seen := make([]bool, good)
	for _, p := range got {
		if p.Age < 0 || p.Age >= good || p.Name != fmt.Sprintf("p%d", p.Age) || seen[p.Age] {
			t.Fatalf("unexpected row %+v", p)
		}
		seen[p.Age] = true
	}
	wantDead := []stages.DeadLetter{
		{Where: fmt.Sprintf("%s:%d", path, badLines[0]), Record: `bad,1,"oops`, Err: fmt.Sprintf(
			`extraneous or missing " in quoted-field: the quoted field at byte 7 closes on line %d, byte 7, without a delimiter after its quote`, badLines[1])},
		{Where: fmt.Sprintf("%s:%d", path, badLines[1]), Record: `bad,1,"oops`,
			Err: `extraneous or missing " in quoted-field: the quoted field at byte 7 does not close before the end of the file`},
	}
	for i := range dead {
		dead[i].Stage = ""
	}
	slices.SortFunc(dead, func(x, y stages.DeadLetter) int { return len(x.Where) - len(y.Where) })
	if !reflect.DeepEqual(dead, wantDead) {
		t.Errorf("dead letters:\n%q\nwant\n%q", dead, wantDead)
	}

	_, err := readAll[person](t, path, csvio.Comment('#'))
	var re *csvio.RowError
	if !errors.As(err, &re) || re.Path != path || re.Line != int64(badLines[0]) || !errors.Is(err, csv.ErrQuote) {
		t.Fatalf("error %v, want a RowError at %s:%d wrapping csv.ErrQuote", err, path, badLines[0])
	}
}

// TestUnterminatedQuoteInRow checks a quote that does not close in a row
// that starts on an earlier line: the dead letter names the quote's line,
// says where the row starts, and holds the row up to the quote's line;
// reading resumes after it.
func TestUnterminatedQuoteInRow(t *testing.T) {
	content := "name,age,e-mail\n" + // 1
		"\"a\nb\",1,\"x\n" + // 2-3: the e-mail's quote, on line 3, never closes
		"c,2,\n" + // 4
		"d,3,\n" // 5
	path := writeFile(t, filepath.Join(t.TempDir(), "row.csv"), content)
	got, dead := readDead[person](t, path)
	slices.SortFunc(got, func(a, b person) int { return strings.Compare(a.Name, b.Name) })
	if want := []person{{Name: "c", Age: 2}, {Name: "d", Age: 3}}; !reflect.DeepEqual(got, want) {
		t.Errorf("good rows %+v, want %+v", got, want)
	}
	want := stages.DeadLetter{Where: path + ":3", Record: "\"a\nb\",1,\"x",
		Err: `extraneous or missing " in quoted-field: the quoted field at byte 6 does not close before the end of the file (the row starts on line 2)`}
	if len(dead) != 1 || dead[0].Stage == "" {
		t.Fatalf("dead letters %q, want one", dead)
	}
	if dead[0].Stage = ""; dead[0] != want {
		t.Errorf("dead letter\n%q\nwant\n%q", dead[0], want)
	}
}

// TestInvalidUTF8 checks that a string value that is not valid UTF-8 is a
// bad row naming the file, line and column, under both policies, and that
// the dead letter's Record shows the bad bytes as \xNN.
func TestInvalidUTF8(t *testing.T) {
	content := "name,age,e-mail,note\n" + // 1
		"ann,1,,\n" + // 2
		"b\xffb,2,,\n" + // 3: a string field
		"cid,3,c\xe2\x82@x,\n" + // 4: a pointer to a string, a cut three-byte character
		"\"dee\n\",4,,d\xc0\n" + // 5-6: the note, on line 6
		"\"\xe9\",x,,\n" + // 7: a bad age too: the first bad field is reported
		"ünï,5,,✓\n" // 8: valid
	path := writeFile(t, filepath.Join(t.TempDir(), "utf8.csv"), content)
	got, dead := readDead[person](t, path)
	slices.SortFunc(got, func(a, b person) int { return strings.Compare(a.Name, b.Name) })
	if want := []person{{Name: "ann", Age: 1}, {Name: "ünï", Age: 5, Note: "✓"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("good rows %+v, want %+v", got, want)
	}
	wantDead := []stages.DeadLetter{
		{Where: path + ":3", Record: `b\xffb,2,,`, Err: `column "name": not valid UTF-8 (byte 2 of the value is 0xff)`},
		{Where: path + ":4", Record: `cid,3,c\xe2\x82@x,`, Err: `column "e-mail": not valid UTF-8 (byte 2 of the value is 0xe2)`},
		{Where: path + ":6", Record: "\"dee\n\",4,,d\\xc0", Err: `column "note": not valid UTF-8 (byte 2 of the value is 0xc0)`},
		{Where: path + ":7", Record: `"\xe9",x,,`, Err: `column "name": not valid UTF-8 (byte 1 of the value is 0xe9)`},
	}
	for i := range dead {
		dead[i].Stage = ""
		if !utf8.ValidString(dead[i].Record) {
			t.Errorf("dead letter %d's Record %q is not valid UTF-8", i, dead[i].Record)
		}
	}
	if !reflect.DeepEqual(dead, wantDead) {
		t.Errorf("dead letters:\n%q\nwant\n%q", dead, wantDead)
	}
	_, err := readAll[person](t, path)
	var re *csvio.RowError
	if !errors.Is(err, csvio.ErrInvalidUTF8) || !errors.As(err, &re) || re.Line != 3 || re.Column != "name" ||
		!strings.Contains(err.Error(), "csvio: "+path+`:3: column "name": not valid UTF-8`) {
		t.Errorf("error %v, want ErrInvalidUTF8 at %s:3, column name", err, path)
	}
}
