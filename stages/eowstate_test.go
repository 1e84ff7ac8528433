package stages

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/state"
	"github.com/sluice-data/sluice/window"
)

// TestEndOfWindowStateMatchesDriver runs seeded random bundles, watermark
// moves and late records through eowState and through the trigger driver's
// windowState, for fixed (with offsets) and sliding windows, and requires
// the same panes (metadata included), late records, drop counts and output
// watermarks.
func TestEndOfWindowStateMatchesDriver(t *testing.T) {
	strategies := []window.Strategy{
		window.Fixed(10 * time.Millisecond),
		window.Fixed(10 * time.Millisecond).WithOffset(3 * time.Millisecond),
		window.Sliding(30*time.Millisecond, 10*time.Millisecond),
		window.Fixed(7 * time.Millisecond).Accumulating(),
	}
	c := Combine("sum", func(x int64) [2]int64 { return [2]int64{1, x} },
		func(a, b [2]int64) [2]int64 { return [2]int64{a[0] + b[0], a[1] + b[1]} },
		func(a [2]int64) string { return fmt.Sprint(a[0], ":", a[1]) })
	zero := func() [2]int64 { return [2]int64{} }
	for si, st := range strategies {
		if !endOfWindowOnly(st) {
			t.Fatalf("strategy %v does not take the fast path", st)
		}
		drv, err := window.NewWindowing(st, window.Combine[lifted[int64, [2]int64], [2]int64]{
			Zero:  zero,
			Add:   func(acc [2]int64, v lifted[int64, [2]int64]) [2]int64 { return c.Merge(acc, v.a) },
			Merge: c.Merge,
		})
		if err != nil {
			t.Fatal(err)
		}
		for seed := range uint64(40) {
			n := &plan.Node{ID: 7, Op: "window"}
			fast := newEOWState(n, st.Spec().Fn, c, zero, true, state.Groups[int64]{Hash: hasher[int64](), Max: 8}, seed)
			slow := newWindowState(n, drv, c, hasher[int64](), true, 8)
			var fastOut, slowOut []string
			collect := func(out *[]string) func(*plan.Batch) {
				return func(b *plan.Batch) {
					switch xs := b.Data.(type) {
					case []Windowed[int64, string]:
						for i, x := range xs {
							*out = append(*out, fmt.Sprintf("pane %+v @%d", x, b.Times[i]))
						}
					case []Late[int64, int64]:
						for i, x := range xs {
							*out = append(*out, fmt.Sprintf("late %+v @%d", x, b.Times[i]))
						}
					default:
						t.Fatalf("unexpected batch %T", b.Data)
					}
				}
			}
			r := rand.New(rand.NewPCG(seed, uint64(si)))
			wm := int64(-1 << 63)
			clock := int64(0)
			for step := range 300 {
				switch r.IntN(4) {
				case 0: // the watermark moves, maybe past records still to come
					wm = max(wm, clock-int64(r.IntN(30))*int64(time.Millisecond))
					a, b := fast.Advance(wm, collect(&fastOut)), slow.Advance(wm, collect(&slowOut))
					if a != b {
						t.Fatalf("%v seed %d step %d: output watermark %d, driver %d", st, seed, step, a, b)
					}
				default:
					k := 1 + r.IntN(20)
					xs := make([]KV[int64, int64], k)
					times := make([]int64, k)
					for i := range xs {
						clock += int64(r.IntN(3)) * int64(time.Millisecond)
						xs[i] = KV[int64, int64]{Key: int64(r.IntN(12)), Value: int64(r.IntN(100))}
						times[i] = clock - int64(r.IntN(25))*int64(time.Millisecond)
					}
					fast.StepTime(&plan.Batch{Data: xs, Times: times}, wm, 0, collect(&fastOut))
					slow.StepTime(&plan.Batch{Data: xs, Times: times}, wm, 0, collect(&slowOut))
				}
			}
			fast.Flush(collect(&fastOut))
			slow.Flush(collect(&slowOut))
			slices.Sort(fastOut)
			slices.Sort(slowOut)
			if !slices.Equal(fastOut, slowOut) {
				t.Fatalf("%v seed %d: %d outputs, driver %d\nfast: %v\ndriver: %v", st, seed, len(fastOut), len(slowOut), fastOut, slowOut)
			}
			fl, fc := fast.Dropped()
			sl, sc := slow.Dropped()
			if fl != sl || fc != sc {
				t.Fatalf("%v seed %d: dropped %d late, %d closed; driver %d, %d", st, seed, fl, fc, sl, sc)
			}
			if fl == 0 || len(fastOut) == 0 {
				t.Fatalf("%v seed %d: %d panes, %d late: the test exercises too little", st, seed, len(fastOut), fl)
			}
		}
	}
}
