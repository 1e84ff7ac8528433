package state

import (
	"bytes"
	"cmp"
	"slices"
)

// entry is one key of a view in a snapshot's canonical order: by key
// group, then the key's seeded hash, then its encoding (two keys of one
// hash).
type entry struct {
	g          int
	tag        uint64
	start, end int // the key's encoding in keys
	i          int // its slot
}

// canonical returns the keys of v in r in canonical order, with their
// encodings. It hashes each key once with the routing hash and encodes it
// once: the cost of a snapshot's encoding, off the hot path.
func canonical[K comparable, V any](v view[K, V], g Groups[K], r Range, kc Coder[K]) ([]entry, []byte) {
	var es []entry
	var keys []byte
	for i := range v.slots {
		s := &v.slots[i]
		if s.tag == 0 {
			continue
		}
		grp := g.Of(s.key)
		if !r.Contains(grp) {
			continue
		}
		start := len(keys)
		keys = kc.Append(keys, &s.key)
		es = append(es, entry{g: grp, tag: s.tag, start: start, end: len(keys), i: i})
	}
	slices.SortFunc(es, func(a, b entry) int {
		if c := cmp.Compare(a.g, b.g); c != 0 {
			return c
		}
		if c := cmp.Compare(a.tag, b.tag); c != 0 {
			return c
		}
		return bytes.Compare(keys[a.start:a.end], keys[b.start:b.end])
	})
	return es, keys
}
