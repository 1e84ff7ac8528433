package generator

import "math"

// The alias table has one column per key. A column holds colMass units of
// probability mass: t units for its own key and colMass-t for its alias key.
// A draw picks column c uniformly and a 39-bit fraction f uniformly; it
// yields c when f < t, else the alias. An entry packs t (≤ 2^39, so 40 bits)
// in its high bits and the alias (< MaxZipfKeys = 2^24) in its low 24 bits.
//
// Masses are integers, so Vose's construction is exact: key k's probability
// is exactly its integer mass / (Keys·colMass), which rounding keeps within
// 2 units of the Zipf probability: within 2^-38/Keys absolutely.
const (
	aliasBits = 24
	aliasMask = 1<<aliasBits - 1
	fracShift = 64 - 39 // a draw's fraction is its top 39 bits
	colMass   = 1 << 39
)

// zipfAlias builds the alias table of P(k) ∝ (k+1)^-s over n ranks with
// Vose's method on integer masses. It is deterministic: the same (n, s) give
// the same table in every process. (Floating point is used only for the
// weights, with no multiply-add the compiler could fuse on architectures
// with FMA; math.Pow is the same Go code on every architecture but s390x.)
func zipfAlias(n int, s float64) []uint64 {
	w := make([]float64, n)
	for k := range w {
		w[k] = math.Pow(float64(k+1), -s)
	}
	sum := 0.0
	for k := n - 1; k >= 0; k-- { // smallest first, for accuracy
		sum += w[k]
	}
	// table[k] holds key k's mass, round(P(k)·n·colMass), until its column
	// is settled. Rounding leaves the total off by at most about n/2 units,
	// spread one unit per key from the top.
	total := uint64(n) * colMass // ≤ 2^63
	table := make([]uint64, n)
	var got uint64
	for k := range table {
		table[k] = uint64(math.Round(w[k] / sum * float64(total)))
		got += table[k]
	}
	w = nil
	for k := 0; got != total; k = (k + 1) % n {
		switch {
		case got < total:
			table[k]++
			got++
		case table[k] > 0:
			table[k]--
			got--
		}
	}
	// Keys under a column's mass stack up from the front of work, the others
	// down from its back; a key is on one stack at a time, so they never
	// meet. Both pop in ascending key order.
	work := make([]int32, n)
	small, large := 0, n
	for k := n - 1; k >= 0; k-- {
		if table[k] < colMass {
			work[small] = int32(k)
			small++
		} else {
			large--
			work[large] = int32(k)
		}
	}
	for small > 0 && large < n {
		small--
		l := work[small]
		g := work[large]
		large++
		// l's column is settled: its own mass, then g's up to colMass.
		ml := table[l]
		table[l] = ml<<aliasBits | uint64(g)
		table[g] -= colMass - ml
		if table[g] < colMass {
			work[small] = g
			small++
		} else {
			large--
			work[large] = g
		}
	}
	// The total is exactly n columns, so what remains (on the large stack)
	// has exactly colMass: a full column of its own key.
	for _, k := range work[:small] {
		table[k] = colMass<<aliasBits | uint64(k)
	}
	for _, k := range work[large:] {
		table[k] = colMass<<aliasBits | uint64(k)
	}
	return table
}
