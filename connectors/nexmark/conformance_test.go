package nexmark_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/sluice-data/sluice/connectors/nexmark"
)

// keys returns the keys of a JSON object in their order.
func keys(t *testing.T, line []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s is not an object", line)
	}
	var out []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestBeamVectors compares the generator with Beam's, event by event and
// field by field: the first 1000 events of one Beam Generator for each
// configuration of the vector files.
func TestBeamVectors(t *testing.T) {
	for _, tc := range []struct {
		file       string
		generators int
	}{
		{"beam_generator_g1_rate10000.jsonl", 1},
		{"beam_generator_g100_rate10000.jsonl", 100},
	} {
		t.Run(tc.file, func(t *testing.T) {
			sc := openVectors(t, tc.file)
			cfg := nexmark.DefaultConfig()
			cfg.NumEventGenerators = tc.generators
			cfg.NumEvents = 1000
			g, err := nexmark.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			kinds := map[nexmark.Kind]int{}
			for sc.Scan() {
				line := sc.Bytes()
				var want map[string]json.RawMessage
				if err := json.Unmarshal(line, &want); err != nil {
					t.Fatalf("line %d: %v", n+1, err)
				}
				delete(want, "config")
				ev := g.Event(n)
				kinds[ev.Kind()]++
				b, err := json.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				var got map[string]json.RawMessage
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatal(err)
				}
				for _, k := range keys(t, line) {
					if k == "config" {
						continue
					}
					if g, ok := got[k]; !ok {
						t.Errorf("event %d: no field %s (want %s)", n, k, want[k])
					} else if !bytes.Equal(g, want[k]) {
						t.Errorf("event %d (%s): %s = %s, want %s", n, ev.Kind(), k, g, want[k])
					}
				}
				for k := range got {
					if _, ok := want[k]; !ok {
						t.Errorf("event %d: field %s that Beam's has not", n, k)
					}
				}
				if wk, gk := fmt.Sprint(keys(t, line)[1:]), fmt.Sprint(keys(t, b)); wk != gk {
					t.Errorf("event %d: keys %s, want %s", n, gk, wk)
				}
				// Byte for byte, too: the vectors' format less "config".
				if i := bytes.Index(line, []byte(`"n":`)); i < 0 || !bytes.Equal(b[1:], line[i:]) {
					t.Errorf("event %d: JSON\n%s\nwant (after config)\n%s", n, b, line)
				}
				// The JSON form reads back into the same event.
				var back nexmark.Event
				if err := json.Unmarshal(line, &back); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(back, ev) {
					t.Errorf("event %d: decoded from Beam's line %+v, generated %+v", n, back, ev)
				}
				if t.Failed() {
					t.FailNow()
				}
				n++
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			if n != 1000 {
				t.Errorf("%d vectors, want 1000", n)
			}
			// NEXMARK.md §6: 20 persons, 60 auctions, 920 bids.
			if kinds[nexmark.KindPerson] != 20 || kinds[nexmark.KindAuction] != 60 || kinds[nexmark.KindBid] != 920 {
				t.Errorf("kinds %v, want 20 persons, 60 auctions, 920 bids", kinds)
			}
		})
	}
}
