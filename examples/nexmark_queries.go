package examples

import (
	"slices"
	"time"

	"github.com/sluice-data/sluice/connectors/jsonl"
	"github.com/sluice-data/sluice/connectors/nexmark"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// The Nexmark queries with Beam's semantics (NEXMARK.md §5), over the
// generated events (nexmark-gen's arguments: events=100000 by default).
// Each writes JSON lines under out=DIR (default $TMPDIR/sluice-nexmark-qN),
// Parquet with format=parquet (not q0, whose events nest), or nothing
// with format=blackhole (the results dropped, as Flink's benchmark does).
//
//	sluice run nexmark-q5 --arg events=1000000 --checkpoints /tmp/ck --checkpoint-every 10s

// NexmarkBid is a bid, flat (q1's and q7's output).
type NexmarkBid struct {
	Auction  int64  `json:"auction" parquet:"auction"`
	Bidder   int64  `json:"bidder" parquet:"bidder"`
	Price    int64  `json:"price" parquet:"price"`
	DateTime int64  `json:"dateTime" parquet:"date_time"`
	Extra    string `json:"extra" parquet:"extra"`
}

// NexmarkAuctionPrice is q2's output.
type NexmarkAuctionPrice struct {
	Auction int64 `json:"auction" parquet:"auction"`
	Price   int64 `json:"price" parquet:"price"`
}

// NexmarkSeller is q3's output: a seller in OR, ID or CA and an auction
// of theirs in category 10.
type NexmarkSeller struct {
	Name    string `json:"name" parquet:"name"`
	City    string `json:"city" parquet:"city"`
	State   string `json:"state" parquet:"state"`
	Auction int64  `json:"id" parquet:"id"`
}

// NexmarkHotItem is q5's output: an auction with the most bids of a
// window (all of them on a tie); times in unix milliseconds.
type NexmarkHotItem struct {
	WindowStart int64 `json:"window_start" parquet:"window_start"`
	WindowEnd   int64 `json:"window_end" parquet:"window_end"`
	Auction     int64 `json:"auction" parquet:"auction"`
	Num         int64 `json:"num" parquet:"num"`
}

// NexmarkNewUser is q8's output: a person who opened an auction in the
// window of 10 s they joined in.
type NexmarkNewUser struct {
	ID          int64  `json:"id" parquet:"id"`
	Name        string `json:"name" parquet:"name"`
	Reserve     int64  `json:"reserve" parquet:"reserve"`
	WindowStart int64  `json:"window_start" parquet:"window_start"`
}

func flatBid(b nexmark.Bid) NexmarkBid {
	return NexmarkBid{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime, Extra: b.Extra}
}

// bids, persons and auctions pick the events of one kind, their event
// times kept.
func bids(events stages.Stream[nexmark.Event]) stages.Stream[nexmark.Bid] {
	return stages.FlatMap(events, func(e nexmark.Event, emit func(nexmark.Bid)) {
		if e.Bid != nil {
			emit(*e.Bid)
		}
	}, stages.Name("bids"))
}

func persons(events stages.Stream[nexmark.Event]) stages.Stream[nexmark.Person] {
	return stages.FlatMap(events, func(e nexmark.Event, emit func(nexmark.Person)) {
		if e.NewPerson != nil {
			emit(*e.NewPerson)
		}
	}, stages.Name("persons"))
}

func auctions(events stages.Stream[nexmark.Event]) stages.Stream[nexmark.Auction] {
	return stages.FlatMap(events, func(e nexmark.Event, emit func(nexmark.Auction)) {
		if e.NewAuction != nil {
			emit(*e.NewAuction)
		}
	}, stages.Name("auctions"))
}

// writeNexmark writes a query's output as its format argument says.
func writeNexmark[T any](s stages.Stream[T], job string, args stages.Args) {
	dir := outputDir(args, job)
	switch f := args.String("format", "jsonl"); f {
	case "jsonl":
		jsonl.Write(s, dir)
	case "parquet":
		writeParquet(s, job, dir, outputOptions(args))
	case "blackhole": // Flink's benchmark sink: the results are dropped
		stages.ForEach(s, func(T) error { return nil }, stages.Name("blackhole"))
	default:
		args.Fail("format", "want jsonl, parquet or blackhole")
	}
}

// most keeps the greatest of a window's values and everything that has it.
type most[T any] struct {
	Max  int64
	With []T
}

func mostOf[T any](name string, value func(T) int64) stages.Combiner[T, most[T], most[T]] {
	return stages.Combine(name,
		func(x T) most[T] { return most[T]{Max: value(x), With: []T{x}} },
		func(a, b most[T]) most[T] { // a new slice: a pane keeps what it was given
			switch {
			case a.Max > b.Max:
				return a
			case b.Max > a.Max:
				return b
			}
			return most[T]{Max: a.Max, With: slices.Concat(a.With, b.With)}
		},
		func(a most[T]) most[T] { return a })
}

var (
	// NexmarkQ0 passes every event through (Beam's q0).
	NexmarkQ0 = stages.Register("nexmark-q0", func(p *stages.Pipeline, args stages.Args) {
		events := nexmark.Read(p, nexmarkConfig(p, args))
		switch args.String("format", "jsonl") {
		case "jsonl":
			jsonl.Write(events, outputDir(args, "nexmark-q0"))
		case "blackhole":
			writeNexmark(events, "nexmark-q0", args)
		default:
			args.Fail("format", "q0's events nest: jsonl or blackhole")
		}
	}).Describe("Nexmark q0: every event passed through, as JSON lines under out=DIR")

	// NexmarkQ1 converts each bid's price (Beam's q1: price*89/100).
	NexmarkQ1 = stages.Register("nexmark-q1", func(p *stages.Pipeline, args stages.Args) {
		out := stages.Map(bids(nexmark.Read(p, nexmarkConfig(p, args))), func(b nexmark.Bid) NexmarkBid {
			b.Price = b.Price * 89 / 100
			return flatBid(b)
		}, stages.Name("currency"))
		writeNexmark(out, "nexmark-q1", args)
	}).Describe("Nexmark q1: bids with price*89/100 (currency conversion)")

	// NexmarkQ2 selects the bids on auctions whose id is a multiple of 123.
	NexmarkQ2 = stages.Register("nexmark-q2", func(p *stages.Pipeline, args stages.Args) {
		b := stages.Filter(bids(nexmark.Read(p, nexmarkConfig(p, args))), func(b nexmark.Bid) bool { return b.Auction%123 == 0 },
			stages.Name("auction % 123 == 0"))
		writeNexmark(stages.Map(b, func(b nexmark.Bid) NexmarkAuctionPrice { return NexmarkAuctionPrice{b.Auction, b.Price} }),
			"nexmark-q2", args)
	}).Describe("Nexmark q2: (auction, price) of the bids on auctions whose id is a multiple of 123")

	// NexmarkQ3 suggests local items: the auctions in category 10 of
	// sellers in OR, ID or CA, as Flink's SQL joins them (an unbounded
	// inner join: a person is kept for good). Beam's q3 lets a seller's
	// state go 600 s after the last event of the seller it processed,
	// which makes its output depend on the order events arrive in.
	NexmarkQ3 = stages.Register("nexmark-q3", func(p *stages.Pipeline, args stages.Args) {
		events := nexmark.Read(p, nexmarkConfig(p, args))
		sellers := stages.Filter(persons(events), func(x nexmark.Person) bool { return x.State == "OR" || x.State == "ID" || x.State == "CA" },
			stages.Name("in OR, ID, CA"))
		items := stages.Filter(auctions(events), func(a nexmark.Auction) bool { return a.Category == 10 }, stages.Name("in category 10"))
		const forever = 100 * 365 * 24 * time.Hour // both sides kept: an unbounded join
		j := stages.IntervalJoin(stages.KeyBy(sellers, func(x nexmark.Person) int64 { return x.ID }),
			stages.KeyBy(items, func(a nexmark.Auction) int64 { return a.Seller }), -forever, forever, stages.ID("nexmark-q3-join"))
		out := stages.Map(j, func(j stages.IntervalJoined[int64, nexmark.Person, nexmark.Auction]) NexmarkSeller {
			return NexmarkSeller{Name: j.Left.Name, City: j.Left.City, State: j.Left.State, Auction: j.Right.ID}
		}, stages.Name("project"))
		writeNexmark(out, "nexmark-q3", args)
	}).Describe("Nexmark q3: (name, city, state, auction) of sellers in OR, ID, CA and their auctions in category 10 (Flink's unbounded join)")

	// NexmarkQ5 finds the hot items: in sliding windows (size, 10s, every
	// slide, 5s; Flink's run: slide=2s), the auctions with the most bids.
	NexmarkQ5 = stages.Register("nexmark-q5", func(p *stages.Pipeline, args stages.Args) {
		size, slide := args.Duration("size", 10*time.Second), args.Duration("slide", 5*time.Second)
		if slide <= 0 || size < slide || size%slide != 0 {
			args.Fail("slide", "want 0 < slide <= size, size a multiple of slide")
			size, slide = 10*time.Second, 5*time.Second
		}
		b := bids(nexmark.Read(p, nexmarkConfig(p, args)))
		counts := stages.WindowAggregate(stages.KeyBy(b, func(b nexmark.Bid) int64 { return b.Auction }), window.Sliding(size, slide),
			stages.Count[nexmark.Bid](), stages.ID("nexmark-q5-counts"))
		// Each window's counts come out at its end: keyed by the window,
		// in the window of one slide that holds its end, they meet.
		hot := stages.WindowAggregate(stages.KeyBy(counts, func(w stages.Windowed[int64, int64]) int64 { return int64(w.Window.Start) }),
			window.Fixed(slide), mostOf("most bids", func(w stages.Windowed[int64, int64]) int64 { return w.Value }),
			stages.ID("nexmark-q5-most"))
		out := stages.FlatMap(hot, func(w stages.Windowed[int64, most[stages.Windowed[int64, int64]]], emit func(NexmarkHotItem)) {
			for _, c := range w.Value.With {
				emit(NexmarkHotItem{WindowStart: int64(c.Window.Start) / 1e6, WindowEnd: int64(c.Window.End) / 1e6, Auction: c.Key, Num: c.Value})
			}
		}, stages.Name("hot items"))
		writeNexmark(out, "nexmark-q5", args)
	}).Describe("Nexmark q5: the auctions with the most bids in each sliding window (size=10s slide=5s)")

	// NexmarkQ7 finds the highest bids of each 10 s window.
	NexmarkQ7 = stages.Register("nexmark-q7", func(p *stages.Pipeline, args stages.Args) {
		b := stages.Map(bids(nexmark.Read(p, nexmarkConfig(p, args))), flatBid, stages.Name("flat"))
		best := stages.WindowAggregateAll(b, window.Fixed(10*time.Second), mostOf("highest bid", func(b NexmarkBid) int64 { return b.Price }),
			stages.ID("nexmark-q7-highest"))
		out := stages.FlatMap(best, func(w stages.Windowed[stages.All, most[NexmarkBid]], emit func(NexmarkBid)) {
			for _, b := range w.Value.With {
				emit(b)
			}
		}, stages.Name("highest bids"))
		writeNexmark(out, "nexmark-q7", args)
	}).Describe("Nexmark q7: the bids of the highest price in each 10 s window")

	// NexmarkQ8 monitors new users: persons who opened an auction in the
	// 10 s window they joined in.
	NexmarkQ8 = stages.Register("nexmark-q8", func(p *stages.Pipeline, args stages.Args) {
		events := nexmark.Read(p, nexmarkConfig(p, args))
		j := stages.WindowJoin(stages.KeyBy(persons(events), func(x nexmark.Person) int64 { return x.ID }),
			stages.KeyBy(auctions(events), func(a nexmark.Auction) int64 { return a.Seller }), window.Fixed(10*time.Second),
			stages.ID("nexmark-q8-join"))
		out := stages.Map(j, func(j stages.WindowJoined[int64, nexmark.Person, nexmark.Auction]) NexmarkNewUser {
			return NexmarkNewUser{ID: j.Left.ID, Name: j.Left.Name, Reserve: j.Right.Reserve, WindowStart: int64(j.Window.Start) / 1e6}
		}, stages.Name("new users"))
		writeNexmark(out, "nexmark-q8", args)
	}).Describe("Nexmark q8: (id, name, reserve) of persons who opened an auction in the 10 s window they joined in")
)
