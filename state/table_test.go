package state

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestTable checks the table against a Go map over random operations
// on keys of several types.
func TestTable(t *testing.T) {
	checkTable(t, func(r *rand.Rand) int64 { return r.Int64N(5000) - 2500 })
	checkTable(t, func(r *rand.Rand) string { return fmt.Sprint("k", r.IntN(3000)) })
	checkTable(t, func(r *rand.Rand) [2]int32 { return [2]int32{r.Int32N(50), r.Int32N(50)} })
}

func checkTable[K comparable](t *testing.T, key func(*rand.Rand) K) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 3 {
		ht := NewTable[K, int](Seed(9, round))
		want := map[K]int{}
		for i := range 20_000 {
			k := key(r)
			v, found := ht.Find(k)
			if _, ok := want[k]; ok != found {
				t.Fatalf("%T round %d op %d: Find(%v) found=%v, want %v", k, round, i, k, found, ok)
			}
			*v += i
			want[k] += i
		}
		if ht.Len() != len(want) {
			t.Fatalf("%T: Len %d, want %d", *new(K), ht.Len(), len(want))
		}
		seen := 0
		ht.All(func(k K, v *int) {
			seen++
			if want[k] != *v {
				t.Fatalf("%T: key %v holds %d, want %d", k, k, *v, want[k])
			}
		})
		if seen != len(want) {
			t.Fatalf("%T: All visited %d keys, want %d", *new(K), seen, len(want))
		}
		if round == 1 {
			ht.Clear()
		}
	}
}

// TestTableSortedInput inserts one table's keys, in its slot order,
// into another: without a seed of each table's own, linear probing piles
// them into one cluster and this takes minutes instead of milliseconds.
func TestTableSortedInput(t *testing.T) {
	src := NewTable[int64, struct{}](Seed(9, 1))
	for i := range 200_000 {
		src.Find(int64(i))
	}
	var keys []int64
	src.All(func(k int64, _ *struct{}) { keys = append(keys, k) })
	dst := NewTable[int64, struct{}](Seed(9, 2))
	probes := 0
	for _, k := range keys {
		probes += dst.Probes(k)
		dst.Find(k)
	}
	if mean := float64(probes) / float64(len(keys)); mean > 4 {
		t.Fatalf("%.1f probes per insertion of sorted keys: clustered", mean)
	}
}

// BenchmarkTable compares the table with the Go map and slice of
// accumulators that aggregation used before, on 1M keys in random order.
func BenchmarkTable(b *testing.B) {
	keys := make([]int64, 5_000_000)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range keys {
		keys[i] = r.Int64N(1_000_000)
	}
	type acc struct {
		n   int64
		sum float64
	}
	b.Run("table", func(b *testing.B) {
		for range b.N {
			t := NewTable[int64, acc](Seed(9, 1))
			for _, k := range keys {
				v, _ := t.Find(k)
				v.n++
				v.sum += 1.5
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/record")
	})
	b.Run("map+slice", func(b *testing.B) {
		for range b.N {
			index := map[int64]int32{}
			var rows []struct {
				Key   int64
				Value acc
			}
			for _, k := range keys {
				if j, ok := index[k]; ok {
					rows[j].Value.n++
					rows[j].Value.sum += 1.5
				} else {
					index[k] = int32(len(rows))
					rows = append(rows, struct {
						Key   int64
						Value acc
					}{Key: k, Value: acc{1, 1.5}})
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/record")
	})
}
