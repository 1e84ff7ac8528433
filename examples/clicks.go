package examples

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sluice-data/sluice/connectors/generator"
	"github.com/sluice-data/sluice/connectors/nats"
	"github.com/sluice-data/sluice/connectors/redis"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// Click is a user's click on an item: the input of the clicks job.
type Click struct {
	UserID int64
	TS     int64   // event time, unix milliseconds
	Price  float64 // the price of the item clicked
}

// ClickFeatures are a user's online features for one minute: how many
// clicks and the total price of the items clicked.
type ClickFeatures struct {
	Clicks int64
	Value  float64
}

// ClicksSpec describes generated clicks.
type ClicksSpec struct {
	Seed  uint64
	Users int64
	Rows  int64
	Zipf  float64
	// Every is the event time between consecutive clicks; Disorder the most
	// a click's time lags behind its place.
	Every, Disorder time.Duration
	// Speed is how much event time passes per second of processing time:
	// 1 replays the clicks in real time, 0 as fast as possible.
	Speed float64
}

// Config returns the generator configuration of the clicks.
func (s ClicksSpec) Config() generator.Config {
	return generator.Config{Seed: s.Seed, Rows: s.Rows, Keys: max(1, s.Users), Zipf: s.Zipf,
		Disorder: s.Disorder.Milliseconds()}
}

// Click returns the click of generated row r: by user r.Key at
// Epoch + Disorder + r.Index·Every less the row's lag, on an item of
// r.Value cents.
func (s ClicksSpec) Click(r generator.Row) Click {
	lag := r.Index - r.Time
	return Click{UserID: r.Key, TS: Epoch + s.Disorder.Milliseconds() + r.Index*s.Every.Milliseconds() - lag,
		Price: float64(r.Value) / 100}
}

// ClicksWindow is the clicks job's windowing: one-minute windows with a
// speculative pane every 10 s of processing time, the on-time pane when
// the watermark passes the end, late panes for an hour after that, each
// pane holding every click of the window so far.
var ClicksWindow = window.Fixed(time.Minute).
	Trigger(window.AfterWatermark().Early(window.AfterProcessingTime(10 * time.Second))).
	AllowedLateness(time.Hour).
	Accumulating()

// Clicks is the streaming example: clicks replayed at the pace of their
// event times (one source instance, like one partition of a broker) are
// turned into per-user, per-minute features that update every 10 s of
// processing time (ClicksWindow). The features are printed as they fire,
// one line a pane, or written to Redis when redis=ADDR is given
// (connectors/redis.Features: a hash per user and minute, named
// clicks-v1:<user>:<window start in unix ms>, whose field value holds the
// latest pane's features as JSON). Its arguments:
//
//	users     the number of users (20)
//	clicks    the number of clicks (30000)
//	every     event time between clicks (4ms: 250 a second)
//	speed     event time per processing time: 1 for real time, 0 for as
//	          fast as possible (1)
//	disorder  the most a click's time lags behind its place, and the
//	          watermark's delay (2s)
//	seed      selects the data set (1)
//	zipf      the exponent of the users' Zipf skew, 0 for uniform (1.1)
//	redis     host:port of a Redis server to write the features to,
//	          instead of printing them
//	prefix    the Redis keys' prefix (clicks-v1)
//	nats      a NATS server's URL: read the clicks (JSON) from its
//	          JetStream stream instead of generating them, up to the
//	          stream's last message when the job starts
//	stream    that stream (CLICKS)
//	follow    true: read the stream as it grows, without end (the job
//	          runs until it is stopped), instead of up to its last message
//	          (false)
//	nats-out  publish the features (JSON) to this subject of the NATS
//	          server, exactly once (nats.ExactlyOnce), instead of printing
//	          them
//
//	sluice run clicks --arg users=5 --arg speed=4
var Clicks = stages.Register("clicks", func(p *stages.Pipeline, args stages.Args) {
	s := ClicksSpec{
		Seed:     uint64(args.Int("seed", 1)),
		Users:    int64(args.Int("users", 20)),
		Rows:     int64(args.Int("clicks", 30_000)),
		Zipf:     args.Float("zipf", 1.1),
		Every:    args.Duration("every", 4*time.Millisecond),
		Disorder: args.Duration("disorder", 2*time.Second),
		Speed:    args.Float("speed", 1),
	}
	if s.Every < time.Millisecond {
		args.Fail("every", "must be at least 1ms")
		s.Every = time.Millisecond
	}
	if s.Speed < 0 {
		args.Fail("speed", "must not be negative")
		s.Speed = 0
	}
	if s.Disorder < 0 {
		args.Fail("disorder", "must not be negative")
		s.Disorder = 0
	}
	var from stages.Source[Click] = generator.Source(s.Config(), s.Click)
	url := args.String("nats", "")
	if url != "" {
		var opts []nats.SourceOption
		if !args.Bool("follow", false) {
			opts = append(opts, nats.UntilEmpty())
		}
		from = nats.Source[Click](url, args.String("stream", "CLICKS"), opts...)
	} else if args.Bool("follow", false) {
		args.Fail("follow", "needs nats=URL, the stream to follow")
	}
	src := &pacedSource[Click]{Source: from, every: s.Every, speed: s.Speed, now: time.Now}
	clicks := stages.Read[Click](p, src, stages.Name("clicks"), stages.Parallelism(1))
	timed := stages.EventTime(clicks, func(c Click) time.Time { return time.UnixMilli(c.TS) },
		stages.MaxDelay(s.Disorder), stages.Parallelism(1))
	features := stages.WindowAggregate(stages.KeyBy(timed, func(c Click) int64 { return c.UserID }), ClicksWindow,
		stages.Combine("features", func(c Click) ClickFeatures { return ClickFeatures{Clicks: 1, Value: c.Price} },
			func(a, b ClickFeatures) ClickFeatures {
				return ClickFeatures{Clicks: a.Clicks + b.Clicks, Value: a.Value + b.Value}
			},
			func(f ClickFeatures) ClickFeatures { return f }),
		stages.ID("clicks-v1"))
	prefix := args.String("prefix", "clicks-v1")
	addr, out := args.String("redis", ""), args.String("nats-out", "")
	if addr != "" {
		stages.Write(features, redis.Features[int64, ClickFeatures](addr, redis.For(ClicksWindow), redis.Prefix(prefix)),
			stages.Name("redis"))
	}
	if out != "" {
		if url == "" {
			args.Fail("nats-out", "needs nats=URL, the server to publish to")
		}
		stages.Write(features, nats.Sink[stages.Windowed[int64, ClickFeatures]](url, out, nats.ExactlyOnce()), stages.Name("nats"))
	}
	if addr == "" && out == "" {
		stages.Write(features, livePrinter[stages.Windowed[int64, ClickFeatures]](writePane), stages.Name("print"))
	}
}).Describe("streaming: per-user click features in 1-minute windows updated every 10 s, printed or written to redis=ADDR (users=20 clicks=30000 speed=1)")

// writePane prints one pane of click features:
//
//	00:01 user 3 early pane 2: 35 clicks, value 1234.56
func writePane(w io.Writer, f stages.Windowed[int64, ClickFeatures]) {
	fmt.Fprintf(w, "%s user %d %s pane %d: %d clicks, value %.2f\n", f.Window.Start.Std().Format("15:04"),
		f.Key, f.Pane.Timing, f.Pane.Index, f.Value.Clicks, f.Value.Value)
}

// pacedSource releases the records of a bounded source at the pace of
// their event times: record i of each split (0-based, across the split's
// reads) is due every/speed·i after the split is opened. Until a record is
// due the reader reports stages.ErrNoData, as an unbounded source does, so
// that the runtime polls it again after the linger. Speed 0 releases
// everything at once.
type pacedSource[T any] struct {
	stages.Source[T]
	every time.Duration
	speed float64
	now   func() time.Time
}

// Open implements stages.Source.
func (s *pacedSource[T]) Open(ctx context.Context, inst stages.Instance, sp stages.Split) (stages.Reader[T], error) {
	r, err := s.Source.Open(ctx, inst, sp)
	if err != nil || s.speed == 0 {
		return r, err
	}
	return &pacedReader[T]{Reader: r, gap: time.Duration(float64(s.every) / s.speed), now: s.now, start: s.now()}, nil
}

// OpenAt implements stages.Seeker, for the sources it paces (the generator,
// NATS), which are Seekers: a split restored from a checkpoint is paced
// from where it was.
func (s *pacedSource[T]) OpenAt(ctx context.Context, inst stages.Instance, sp stages.Split, pos []byte) (stages.Reader[T], error) {
	sk, ok := s.Source.(stages.Seeker[T])
	if !ok {
		return nil, fmt.Errorf("clicks: %T cannot open a split at a checkpoint's position", s.Source)
	}
	r, err := sk.OpenAt(ctx, inst, sp, pos)
	if err != nil || s.speed == 0 {
		return r, err
	}
	return &pacedReader[T]{Reader: r, gap: time.Duration(float64(s.every) / s.speed), now: s.now, start: s.now()}, nil
}

// Position implements stages.Positioner: the paced reader's.
func (r *pacedReader[T]) Position() ([]byte, error) {
	p, ok := r.Reader.(stages.Positioner)
	if !ok {
		return nil, fmt.Errorf("clicks: %T has no position", r.Reader)
	}
	return p.Position()
}

type pacedReader[T any] struct {
	stages.Reader[T]
	gap   time.Duration // processing time between records
	now   func() time.Time
	start time.Time
	read  int64 // records returned so far
}

func (r *pacedReader[T]) Read(buf []T) (int, error) {
	due := int64(r.now().Sub(r.start)/max(r.gap, 1)) + 1 // records due by now
	n := min(int64(len(buf)), due-r.read)
	if n <= 0 {
		return 0, stages.ErrNoData
	}
	got, err := r.Reader.Read(buf[:n])
	r.read += int64(got)
	return got, err
}

// livePrinter is a sink that prints each record to standard output as it
// arrives: a streaming job's output, unlike printer's, which waits for the
// commit.
type livePrinter[T any] func(w io.Writer, x T)

var liveMu sync.Mutex // one line at a time from every instance

// Open implements stages.Sink.
func (p livePrinter[T]) Open(context.Context, stages.Instance) (stages.Writer[T], error) {
	return livePrintWriter[T]{print: p}, nil
}

type livePrintWriter[T any] struct{ print livePrinter[T] }

func (w livePrintWriter[T]) Write(xs []T) error {
	liveMu.Lock()
	defer liveMu.Unlock()
	out := output()
	for _, x := range xs {
		w.print(out, x)
	}
	return nil
}
func (livePrintWriter[T]) Prepare() error { return nil }
func (livePrintWriter[T]) Commit() error  { return nil }
func (livePrintWriter[T]) Abort() error   { return nil }
