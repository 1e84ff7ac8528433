package stages

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestHashTable checks the table against a Go map over random operations
// on keys of several types.
func TestHashTable(t *testing.T) {
	checkTable(t, func(r *rand.Rand) int64 { return r.Int64N(5000) - 2500 })
	checkTable(t, func(r *rand.Rand) string { return fmt.Sprint("k", r.IntN(3000)) })
	checkTable(t, func(r *rand.Rand) [2]int32 { return [2]int32{r.Int32N(50), r.Int32N(50)} })
}

func checkTable[K comparable](t *testing.T, key func(*rand.Rand) K) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 3 {
		ht := newHashTable[K, int](round)
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

// TestHashTableSortedInput inserts one table's keys, in its slot order,
// into another: without a seed of each table's own, linear probing piles
// them into one cluster and this takes minutes instead of milliseconds.
func TestHashTableSortedInput(t *testing.T) {
	src := newHashTable[int64, struct{}](1)
	for i := range 200_000 {
		src.Find(int64(i))
	}
	var keys []int64
	src.All(func(k int64, _ *struct{}) { keys = append(keys, k) })
	dst := newHashTable[int64, struct{}](2)
	probes := 0
	for _, k := range keys {
		probes += dst.probes(k)
		dst.Find(k)
	}
	if mean := float64(probes) / float64(len(keys)); mean > 4 {
		t.Fatalf("%.1f probes per insertion of sorted keys: clustered", mean)
	}
}

// BenchmarkAggregateTable compares the table with the Go map and slice of
// accumulators that aggregation used before, on 1M keys in random order.
func BenchmarkAggregateTable(b *testing.B) {
	keys := make([]int64, 5_000_000)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range keys {
		keys[i] = r.Int64N(1_000_000)
	}
	type acc struct {
		n   int64
		sum float64
	}
	b.Run("hashTable", func(b *testing.B) {
		for range b.N {
			t := newHashTable[int64, acc](1)
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
			var rows []KV[int64, acc]
			for _, k := range keys {
				if j, ok := index[k]; ok {
					rows[j].Value.n++
					rows[j].Value.sum += 1.5
				} else {
					index[k] = int32(len(rows))
					rows = append(rows, KV[int64, acc]{Key: k, Value: acc{1, 1.5}})
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/record")
	})
}

// probes returns how many slots a Find of k would look at .
func (t *hashTable[K, V]) probes(k K) int {
	if len(t.slots) == 0 {
		return 1
	}
	tag := mix64(t.hash(k)^t.seed) | 1
	mask := uint64(len(t.slots) - 1)
	n := 1
	for i := tag >> t.shift; t.slots[i].tag != 0 && !(t.slots[i].tag == tag && t.slots[i].key == k); i = (i + 1) & mask {
		n++
	}
	return n
}
