package generator

import (
	"fmt"
	"math"
	"testing"
)

// TestZipfAliasExact checks that the probability each key gets from the
// alias table (threshold and alias mass summed over columns) is the Zipf
// probability, for exponents below, at and above 1.
func TestZipfAliasExact(t *testing.T) {
	for _, n := range []int{1, 2, 3, 10, 1000, 100_000} {
		for _, s := range []float64{0.01, 0.5, 1, 1.2, 2, 5, 50} {
			t.Run(fmt.Sprintf("n=%d/s=%v", n, s), func(t *testing.T) {
				table := zipfAlias(n, s)
				// Sum each key's mass in integer units, exactly.
				units := make([]uint64, n)
				for c, e := range table {
					keep, a := e>>aliasBits, int(e&aliasMask)
					if a >= n || keep > colMass {
						t.Fatalf("column %d: entry %#x out of range", c, e)
					}
					units[c] += keep
					units[a] += colMass - keep
				}
				got := make([]float64, n)
				var sum uint64
				for k, u := range units {
					got[k] = float64(u) / (colMass * float64(n))
					sum += u
				}
				if sum != uint64(n)*colMass {
					t.Errorf("masses sum to %d units, want %d", sum, uint64(n)*colMass)
				}
				h := 0.0
				for k := n; k >= 1; k-- {
					h += math.Pow(float64(k), -s)
				}
				// Masses are rounded to 2^-39 of a column (1/n); allow the
				// float error of this check's own sums on top.
				for k := range n {
					want := math.Pow(float64(k+1), -s) / h
					tol := 2/(colMass*float64(n)) + 1e-13*want
					if d := math.Abs(got[k] - want); d > tol {
						t.Errorf("key %d: probability %.17g, want %.17g (error %.3g > %.3g)", k, got[k], want, d, tol)
					}
				}
			})
		}
	}
}

func TestSplitRange(t *testing.T) {
	for _, tc := range []struct{ rows, n int64 }{{1, 1}, {10, 3}, {10, 10}, {1 << 53, 64}, {1<<53 - 1, 7}} {
		next := int64(0)
		for i := range tc.n {
			lo, hi := splitRange(tc.rows, tc.n, i)
			if lo != next || hi < lo || hi-lo > tc.rows/tc.n+1 {
				t.Fatalf("rows %d splits %d: split %d is [%d, %d), want it to start at %d", tc.rows, tc.n, i, lo, hi, next)
			}
			next = hi
		}
		if next != tc.rows {
			t.Fatalf("rows %d splits %d: splits end at %d", tc.rows, tc.n, next)
		}
	}
}
