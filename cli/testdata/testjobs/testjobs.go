// Package testjobs registers the jobs that the command line's tests run:
// jobs that block, fail, run until stopped, or drop records. The tests link
// it into their process and into the binary they build from
// testdata/testmain; the sluice command does not.
package testjobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/examples"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// Started receives a token when test-block's source starts reading.
var Started = make(chan struct{}, 1)

func init() {
	// test-paced-windows is W3 (events-windows) over generated events
	// (n-events) that pauses for pace after every 100 records it passes
	// on each node: a job that runs long enough to be rescaled and moved
	// while it runs, whose output does not depend on the pace.
	stages.Register("test-paced-windows", func(p *stages.Pipeline, args stages.Args) {
		spec := examples.DefaultEvents()
		spec.Events = int64(args.Int("n-events", int(spec.Events)))
		pace := args.Duration("pace", time.Millisecond)
		var n atomic.Int64
		events := stages.Map(spec.ReadEvents(p), func(e examples.Event) examples.Event {
			if pace > 0 && n.Add(1)%100 == 0 {
				time.Sleep(pace)
			}
			return e
		}, stages.Name("paced"))
		parquetio.Write(examples.UserMinutes(events), args.String("out", ""), parquetio.Overwrite)
	}).Describe("W3 over generated events (n-events), paused for pace every 100 records, into Parquet under out=DIR")

	stages.Register("test-block", func(p *stages.Pipeline, _ stages.Args) {
		stages.ForEach(stages.Read[int](p, blockSource{}), func(int) error { return nil })
	}).Describe("reads until cancelled")

	stages.Register("test-panic", func(p *stages.Pipeline, _ stages.Args) {
		xs := stages.Map(stages.FromSlice(p, []int{1, 2, 3}), func(x int) int { panic("boom") })
		stages.ForEach(xs, func(int) error { return nil })
	}).Describe("panics in a user function")

	// test-stuck's map never returns: only a second signal ends it.
	stages.Register("test-stuck", func(p *stages.Pipeline, _ stages.Args) {
		xs := stages.Map(stages.FromSlice(p, []int{1, 2, 3}), func(x int) int {
			<-make(chan struct{})
			return x
		}, stages.Name("wait-forever"), stages.Parallelism(1))
		stages.ForEach(xs, func(int) error { return nil })
	}).Describe("blocks in a user function for good")

	// test-endless reads until stopped and prints "running" on standard
	// output when its first record reaches the sink.
	stages.Register("test-endless", func(p *stages.Pipeline, _ stages.Args) {
		var once sync.Once
		stages.ForEach(stages.Read[int](p, endless{}, stages.Parallelism(1)), func(int) error {
			once.Do(func() { fmt.Fprintln(os.Stdout, "running") })
			return nil
		}, stages.Parallelism(1))
	}).Describe("reads until stopped; prints running when the first record is through")

	// test-late has 1024 records a minute apart, then 100 at time 0: the
	// first window has closed by then, and they are dropped as late.
	stages.Register("test-late", func(p *stages.Pipeline, _ stages.Args) {
		ts := make([]time.Duration, 0, 1124)
		for i := range 1024 {
			ts = append(ts, time.Duration(i)*time.Minute)
		}
		for range 100 {
			ts = append(ts, 0)
		}
		timed := stages.EventTime(stages.FromSlice(p, ts, stages.Parallelism(1)),
			func(d time.Duration) time.Time { return time.Unix(0, 0).Add(d) }, stages.MaxDelay(0), stages.Parallelism(1))
		counts := stages.WindowAggregate(stages.KeyBy(timed, func(time.Duration) int { return 0 }),
			window.Fixed(time.Minute), stages.Count[time.Duration](), stages.Name("per-minute"), stages.Parallelism(1))
		stages.ForEach(counts, func(stages.Windowed[int, int64]) error { return nil }, stages.Parallelism(1))
	}).Describe("drops 100 late records")

	// test-dead-letters sets aside the odd numbers of 1..10 as dead letters.
	stages.Register("test-dead-letters", func(p *stages.Pipeline, _ stages.Args) {
		even, dead := stages.TryMap(stages.FromSlice(p, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}), func(x int) (int, error) {
			if x%2 == 1 {
				return 0, errors.New("odd")
			}
			return x, nil
		}, stages.Name("evens"))
		stages.ForEach(even, func(int) error { return nil })
		stages.ForEach(dead, func(stages.DeadLetter) error { return nil })
	}).Describe("sets aside 5 dead letters")

	// test-args prints its argument out, which may not be empty.
	stages.Register("test-args", func(p *stages.Pipeline, args stages.Args) {
		out := args.String("out", "default")
		stages.ForEach(stages.FromSlice(p, []string{out}), func(s string) error {
			fmt.Fprintln(os.Stdout, "out:", s)
			return nil
		})
	}).Describe("prints its argument out")
}

type blockSource struct{}

func (blockSource) Splits(context.Context) ([]stages.Split, error) {
	return []stages.Split{{Records: -1, Bytes: -1, Desc: "forever"}}, nil
}

func (blockSource) Open(ctx context.Context, _ stages.Instance, _ stages.Split) (stages.Reader[int], error) {
	return blockReader{ctx}, nil
}

type blockReader struct{ ctx context.Context }

func (r blockReader) Read([]int) (int, error) {
	select {
	case Started <- struct{}{}:
	default:
	}
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func (blockReader) Close() error { return nil }

// endless is a source of zeros that never ends.
type endless struct{}

func (endless) Splits(context.Context) ([]stages.Split, error) {
	return []stages.Split{{Records: -1, Bytes: -1, Desc: "zeros"}}, nil
}

func (endless) Open(context.Context, stages.Instance, stages.Split) (stages.Reader[int], error) {
	return endlessReader{}, nil
}

type endlessReader struct{}

func (endlessReader) Read(buf []int) (int, error) { clear(buf); return len(buf), nil }
func (endlessReader) Close() error                { return nil }
