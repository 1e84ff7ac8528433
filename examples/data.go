package examples

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluice-data/sluice/connectors/generator"
	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

// The benchmark workloads (DESIGN.md §6) read three tables, each a
// deterministic function of a seed: orders, a fact table whose user keys
// may be Zipf-skewed; users, its dimension table; and events, a stream of
// user events whose times increase with a bounded disorder. Column names
// are the peers' (../shared/peers): timestamps are TIMESTAMP(MILLIS)
// columns held as unix milliseconds.

// Order is a row of the orders table.
type Order struct {
	UserID  int64   `parquet:"user_id"`
	OrderID int64   `parquet:"order_id"`
	TS      int64   `parquet:"ts,timestamp(millisecond)"`
	Amount  float64 `parquet:"amount"`
}

// OrderAmount is the projection of an order that W2 reads.
type OrderAmount struct {
	UserID int64   `parquet:"user_id"`
	Amount float64 `parquet:"amount"`
}

// User is a row of the users table.
type User struct {
	UserID        int64   `parquet:"user_id"`
	Age           int32   `parquet:"age"`
	Country       string  `parquet:"country"`
	LifetimeValue float64 `parquet:"lifetime_value"`
}

// Event is a row of the events table.
type Event struct {
	UserID int64   `parquet:"user_id"`
	TS     int64   `parquet:"ts,timestamp(millisecond)"`
	Amount float64 `parquet:"amount"`
}

// OrderUser is an order joined with its user: the output of orders-join
// (W1), written under day=YYYY-MM-DD/ directories by the order's time.
type OrderUser struct {
	UserID        int64   `parquet:"user_id"`
	OrderID       int64   `parquet:"order_id"`
	TS            int64   `parquet:"ts,timestamp(millisecond)"`
	Amount        float64 `parquet:"amount"`
	Age           int32   `parquet:"age"`
	Country       string  `parquet:"country"`
	LifetimeValue float64 `parquet:"lifetime_value"`
}

// UserTotal is a user's number of orders and their total amount: the
// output of orders-per-user (W2).
type UserTotal struct {
	UserID    int64   `parquet:"user_id"`
	Cnt       int64   `parquet:"cnt"`
	SumAmount float64 `parquet:"sum_amount"`
}

// UserWindow is a user's number of events and their total amount in one
// minute: the output of events-windows (W3). WindowStart is the window's
// start in unix milliseconds.
type UserWindow struct {
	UserID      int64   `parquet:"user_id"`
	WindowStart int64   `parquet:"window_start"`
	Cnt         int64   `parquet:"cnt"`
	SumAmount   float64 `parquet:"sum_amount"`
}

// Epoch is where generated times start: 2024-01-01T00:00:00Z, in unix
// milliseconds.
const Epoch = 1_704_067_200_000

// Countries are the users' countries, the first the most common.
var Countries = []string{"US", "IN", "BR", "GB", "DE", "FR", "JP", "MX", "CA", "ID",
	"NG", "ES", "IT", "KR", "AU", "PL", "NL", "TR", "SE", "ZA"}

// OrdersSpec describes generated orders and users.
type OrdersSpec struct {
	Seed   uint64
	Orders int64   // rows of orders
	Users  int64   // rows of users; orders' user keys are in [0, Users)
	Zipf   float64 // 0: uniform user keys; else the Zipf exponent (user 0 the most frequent)
	Days   int64   // orders are spread evenly over this many days from Epoch
	Splits int     // splits of each table; 0 for the generator's default (one per 64 Ki rows, at most 64)
}

// DefaultOrders is gen-orders' default: a million orders of 100,000
// uniform users over 30 days.
func DefaultOrders() OrdersSpec {
	return OrdersSpec{Seed: 1, Orders: 1_000_000, Users: 100_000, Days: 30}
}

// ordersArgs reads an OrdersSpec from args, the names prefixed by prefix
// for the counts ("" for gen-orders: orders=N users=N; "n-" for the jobs
// whose orders and users arguments are paths).
func ordersArgs(args stages.Args, prefix string) OrdersSpec {
	d := DefaultOrders()
	s := OrdersSpec{
		Seed:   uint64(args.Int("seed", int(d.Seed))),
		Orders: int64(args.Int(prefix+"orders", int(d.Orders))),
		Users:  int64(args.Int(prefix+"users", int(d.Users))),
		Zipf:   args.Float("zipf", d.Zipf),
		Days:   int64(args.Int("days", int(d.Days))),
		Splits: args.Int("splits", 0),
	}
	if s.Days < 1 {
		args.Fail("days", "must be at least 1")
		s.Days = 1
	}
	return s
}

// OrdersConfig returns the generator configuration of the orders.
func (s OrdersSpec) OrdersConfig() generator.Config {
	return generator.Config{Seed: s.Seed, Rows: s.Orders, Keys: max(1, s.Users), Zipf: s.Zipf, Splits: s.Splits}
}

// UsersConfig returns the generator configuration of the users; its seed
// differs from the orders'.
func (s OrdersSpec) UsersConfig() generator.Config {
	return generator.Config{Seed: s.Seed ^ 0x5851f42d4c957f2d, Rows: s.Users, Keys: int64(len(Countries)), Zipf: 1, Splits: s.Splits}
}

// Order returns the order of generated row r: order r.Index+1 of user
// r.Key, at a time that increases with the index across s.Days, for an
// amount of r.Value cents.
func (s OrdersSpec) Order(r generator.Row) Order {
	// r.Index·span/Orders in 128 bits: the quotient is under span.
	hi, lo := bits.Mul64(uint64(r.Index), uint64(s.Days)*86_400_000)
	at, _ := bits.Div64(hi, lo, uint64(max(1, s.Orders)))
	return Order{UserID: r.Key, OrderID: r.Index + 1, TS: Epoch + int64(at), Amount: float64(r.Value) / 100}
}

// User returns the user of generated row r: user r.Index, aged 18 to 80,
// in a Zipf-distributed country, with a lifetime value in whole cents up
// to $1,111.04.
func (s OrdersSpec) User(r generator.Row) User {
	return User{UserID: r.Index, Age: int32(18 + r.Value%63), Country: Countries[r.Key],
		LifetimeValue: float64(r.Value/63*7) / 100}
}

// ReadOrders adds a source of the generated orders.
func (s OrdersSpec) ReadOrders(p *stages.Pipeline) stages.Stream[Order] {
	return stages.Read(p, generator.Source(s.OrdersConfig(), s.Order), stages.Name("orders"))
}

// ReadUsers adds a source of the generated users.
func (s OrdersSpec) ReadUsers(p *stages.Pipeline) stages.Stream[User] {
	return stages.Read(p, generator.Source(s.UsersConfig(), s.User), stages.Name("users"))
}

// EventsSpec describes generated events.
type EventsSpec struct {
	Seed   uint64
	Events int64
	Users  int64
	Zipf   float64
	// Every is the event time between consecutive events (at least a
	// millisecond); Disorder the most an event's time lags behind its
	// place in that sequence, uniformly.
	Every, Disorder time.Duration
	Splits          int // 0 for the generator's default (one per 64 Ki rows, at most 64)
}

// DefaultEvents is gen-events' default: a million events a millisecond
// apart (about 17 minutes), up to 5 s out of order, from 100,000 users
// with Zipf(1.1) frequencies.
func DefaultEvents() EventsSpec {
	return EventsSpec{Seed: 1, Events: 1_000_000, Users: 100_000, Zipf: 1.1, Every: time.Millisecond, Disorder: 5 * time.Second}
}

// eventsArgs reads an EventsSpec from args, the count named prefix+"events".
func eventsArgs(args stages.Args, prefix string) EventsSpec {
	d := DefaultEvents()
	s := EventsSpec{
		Seed:     uint64(args.Int("seed", int(d.Seed))),
		Events:   int64(args.Int(prefix+"events", int(d.Events))),
		Users:    int64(args.Int(prefix+"users", int(d.Users))),
		Zipf:     args.Float("zipf", d.Zipf),
		Every:    args.Duration("every", d.Every),
		Disorder: args.Duration("disorder", d.Disorder),
		Splits:   args.Int("splits", 0),
	}
	if s.Every < time.Millisecond {
		args.Fail("every", "must be at least 1ms")
		s.Every = time.Millisecond
	}
	if s.Disorder < 0 {
		args.Fail("disorder", "must not be negative")
		s.Disorder = 0
	}
	return s
}

// Config returns the generator configuration of the events.
func (s EventsSpec) Config() generator.Config {
	return generator.Config{Seed: s.Seed, Rows: s.Events, Keys: max(1, s.Users), Zipf: s.Zipf,
		Disorder: s.Disorder.Milliseconds(), Splits: s.Splits}
}

// Event returns the event of generated row r: by user r.Key, for r.Value
// cents, at Epoch + Disorder + r.Index·Every less the row's lag (Row.Time
// is its index less the lag, since Config.Start is 0), so never before
// Epoch.
func (s EventsSpec) Event(r generator.Row) Event {
	lag := r.Index - r.Time
	return Event{UserID: r.Key, TS: Epoch + s.Disorder.Milliseconds() + r.Index*s.Every.Milliseconds() - lag,
		Amount: float64(r.Value) / 100}
}

// ReadEvents adds a source of the generated events.
func (s EventsSpec) ReadEvents(p *stages.Pipeline, opts ...stages.SourceOption) stages.Stream[Event] {
	return stages.Read(p, generator.Source(s.Config(), s.Event), append([]stages.SourceOption{stages.Name("events")}, opts...)...)
}

// outputDir returns the out argument, or a directory named after the job
// under the system's temporary directory: the same on every node, and
// replaced by each run.
func outputDir(args stages.Args, job string) string {
	if out := args.String("out", ""); out != "" {
		return out
	}
	return filepath.Join(os.TempDir(), "sluice-"+job)
}

// outputOptions reads the arguments every job writing Parquet takes:
//
//	mode   overwrite (the default), append, overwrite-partitions (replace only the
//	       partitions written) or error-if-exists
//	force  true to write where the safety rails refuse (the working directory, a
//	       directory of files Sluice did not write); nothing foreign is deleted
func outputOptions(args stages.Args) []parquetio.WriteOption {
	var opts []parquetio.WriteOption
	switch m := args.String("mode", "overwrite"); m {
	case "overwrite":
		opts = append(opts, parquetio.Overwrite)
	case "append":
		opts = append(opts, parquetio.Append)
	case "overwrite-partitions":
		opts = append(opts, parquetio.OverwritePartitions)
	case "error-if-exists":
		opts = append(opts, parquetio.ErrorIfExists)
	default:
		args.Fail("mode", "%q is not overwrite, append, overwrite-partitions or error-if-exists", m)
	}
	if args.Bool("force", false) {
		opts = append(opts, parquetio.Force())
	}
	return opts
}

// writeParquet writes s as snappy Parquet under url, replacing what is
// there, and prints "<what>: wrote N rows to URL" when the job commits.
// The sink stage is named what; stageOpts configure it further.
func writeParquet[T any](s stages.Stream[T], what, url string, opts []parquetio.WriteOption, stageOpts ...stages.SinkOption) {
	sink := parquetio.Sink[T](url, append([]parquetio.WriteOption{parquetio.Overwrite}, opts...)...)
	if err := sink.Err(); err != nil {
		s.Pipeline().Errorf("%v", err)
	}
	stages.Write[T](s, &reportingSink[T]{FileSink: sink, what: what, url: url},
		append([]stages.SinkOption{stages.Name(what)}, stageOpts...)...)
}

// reportingSink is a Parquet sink that counts the rows its instances commit
// and reports them when the job commits. It embeds the *parquetio.FileSink,
// not an interface, so that it keeps every method of it that the runtime
// looks for (stages.JobCommitter, wrapped here; stages.JobFinisher).
type reportingSink[T any] struct {
	*parquetio.FileSink[T]
	what, url string
	rows      atomic.Int64
}

// Open implements stages.Sink.
func (s *reportingSink[T]) Open(ctx context.Context, inst stages.Instance) (stages.Writer[T], error) {
	w, err := s.FileSink.Open(ctx, inst)
	if err != nil {
		return nil, err
	}
	return &countingWriter[T]{Writer: w, total: &s.rows}, nil
}

// Reopen implements stages.Reopener: after a recovery, the writer reopens
// at the checkpoint with the count it had there.
func (s *reportingSink[T]) Reopen(ctx context.Context, inst stages.Instance, state []byte) (stages.Writer[T], error) {
	count, inner, ok := bytes.Cut(state, []byte("\n"))
	n, err := strconv.ParseInt(string(count), 10, 64)
	if !ok || err != nil {
		return nil, fmt.Errorf("%s: reopening at a checkpoint: no count in its state", s.what)
	}
	w, err := s.FileSink.Reopen(ctx, inst, inner)
	if err != nil {
		return nil, err
	}
	return &countingWriter[T]{Writer: w, total: &s.rows, n: n}, nil
}

// CommitJob implements stages.JobCommitter: it writes the output's
// _SUCCESS manifest, then prints where the output is.
func (s *reportingSink[T]) CommitJob(ctx context.Context, inst stages.Instance) error {
	if err := s.FileSink.CommitJob(ctx, inst); err != nil {
		return err
	}
	fmt.Fprintf(output(), "%s: wrote %d rows to %s\n", s.what, s.rows.Load(), s.url)
	return nil
}

// countingWriter counts the records an instance writes, adding them to
// total when it commits and taking them back if the commit is reverted. It
// embeds the stages.Writer interface, which has only the required methods:
// each optional one that the runtime looks for on a writer is forwarded
// here (stages.Reverter), or a failed later commit of the job would leave
// the Parquet output published.
type countingWriter[T any] struct {
	stages.Writer[T]
	n         int64 // written since the last commit
	committed int64 // added to total by commits
	total     *atomic.Int64
}

func (w *countingWriter[T]) Write(xs []T) error {
	if err := w.Writer.Write(xs); err != nil {
		return err
	}
	w.n += int64(len(xs))
	return nil
}

// Checkpoint implements stages.Checkpointer: the count so far, then the
// wrapped writer's state.
func (w *countingWriter[T]) Checkpoint(id uint64) ([]byte, error) {
	c, ok := w.Writer.(stages.Checkpointer)
	if !ok {
		return nil, errors.New("the wrapped writer cannot checkpoint")
	}
	inner, err := c.Checkpoint(id)
	if err != nil {
		return nil, err
	}
	return append(strconv.AppendInt(nil, w.n, 10), append([]byte("\n"), inner...)...), nil
}

// Detach implements stages.Checkpointer.
func (w *countingWriter[T]) Detach() error {
	if c, ok := w.Writer.(stages.Checkpointer); ok {
		return c.Detach()
	}
	return nil
}

// Completed implements stages.Publisher: the wrapped writer publishes
// what it wrote before checkpoint id (Parquet, in a job that does not end).
func (w *countingWriter[T]) Completed(id uint64) error {
	if p, ok := w.Writer.(stages.Publisher); ok {
		return p.Completed(id)
	}
	return nil
}

func (w *countingWriter[T]) Commit() error {
	if err := w.Writer.Commit(); err != nil {
		return err
	}
	w.total.Add(w.n)
	w.committed += w.n
	w.n = 0
	return nil
}

// Revert implements stages.Reverter: it reverts the wrapped writer's
// commit. A wrapped writer that is not a stages.Reverter cannot revert, and
// Revert returns stages.ErrNotReverted, as the runtime does for one.
func (w *countingWriter[T]) Revert() error {
	r, ok := w.Writer.(stages.Reverter)
	if !ok {
		return stages.ErrNotReverted
	}
	if err := r.Revert(); err != nil {
		return err
	}
	w.total.Add(-w.committed)
	w.committed = 0
	return nil
}

// GenOrders writes generated orders and users as snappy Parquet under
// out/orders and out/users (replacing what is there). Its arguments:
//
//	out     the directory to write under (required)
//	orders  the number of orders (1000000)
//	users   the number of users (100000)
//	seed    selects the data set (1)
//	zipf    0 for uniform user keys, or the exponent of a Zipf skew (0)
//	days    orders are spread evenly over this many days from 2024-01-01 (30)
//	splits  generator splits of each table, 0 for one per 64 Ki rows (0)
//
//	sluice run gen-orders --arg out=/data/w --arg orders=10000000 --arg users=1000000
var GenOrders = stages.Register("gen-orders", func(p *stages.Pipeline, args stages.Args) {
	out := args.String("out", "")
	if out == "" {
		args.Fail("out", "gen-orders needs out=DIR")
	}
	s := ordersArgs(args, "")
	writeParquet(s.ReadOrders(p), "orders", filepath.Join(out, "orders"), outputOptions(args))
	writeParquet(s.ReadUsers(p), "users", filepath.Join(out, "users"), outputOptions(args))
}).Describe("writes generated orders and users as Parquet under out=DIR (orders=1000000 users=100000 seed=1 zipf=0 days=30)")

// GenEvents writes generated events as snappy Parquet under out/events
// (replacing what is there), in event-time order: one instance reads and
// writes them, so that a reader's instances, which take every p-th row
// group, each see times that increase up to the disorder. Its arguments:
//
//	out       the directory to write under (required)
//	events    the number of events (1000000)
//	users     the number of users (100000)
//	seed      selects the data set (1)
//	zipf      the exponent of the users' Zipf skew, 0 for uniform (1.1)
//	every     event time between consecutive events (1ms)
//	disorder  the most an event's time lags behind its place (5s)
//	splits    generator splits, 0 for one per 64 Ki rows (0)
//
//	sluice run gen-events --arg out=/data/w --arg events=10000000
var GenEvents = stages.Register("gen-events", func(p *stages.Pipeline, args stages.Args) {
	out := args.String("out", "")
	if out == "" {
		args.Fail("out", "gen-events needs out=DIR")
	}
	s := eventsArgs(args, "")
	writeParquet(s.ReadEvents(p, stages.Parallelism(1)), "events", filepath.Join(out, "events"), outputOptions(args), stages.Parallelism(1))
}).Describe("writes generated events as Parquet under out=DIR, in time order (events=1000000 users=100000 seed=1 zipf=1.1 every=1ms disorder=5s)")

// SetOutput makes the bundled jobs print to w instead of standard output;
// nil restores standard output. Call it before building or running a job,
// not during a run: benchmarks use it to keep their output parsable.
func SetOutput(w io.Writer) {
	if w == nil {
		output = func() io.Writer { return os.Stdout }
		return
	}
	output = func() io.Writer { return w }
}
