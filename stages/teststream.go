package stages

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/sluice-data/sluice/plan"
)

// TestStream is a source for testing event-time pipelines, after Beam's
// teststream: a script of bundles of timestamped records, watermark moves
// and processing-time moves, played in order by one source instance.
// Processing time moves through the Advancer given to NewTestStream, the
// same manual clock the job runs on, so window and trigger tests are
// deterministic.
//
//	ts := stages.NewTestStream[int64](clk).
//		AddElements(t0, 1, 2).
//		AdvanceWatermark(t0.Add(time.Minute)).
//		AdvanceProcessingTime(10 * time.Second)
//	s := ts.Read(p)
type TestStream[T any] struct {
	clock Advancer
	steps []testStep[T]
}

// Advancer moves a manual clock (clock.Manual is one).
type Advancer interface {
	Advance(time.Duration)
	Now() time.Time
}

type testStep[T any] struct {
	elems []T
	times []int64
	wm    int64
	isWM  bool
	pt    time.Duration
}

// NewTestStream returns an empty script; clock may be nil when the script
// never advances processing time.
func NewTestStream[T any](clock Advancer) *TestStream[T] { return &TestStream[T]{clock: clock} }

// AddElements adds one bundle of records, all with event time t.
func (ts *TestStream[T]) AddElements(t time.Time, xs ...T) *TestStream[T] {
	times := make([]int64, len(xs))
	for i := range times {
		times[i] = t.UnixNano()
	}
	ts.steps = append(ts.steps, testStep[T]{elems: xs, times: times})
	return ts
}

// AddTimestamped adds one bundle of records with their own event times.
func (ts *TestStream[T]) AddTimestamped(xs []T, times []time.Time) *TestStream[T] {
	if len(xs) != len(times) {
		panic(fmt.Sprintf("stages: AddTimestamped: %d records but %d times", len(xs), len(times)))
	}
	st := testStep[T]{elems: xs, times: make([]int64, len(xs))}
	for i, t := range times {
		st.times[i] = t.UnixNano()
	}
	ts.steps = append(ts.steps, st)
	return ts
}

// AdvanceWatermark moves the source's watermark to t.
func (ts *TestStream[T]) AdvanceWatermark(t time.Time) *TestStream[T] {
	ts.steps = append(ts.steps, testStep[T]{wm: t.UnixNano(), isWM: true})
	return ts
}

// AdvanceWatermarkToInfinity moves the watermark past every window.
func (ts *TestStream[T]) AdvanceWatermarkToInfinity() *TestStream[T] {
	ts.steps = append(ts.steps, testStep[T]{wm: math.MaxInt64, isWM: true})
	return ts
}

// AdvanceProcessingTime moves the job's manual clock by d.
func (ts *TestStream[T]) AdvanceProcessingTime(d time.Duration) *TestStream[T] {
	ts.steps = append(ts.steps, testStep[T]{pt: d})
	return ts
}

// Read adds the test stream as a source stage: one instance, one split
// (a Parallelism other than 1 is a graph error). Its input ends after the
// last step; the watermark then goes to the end of time only if the script
// says so, or when the job's input ends.
func (ts *TestStream[T]) Read(p *Pipeline, opts ...SourceOption) Stream[T] {
	loc := caller()
	o := applyOptions(opts)
	if o.parSet && o.parallelism != 1 {
		p.fail(loc, "teststream: parallelism %d: a test stream has one instance", o.parallelism)
	}
	o.parallelism, o.parSet = 1, true
	for _, st := range ts.steps {
		if st.pt != 0 && ts.clock == nil {
			p.fail(loc, "teststream: AdvanceProcessingTime needs the clock given to NewTestStream")
			break
		}
	}
	n := p.addNode(loc, &plan.Node{Kind: plan.KindSource, Op: "teststream", Out: plan.TypeOf[T]()}, o)
	n.Source = &plan.SourceSpec{
		Discover: func(context.Context) ([]plan.Split, error) {
			var recs int64
			for _, st := range ts.steps {
				recs += int64(len(st.elems))
			}
			return []plan.Split{{Records: recs, Bytes: -1, Desc: "teststream"}}, nil
		},
		Open: func(context.Context, plan.Instance, plan.Split) (plan.Reader, error) {
			return &testReader[T]{ts: ts}, nil
		},
		// A restored test stream goes on at its next step (its processing
		// time stays where the script had moved the clock).
		OpenAt: func(_ context.Context, _ plan.Instance, _ plan.Split, pos []byte) (plan.Reader, error) {
			step, err := strconv.Atoi(string(pos))
			if err != nil || step < 0 || step > len(ts.steps) {
				return nil, fmt.Errorf("teststream: %q is not a step of the script's %d", pos, len(ts.steps))
			}
			return &testReader[T]{ts: ts, next: step}, nil
		},
		ProcessingTime: true,
	}
	return Stream[T]{p: p, node: n}
}

type testReader[T any] struct {
	ts   *TestStream[T]
	next int
}

func (r *testReader[T]) ReadEvent(int) (*plan.Batch, int64, plan.ReadKind, error) {
	for r.next < len(r.ts.steps) {
		st := r.ts.steps[r.next]
		r.next++
		switch {
		case st.isWM:
			return nil, st.wm, plan.ReadWatermark, nil
		case st.pt != 0:
			r.ts.clock.Advance(st.pt)
			return nil, r.ts.clock.Now().UnixNano(), plan.ReadTime, nil
		case len(st.elems) > 0:
			return &plan.Batch{Data: st.elems, Times: st.times}, 0, plan.ReadBatch, nil
		}
	}
	return nil, 0, plan.ReadBatch, io.EOF
}

func (r *testReader[T]) Read(max int) (*plan.Batch, error) {
	b, _, _, err := r.ReadEvent(max)
	return b, err
}

func (r *testReader[T]) Close() error { return nil }

// Position implements plan.Positioner: the next step of the script.
func (r *testReader[T]) Position() ([]byte, error) {
	return strconv.AppendInt(nil, int64(r.next), 10), nil
}

// hasTestStream reports whether a test stream, which brings its own event
// times, is upstream of n.
func hasTestStream(n *plan.Node) bool {
	if n.Op == "teststream" {
		return true
	}
	for _, in := range n.Inputs {
		if hasTestStream(in.From) {
			return true
		}
	}
	return false
}
