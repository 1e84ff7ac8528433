package examples

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// The three benchmark workloads of DESIGN.md §6 (W1, W2, W3). Each reads
// Parquet when given paths (gen-orders and gen-events write them) and
// otherwise generates its input in the process, so that it runs with no
// arguments at all; each writes snappy Parquet under out, replacing what
// is there, and prints where when it commits.

// OrdersJoin (W1) joins every order with its user and writes the seven
// columns of both, partitioned by the order's UTC day (day=YYYY-MM-DD/).
// The users are the build side: at a few million users the planner
// broadcasts them (one hash table per process) and the orders never move.
// Its arguments:
//
//	orders, users  the Parquet files or directories to read (as gen-orders
//	               writes them under out/orders and out/users); without
//	               them the job generates its input, with the arguments
//	               n-orders (1000000), n-users (100000), seed (1), zipf (0),
//	               days (30) and splits (0) of gen-orders
//	out            the output directory, replaced
//	               (default: $TMPDIR/sluice-orders-join)
//
//	sluice run orders-join --arg orders=/data/w/orders --arg users=/data/w/users --arg out=/data/w1
var OrdersJoin = stages.Register("orders-join", func(p *stages.Pipeline, args stages.Args) {
	orders, users := readOrdersUsers(p, args)
	rows := stages.JoinFunc(stages.KeyBy(orders, Order.userID), stages.KeyBy(users, User.userID), stages.Inner,
		func(_ int64, o Order, u User, _, _ bool) OrderUser {
			return OrderUser{UserID: o.UserID, OrderID: o.OrderID, TS: o.TS, Amount: o.Amount,
				Age: u.Age, Country: u.Country, LifetimeValue: u.LifetimeValue}
		}, stages.Name("join users"))
	days := &dayNames{}
	writeParquet(rows, "orders-join", outputDir(args, "orders-join"),
		append(outputOptions(args), parquetio.PartitionByFunc("day", func(r OrderUser) string { return days.of(r.TS) })))
}).Describe("W1: joins orders with users (orders=PATH users=PATH, or generated) and writes Parquet by day= under out=DIR")

// OrdersPerUser (W2) counts each user's orders and sums their amounts. Its
// arguments:
//
//	orders  the Parquet files or directory to read; without it the job
//	        generates orders with the arguments n-orders (1000000),
//	        n-users (100000), seed (1), zipf (0), days (30) and splits (0)
//	out     the output directory, replaced
//	        (default: $TMPDIR/sluice-orders-per-user)
//
//	sluice run orders-per-user --arg orders=/data/w/orders --arg out=/data/w2
var OrdersPerUser = stages.Register("orders-per-user", func(p *stages.Pipeline, args stages.Args) {
	// Only user_id and amount are read: the Parquet reader decodes the
	// struct's columns and no others.
	var orders stages.Stream[OrderAmount]
	if path := args.String("orders", ""); path != "" {
		orders = parquetio.Read[OrderAmount](p, path, parquetio.StageOptions(stages.Name("orders")))
	} else {
		orders = stages.Map(ordersArgs(args, "n-").ReadOrders(p), func(o Order) OrderAmount {
			return OrderAmount{UserID: o.UserID, Amount: o.Amount}
		}, stages.Name("user-amount"))
	}
	totals := stages.Aggregate(stages.KeyBy(orders, func(o OrderAmount) int64 { return o.UserID }), window.Global(),
		stages.Combine("count+sum", func(o OrderAmount) Tally { return Tally{Cnt: 1, Sum: o.Amount} }, Tally.Merge, Tally.self),
		stages.ID("orders-per-user-v1"))
	rows := stages.Map(totals, func(kv stages.KV[int64, Tally]) UserTotal {
		return UserTotal{UserID: kv.Key, Cnt: kv.Value.Cnt, SumAmount: kv.Value.Sum}
	}, stages.Name("user-total"))
	writeParquet(rows, "orders-per-user", outputDir(args, "orders-per-user"), outputOptions(args))
}).Describe("W2: counts and sums each user's orders (orders=PATH, or generated) into Parquet under out=DIR")

// EventsWindows (W3) counts each user's events and sums their amounts per
// minute of event time: fixed one-minute windows that fire once, when the
// watermark (the greatest time seen less 5 s) passes their end. Events
// more than 5 s out of order may be late: they are dropped and counted in
// the run's summary. Its arguments:
//
//	events  the Parquet files or directory to read, in time order (as
//	        gen-events writes them); without it the job generates events
//	        with the arguments n-events (1000000), n-users (100000),
//	        seed (1), zipf (1.1), every (1ms), disorder (5s) and
//	        splits (0) of gen-events
//	out     the output directory, replaced
//	        (default: $TMPDIR/sluice-events-windows)
//
//	sluice run events-windows --arg events=/data/w/events --arg out=/data/w3
var EventsWindows = stages.Register("events-windows", func(p *stages.Pipeline, args stages.Args) {
	var events stages.Stream[Event]
	if path := args.String("events", ""); path != "" {
		// Splits in order of their least ts: files written by several
		// instances each span the whole time range.
		events = parquetio.Read[Event](p, path, parquetio.OrderBy("ts"), parquetio.StageOptions(stages.Name("events")))
	} else {
		events = eventsArgs(args, "n-").ReadEvents(p)
	}
	writeParquet(UserMinutes(events), "events-windows", outputDir(args, "events-windows"), outputOptions(args))
}).Describe("W3: counts and sums each user's events per minute (events=PATH, or generated) into Parquet under out=DIR")

// MaxDelay is how far out of order events-windows takes events to be.
const MaxDelay = 5 * time.Second

// UserMinutes is the heart of W3: events by user in one-minute event-time
// windows, a watermark MaxDelay behind the greatest time seen.
func UserMinutes(events stages.Stream[Event]) stages.Stream[UserWindow] {
	timed := stages.EventTime(events, func(e Event) time.Time { return time.UnixMilli(e.TS) }, stages.MaxDelay(MaxDelay))
	panes := stages.WindowAggregate(stages.KeyBy(timed, Event.userID), window.Fixed(time.Minute),
		stages.Combine("count+sum", func(e Event) Tally { return Tally{Cnt: 1, Sum: e.Amount} }, Tally.Merge, Tally.self),
		stages.ID("events-windows-v1"))
	return stages.Map(panes, func(w stages.Windowed[int64, Tally]) UserWindow {
		return UserWindow{UserID: w.Key, WindowStart: int64(w.Window.Start) / 1e6, Cnt: w.Value.Cnt, SumAmount: w.Value.Sum}
	}, stages.Name("user-window"))
}

// readOrdersUsers reads the orders and users tables from the paths in the
// arguments orders and users, or generates them when both are absent.
func readOrdersUsers(p *stages.Pipeline, args stages.Args) (stages.Stream[Order], stages.Stream[User]) {
	ordersPath, usersPath := args.String("orders", ""), args.String("users", "")
	if ordersPath == "" && usersPath == "" {
		s := ordersArgs(args, "n-")
		return s.ReadOrders(p), s.ReadUsers(p)
	}
	if ordersPath == "" || usersPath == "" {
		args.Fail("users", "give both orders=PATH and users=PATH, or neither to generate them")
	}
	return parquetio.Read[Order](p, ordersPath, parquetio.StageOptions(stages.Name("orders"))),
		parquetio.Read[User](p, usersPath, parquetio.StageOptions(stages.Name("users")))
}

func (o Order) userID() int64 { return o.UserID }
func (u User) userID() int64  { return u.UserID }
func (e Event) userID() int64 { return e.UserID }

// Tally is a count and a sum: the accumulator of W2 and W3.
type Tally struct {
	Cnt int64
	Sum float64
}

// Merge adds two tallies.
func (t Tally) Merge(u Tally) Tally { return Tally{Cnt: t.Cnt + u.Cnt, Sum: t.Sum + u.Sum} }

func (t Tally) self() Tally { return t }

// dayNames names UTC days (YYYY-MM-DD) of times in unix milliseconds,
// formatting each day once. It is safe for concurrent use: readers look
// the day up in an immutable map, which a miss replaces by a larger copy.
type dayNames struct {
	mu sync.Mutex
	m  atomic.Pointer[map[int64]string]
}

func (d *dayNames) of(ms int64) string {
	day := ms / 86_400_000
	if ms%86_400_000 < 0 {
		day--
	}
	if m := d.m.Load(); m != nil {
		if name, ok := (*m)[day]; ok {
			return name
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.m.Load()
	m := make(map[int64]string, 1)
	if old != nil {
		maps.Copy(m, *old)
	}
	name, ok := m[day]
	if !ok {
		name = time.UnixMilli(day * 86_400_000).UTC().Format(time.DateOnly)
		m[day] = name
		d.m.Store(&m)
	}
	return name
}
