package state

import "fmt"

// Groups maps keys to key groups: Of(k) = Hash(k) mod Max. Hash must be
// the hash the shuffle routes by (stages' KeyBy hash: fixed, independent of
// the job's seed, the same in every process), so that the groups of an
// instance's keys are the ones plan.Route gives it.
type Groups[K comparable] struct {
	Hash func(K) uint64
	Max  int // the job's maximum parallelism: the number of key groups
}

// Of returns k's key group.
func (g Groups[K]) Of(k K) int { return int(g.Hash(k) % uint64(g.Max)) }

// All returns the range of every group.
func (g Groups[K]) All() Range { return Range{0, g.Max} }

// Range is the key groups [Start, End).
type Range struct{ Start, End int }

// Contains reports whether group g is in r.
func (r Range) Contains(g int) bool { return g >= r.Start && g < r.End }

func (r Range) String() string { return fmt.Sprintf("key groups [%d, %d)", r.Start, r.End) }

// InstanceRange returns the key groups that plan.Route gives instance i of
// n over max groups: g goes to instance g*n/max.
func InstanceRange(max, n, i int) Range {
	// The least g with g*n/max >= i is ceil(i*max/n).
	return Range{(i*max + n - 1) / n, ((i+1)*max + n - 1) / n}
}

func (g Groups[K]) check(r Range) {
	if r.Start < 0 || r.End > g.Max || r.Start > r.End {
		panic(fmt.Sprintf("state: %v is not within [0, %d)", r, g.Max))
	}
}
