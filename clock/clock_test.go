package clock_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-data/sluice/clock"
)

var start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// since renders a clock reading as the time since start, for compact logs.
func since(t time.Time) time.Duration { return t.Sub(start) }

// recorder logs which timers fire and what the clock reads while they run.
type recorder struct {
	m   *clock.Manual
	log []string
}

func (r *recorder) after(d time.Duration, name string) clock.Timer {
	return r.m.AfterFunc(d, func() { r.log = append(r.log, fmt.Sprintf("%s@%v", name, since(r.m.Now()))) })
}

func TestManualFiresInDueOrder(t *testing.T) {
	m := clock.NewManual(start)
	r := &recorder{m: m}
	r.after(30*time.Second, "c")
	r.after(10*time.Second, "a1")
	r.after(20*time.Second, "b")
	r.after(10*time.Second, "a2") // ties with a1: creation order
	r.after(0, "now")

	if got := m.Pending(); got != 5 {
		t.Fatalf("Pending = %d, want 5", got)
	}
	m.Advance(25 * time.Second)
	if want := []string{"now@0s", "a1@10s", "a2@10s", "b@20s"}; !slices.Equal(r.log, want) {
		t.Errorf("fired %v, want %v", r.log, want)
	}
	if got := since(m.Now()); got != 25*time.Second {
		t.Errorf("Now after Advance(25s) = %v, want 25s", got)
	}
	if got := m.Pending(); got != 1 {
		t.Errorf("Pending = %d, want 1", got)
	}
	r.log = nil
	m.Advance(5 * time.Second) // exactly due: fires
	if want := []string{"c@30s"}; !slices.Equal(r.log, want) {
		t.Errorf("fired %v, want %v", r.log, want)
	}
	if got := m.Pending(); got != 0 {
		t.Errorf("Pending = %d, want 0", got)
	}
}

func TestManualAdvanceWithNothingDue(t *testing.T) {
	m := clock.NewManual(start)
	if got := m.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	r := &recorder{m: m}
	r.after(time.Hour, "late")
	for _, d := range []time.Duration{0, time.Second, time.Minute} {
		before := m.Now()
		m.Advance(d)
		if got := m.Now().Sub(before); got != d {
			t.Errorf("Advance(%v) moved the clock by %v", d, got)
		}
	}
	if len(r.log) != 0 || m.Pending() != 1 {
		t.Errorf("fired %v, pending %d; want nothing fired, 1 pending", r.log, m.Pending())
	}
}

func TestManualStop(t *testing.T) {
	tests := []struct {
		name      string
		stopAfter time.Duration // advance this far before Stop
		wantStop  bool
		wantFired bool
	}{
		{name: "before due", stopAfter: 5 * time.Second, wantStop: true, wantFired: false},
		{name: "never advanced", stopAfter: 0, wantStop: true, wantFired: false},
		{name: "after firing", stopAfter: 10 * time.Second, wantStop: false, wantFired: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := clock.NewManual(start)
			r := &recorder{m: m}
			tm := r.after(10*time.Second, "t")
			m.Advance(tt.stopAfter)
			if got := tm.Stop(); got != tt.wantStop {
				t.Errorf("Stop() = %v, want %v", got, tt.wantStop)
			}
			if got := tm.Stop(); got {
				t.Errorf("second Stop() = true, want false")
			}
			m.Advance(time.Hour)
			if fired := len(r.log) > 0; fired != tt.wantFired {
				t.Errorf("fired = %v (%v), want %v", fired, r.log, tt.wantFired)
			}
			if got := m.Pending(); got != 0 {
				t.Errorf("Pending = %d, want 0", got)
			}
		})
	}
}

// TestManualStopFromCallback stops a timer due in the same Advance from the
// callback of an earlier one: it must not fire.
func TestManualStopFromCallback(t *testing.T) {
	m := clock.NewManual(start)
	r := &recorder{m: m}
	var victim clock.Timer
	var stopped bool
	m.AfterFunc(time.Second, func() { stopped = victim.Stop() })
	victim = r.after(2*time.Second, "victim")
	m.Advance(time.Minute)
	if !stopped || len(r.log) != 0 {
		t.Errorf("Stop from a callback = %v, fired %v; want true and nothing fired", stopped, r.log)
	}
}

// TestManualStopOwnTimerInCallback: a callback stopping its own timer gets
// false, the timer having fired.
func TestManualStopOwnTimerInCallback(t *testing.T) {
	m := clock.NewManual(start)
	var self clock.Timer
	got := true
	self = m.AfterFunc(time.Second, func() { got = self.Stop() })
	m.Advance(time.Second)
	if got {
		t.Errorf("Stop of the running timer = true, want false")
	}
}

func TestManualTimersScheduledFromCallbacks(t *testing.T) {
	m := clock.NewManual(start)
	r := &recorder{m: m}
	m.AfterFunc(10*time.Second, func() {
		r.log = append(r.log, fmt.Sprintf("outer@%v", since(m.Now())))
		r.after(5*time.Second, "inner-in-range")   // due at 15s
		r.after(0, "inner-now")                    // due at 10s, after outer
		r.after(time.Minute, "inner-out-of-range") // due at 70s
	})
	r.after(12*time.Second, "sibling")
	m.Advance(20 * time.Second)
	want := []string{"outer@10s", "inner-now@10s", "sibling@12s", "inner-in-range@15s"}
	if !slices.Equal(r.log, want) {
		t.Errorf("fired %v, want %v", r.log, want)
	}
	if got := since(m.Now()); got != 20*time.Second {
		t.Errorf("Now = %v, want 20s", got)
	}
	if got := m.Pending(); got != 1 {
		t.Errorf("Pending = %d, want 1", got)
	}
	r.log = nil
	m.Advance(50 * time.Second)
	if want := []string{"inner-out-of-range@1m10s"}; !slices.Equal(r.log, want) {
		t.Errorf("fired %v, want %v", r.log, want)
	}
}

// TestManualPastTimer: a timer with a negative delay fires at the next
// Advance without moving the clock back.
func TestManualPastTimer(t *testing.T) {
	m := clock.NewManual(start)
	m.Advance(time.Minute)
	r := &recorder{m: m}
	r.after(-30*time.Second, "past")
	m.Advance(0)
	if want := []string{"past@1m0s"}; !slices.Equal(r.log, want) {
		t.Errorf("fired %v, want %v", r.log, want)
	}
}

// TestManualConcurrent runs AfterFunc, Stop, Now and Pending from several
// goroutines against one advancing goroutine; run under -race. Every timer
// either fires exactly once or is stopped.
func TestManualConcurrent(t *testing.T) {
	m := clock.NewManual(start)
	const workers, perWorker = 8, 200
	var mu sync.Mutex
	fired := map[int]int{}
	stopped := map[int]bool{}

	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() { // the advancer
		defer close(done)
		for i := 0; i < workers*perWorker; i++ {
			m.Advance(time.Millisecond)
		}
	}()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				id := w*perWorker + i
				tm := m.AfterFunc(time.Duration(i%7)*time.Millisecond, func() {
					_ = m.Now()
					mu.Lock()
					fired[id]++
					mu.Unlock()
				})
				_ = m.Pending()
				if i%3 == 0 && tm.Stop() {
					mu.Lock()
					stopped[id] = true
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	<-done
	m.Advance(time.Hour) // fire whatever is left
	mu.Lock()
	defer mu.Unlock()
	for id := 0; id < workers*perWorker; id++ {
		switch {
		case stopped[id] && fired[id] != 0:
			t.Errorf("timer %d stopped and fired", id)
		case !stopped[id] && fired[id] != 1:
			t.Errorf("timer %d fired %d times, want 1", id, fired[id])
		}
	}
	if got := m.Pending(); got != 0 {
		t.Errorf("Pending = %d, want 0", got)
	}
}

// TestManualConcurrentAdvanceNeverGoesBack: the clock is documented as safe
// for concurrent use, so an Advance racing with another Advance whose timer
// callback is running must not move the clock backwards.
func TestManualConcurrentAdvanceNeverGoesBack(t *testing.T) {
	m := clock.NewManual(start)
	entered, release := make(chan struct{}), make(chan struct{})
	m.AfterFunc(5*time.Second, func() {
		close(entered)
		<-release
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Advance(10 * time.Second) // blocks in the callback at 5s
	}()
	<-entered
	m.Advance(100 * time.Second) // from 5s: to 105s
	after := m.Now()
	close(release)
	<-done
	if got := m.Now(); got.Before(after) {
		t.Errorf("clock went back from %v to %v", since(after), since(got))
	}
}

// TestManualNestedAdvance: Advance from inside a callback (a simulator's
// handler advancing time) must not be undone by the outer Advance.
func TestManualNestedAdvance(t *testing.T) {
	m := clock.NewManual(start)
	m.AfterFunc(5*time.Second, func() { m.Advance(time.Minute) })
	m.Advance(10 * time.Second)
	if got := since(m.Now()); got != 65*time.Second {
		t.Errorf("Now = %v, want 1m5s", got)
	}
}

func TestReal(t *testing.T) {
	c := clock.Real()
	if c.Now().IsZero() {
		t.Fatal("Real().Now() is zero")
	}
	ran := make(chan struct{})
	c.AfterFunc(0, func() { close(ran) })
	<-ran
	tm := c.AfterFunc(time.Hour, func() { t.Error("an hour passed") })
	if !tm.Stop() {
		t.Error("Stop of a pending real timer = false")
	}
}
