package csvio_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/connectors/csvio"
	"github.com/sluice-data/sluice/stages"
)

// TestOpenAt: a reader's position, passed to OpenAt, opens the file at the
// row after the last one read (past the header, a byte-order mark and rows
// that span lines), and a bad row after it is named by its line as in a
// read from the start.
func TestOpenAt(t *testing.T) {
	const file = "\xef\xbb\xbfNAME,age,e-mail\n" + // 1
		"ann,31,ann@x.org\n" + // 2
		"\"dee\nstill dee\",50,\"d@x\n.org\"\n" + // 3-5
		"bob,42,\n" + // 6
		"eve,x,\n" // 7: bad age
	path := writeFile(t, filepath.Join(t.TempDir(), "p.csv"), file)
	src := csvio.Source[person](path)
	ctx := context.Background()
	splits, err := src.Splits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range 3 {
		r, err := src.Open(ctx, stages.Instance{}, splits[0])
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]person, k)
		if k > 0 {
			if n, err := r.Read(buf); n != k || err != nil {
				t.Fatalf("reading %d rows: %d, %v", k, n, err)
			}
		}
		pos, err := r.(stages.Positioner).Position()
		if err != nil {
			t.Fatal(err)
		}
		_ = r.Close()
		again, err := src.OpenAt(ctx, stages.Instance{}, splits[0], pos)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		rest := make([]person, 10)
		n, err := again.Read(rest)
		for _, p := range rest[:n] {
			names = append(names, p.Name)
		}
		want := []string{"ann", "dee\nstill dee", "bob"}[k:]
		if strings.Join(names, "|") != strings.Join(want, "|") {
			t.Fatalf("after %d rows at %s: %q, want %q", k, pos, names, want)
		}
		var re *csvio.RowError
		if !errors.As(err, &re) || re.Line != 7 || errors.Is(err, io.EOF) {
			t.Fatalf("after %d rows: error %v, want the bad row on line 7", k, err)
		}
	}
}
