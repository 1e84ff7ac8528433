package actors_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/clock"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// feed is an unbounded source of clicks with one split per partition, fed
// by the test; a partition with nothing queued answers stages.ErrNoData.
type feed struct {
	mu    sync.Mutex
	parts [][]click
	empty [3]atomic.Int64 // reads that found nothing, per partition
}

func (f *feed) push(part int, cs ...click) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.parts[part] = append(f.parts[part], cs...)
}

func (f *feed) Splits(context.Context) ([]stages.Split, error) {
	var out []stages.Split
	for i := range f.parts {
		out = append(out, stages.Split{Index: i, Records: -1, Bytes: -1, Desc: fmt.Sprint("partition ", i), Data: i})
	}
	return out, nil
}

func (f *feed) Open(_ context.Context, _ stages.Instance, s stages.Split) (stages.Reader[click], error) {
	return &feedReader{f: f, part: s.Data.(int)}, nil
}

type feedReader struct {
	f    *feed
	part int
}

func (r *feedReader) Read(buf []click) (int, error) {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	q := r.f.parts[r.part]
	if len(q) == 0 {
		r.f.empty[r.part].Add(1)
		return 0, stages.ErrNoData
	}
	n := copy(buf, q)
	r.f.parts[r.part] = q[n:]
	return n, nil
}

func (r *feedReader) Close() error { return nil }

// TestIdlePartition: of two source partitions, one goes quiet with its
// watermark far behind while the other keeps sending. Once it has been quiet for the idle timeout it is
// marked idle and no longer holds the watermark back, so the window that the
// other partition's watermark has passed fires: within the idle timeout
// plus one poll interval of manual time.
func TestIdlePartition(t *testing.T) {
	const (
		idle = time.Second
		poll = 15 * time.Millisecond
	)
	clk := &pollClock{Manual: clock.NewManual(time.Unix(1000, 0)), poll: poll}
	cfg := actors.DefaultConfig()
	cfg.Clock, cfg.Linger, cfg.Poll = clk, 10*time.Millisecond, poll
	f := &feed{parts: make([][]click, 2)}

	p := stages.NewPipeline("idle")
	src := stages.EventTime(stages.Read[click](p, f), func(c click) time.Time { return time.UnixMilli(c.Ms) },
		stages.MaxDelay(0), stages.IdleAfter(idle))
	counts := stages.WindowAggregate(stages.KeyBy(src, func(c click) int64 { return c.User }),
		window.Fixed(time.Minute), stages.Count[click]())
	var fired atomic.Int64
	var panes sync.Map
	stages.ForEach(counts, func(w stages.Windowed[int64, int64]) error {
		panes.Store(w.Window.Start, w.Value)
		fired.Add(1)
		return nil
	})

	// Partition 1 sends one early click and goes quiet; partition 0 fills
	// the first minute and moves its watermark past it.
	f.push(1, click{User: 1, Ms: 2_000})
	for s := int64(1); s < 60; s++ {
		f.push(0, click{User: 1, Ms: s * 1000})
	}
	f.push(0, click{User: 1, Ms: 70_000})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x, err := sluice.Start(ctx, p, sluice.Options{Parallelism: 2, Runtime: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	// Let both partitions read what they have, then count quiet time.
	waitFor(t, "both partitions to drain", func() bool { return f.empty[0].Load() > 0 && f.empty[1].Load() > 0 })
	// Step manual time one poll interval at a time, each step waiting until both
	// partitions have polled, up to the idle timeout: by then the quiet
	// partition has been marked idle, and the window must fire with no more
	// manual time passing.
	start := clk.Now()
	for clk.Now().Sub(start) < idle {
		if fired.Load() != 0 {
			t.Fatalf("the window fired after %v, before the quiet partition was idle: its watermark should hold it", clk.Now().Sub(start))
		}
		// Partition 0 stays busy: a click each step, in the next minute.
		step := int64(clk.Now().Sub(start) / poll)
		f.push(0, click{User: 2, Ms: 70_000 + step})
		e0, e1, armed := f.empty[0].Load(), f.empty[1].Load(), clk.polls.Load()
		clk.Advance(poll)
		// Both partitions poll, and then set their next poll's timer:
		// advancing before that would leave the timer for a later step.
		waitFor(t, "the partitions to poll", func() bool {
			return f.empty[0].Load() > e0 && f.empty[1].Load() > e1 && clk.polls.Load() >= armed+2
		})
	}
	waitFor(t, fmt.Sprintf("the window to fire at %v of manual time (idle timeout %v + poll %v)", clk.Now().Sub(start), idle, poll),
		func() bool { return fired.Load() > 0 })
	t.Logf("window fired after %v of manual time", clk.Now().Sub(start))
	v, ok := panes.Load(window.Time(0))
	if !ok || v.(int64) != 60 {
		t.Errorf("window [0, 60s): count %v, want 60 (59 from partition 0, 1 from partition 1)", v)
	}
	cancel()
	if _, err := x.Wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// waitFor waits, in real time with a deadline, for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// TestUnboundedSplitsAllRead: one source instance with three unbounded
// partitions reads all three, moving on from a partition with no data.
func TestUnboundedSplitsAllRead(t *testing.T) {
	f := &feed{parts: make([][]click, 3)}
	for part := range 3 {
		f.push(part, click{User: int64(part), Ms: 1})
	}
	p := stages.NewPipeline("partitions")
	var seen [3]atomic.Int64
	stages.ForEach(stages.Read[click](p, f, stages.Parallelism(1)), func(c click) error {
		seen[c.User].Add(1)
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x, err := sluice.Start(ctx, p, sluice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a record from every partition", func() bool {
		return seen[0].Load() == 1 && seen[1].Load() == 1 && seen[2].Load() == 1
	})
	cancel()
	if _, err := x.Wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// pollClock is a manual clock that counts the timers source instances set
// for their next poll after a read found nothing: those of the poll
// interval, which the test makes differ from every other timer's. A test
// advances time only once they are set.
type pollClock struct {
	*clock.Manual
	poll  time.Duration
	polls atomic.Int64
}

func (c *pollClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	if d == c.poll {
		defer c.polls.Add(1)
	}
	return c.Manual.AfterFunc(d, f)
}
