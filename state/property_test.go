package state

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("state.seed", 0, "seed of the property tests (0: a new one each run)")

// testSeed returns the property tests' seed and prints it if the test fails.
func testSeed(t *testing.T) uint64 {
	s := *seedFlag
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d: rerun with -state.seed=%d", s, s)
		}
	})
	return s
}

const testMax = 16 // key groups in the property tests

var testGroups = Groups[int64]{Hash: func(k int64) uint64 { return Mix64(uint64(k)) }, Max: testMax}

// op is one input of a machine under test. A broadcast op goes to every
// instance (a watermark, the end of a join's build side); the others to the
// instance that owns their key's group.
type op struct {
	kind      int
	key, val  int64
	pt        int64 // the processing time a record arrives at (triggered windows)
	broadcast bool
}

// machine is one instance of a kind of state wrapped with the little logic
// of its stage: what it emits is rendered as strings.
type machine interface {
	step(o op, emit func(string))
	end(emit func(string))
	// snapshot takes a snapshot of r synchronously; the function it returns
	// encodes it.
	snapshot(r Range) func() []byte
	restore(b []byte, keep Range) error // the chunk's keys in keep
}

// checkRestore runs random inputs through a kind of state, uninterrupted
// and cut at a random point: there the instances snapshot random ranges of
// key groups, go on with more input (which the snapshots must not see), and
// fresh instances, as many or not, restore the keys they own of every chunk
// that overlaps their range (a chunk may hold groups of two new
// instances) and take over. The outputs must be equal, and the snapshot of
// a restored state the restored bytes.
func checkRestore(t *testing.T, trials int, newM func() machine, gen func(r *rand.Rand) []op) {
	t.Helper()
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for trial := range trials {
		ops := gen(rng)
		want := run(newM, 1, ops)
		n1, n2 := 1+rng.IntN(4), 1+rng.IntN(4)
		cut := rng.IntN(len(ops) + 1)

		var got []string
		emit := func(s string) { got = append(got, s) }
		old := start(newM, n1)
		for _, o := range ops[:cut] {
			route(old, o, emit)
		}
		pieces := cuts(rng, n1)
		type taken struct {
			r   Range
			enc func() []byte
		}
		var snaps []taken
		for i, m := range old {
			own := InstanceRange(testMax, n1, i)
			for _, p := range pieces {
				if own.Contains(p.Start) {
					snaps = append(snaps, taken{p, m.snapshot(p)})
				}
			}
		}
		// The old instances go on: their snapshots must not change.
		for _, o := range ops[cut:min(len(ops), cut+1+rng.IntN(50))] {
			route(old, o, func(string) {})
		}
		chunks := make([][]byte, len(snaps))
		for i, s := range snaps {
			chunks[i] = s.enc()
			again := newM()
			if err := again.restore(chunks[i], testGroups.All()); err != nil {
				t.Fatalf("trial %d: restoring %v: %v", trial, s.r, err)
			}
			if b := again.snapshot(s.r)(); !bytes.Equal(b, chunks[i]) {
				t.Fatalf("trial %d: snapshot of the restored %v differs:\n got %x\nwant %x", trial, s.r, b, chunks[i])
			}
		}
		nu := start(newM, n2)
		for j, m := range nu {
			own := InstanceRange(testMax, n2, j)
			for i, s := range snaps {
				if s.r.Start < own.End && own.Start < s.r.End {
					if err := m.restore(chunks[i], own); err != nil {
						t.Fatalf("trial %d: instance %d/%d restoring %v: %v", trial, j, n2, s.r, err)
					}
				}
			}
			for i, s := range snaps {
				if own.Start <= s.r.Start && s.r.End <= own.End {
					if b := m.snapshot(s.r)(); !bytes.Equal(b, chunks[i]) {
						t.Fatalf("trial %d: instance %d/%d: snapshot of the restored %v differs", trial, j, n2, s.r)
					}
				}
			}
		}
		for _, o := range ops[cut:] {
			route(nu, o, emit)
		}
		for _, m := range nu {
			m.end(emit)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (%d ops, cut at %d, %d → %d instances): output differs from an uninterrupted run\n%s",
				trial, len(ops), cut, n1, n2, diff(got, want))
		}
		if len(chunks) > 0 {
			c := slices.Clone(chunks[0])
			c[len(c)-1] ^= 0x40
			if err := newM().restore(c, testGroups.All()); err == nil {
				t.Fatalf("trial %d: a corrupted chunk restored", trial)
			}
		}
	}
}

func start(newM func() machine, n int) []machine {
	ms := make([]machine, n)
	for i := range ms {
		ms[i] = newM()
	}
	return ms
}

// route gives o to the instances that get it under plan.Route.
func route(ms []machine, o op, emit func(string)) {
	if o.broadcast {
		for _, m := range ms {
			m.step(o, emit)
		}
		return
	}
	g := testGroups.Of(o.key)
	ms[g*len(ms)/testMax].step(o, emit)
}

// run is an uninterrupted run; its output sorted.
func run(newM func() machine, n int, ops []op) []string {
	var out []string
	emit := func(s string) { out = append(out, s) }
	ms := start(newM, n)
	for _, o := range ops {
		route(ms, o, emit)
	}
	for _, m := range ms {
		m.end(emit)
	}
	slices.Sort(out)
	return out
}

// cuts splits the key groups into ranges that fall within one of n
// instances' groups, cut further at random.
func cuts(rng *rand.Rand, n int) []Range {
	at := []int{0, testMax}
	for i := range n {
		at = append(at, InstanceRange(testMax, n, i).Start)
	}
	for range rng.IntN(4) {
		at = append(at, rng.IntN(testMax))
	}
	slices.Sort(at)
	at = slices.Compact(at)
	var rs []Range
	for i := 1; i < len(at); i++ {
		rs = append(rs, Range{at[i-1], at[i]})
	}
	return rs
}

func diff(got, want []string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "got %d lines, want %d\n", len(got), len(want))
	for i := 0; i < max(len(got), len(want)) && b.Len() < 2000; i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			fmt.Fprintf(&b, "%d: got %q, want %q\n", i, g, w)
		}
	}
	return b.String()
}

func TestInstanceRangeMatchesRoute(t *testing.T) {
	for max := 1; max <= 40; max++ {
		for n := 1; n <= max; n++ {
			for g := range max {
				i := g * n / max
				if r := InstanceRange(max, n, i); !r.Contains(g) {
					t.Fatalf("max %d, n %d: group %d goes to instance %d, whose range is %v", max, n, g, i, r)
				}
			}
		}
	}
}
