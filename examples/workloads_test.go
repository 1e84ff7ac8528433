package examples

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/generator"
	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

// The workloads' outputs are checked against computations with plain Go
// maps over the same generated rows, in integer cents as DESIGN.md §8 asks
// (float sums depend on the order of addition).

// runJob builds and runs job and returns what it printed and its result.
func runJob(t *testing.T, job *stages.Job, args map[string]string, parallelism int) (string, *sluice.Result) {
	t.Helper()
	buf := capture(t)
	p, err := job.Build(args)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: parallelism})
	if err != nil {
		t.Fatal(err)
	}
	return buf.String(), res
}

// parquetFile is the rows of one data file and its directory below the
// output's root ("" at the root).
type parquetFile[T any] struct {
	dir  string
	rows []T
}

// walkData calls f with every file under root and its directory below
// root ("" at the root), skipping hidden names as readers do (_SUCCESS,
// staging); a missing root has no files.
func walkData(root string, f func(path, dir string) error) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == root {
			return filepath.SkipAll
		}
		if err != nil {
			return err
		}
		if name := d.Name(); path != root && (strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".")) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		if rel == "." {
			rel = ""
		}
		return f(path, rel)
	})
}

// readParquet reads every data file under root with parquet-go.
func readParquet[T any](t *testing.T, root string) []parquetFile[T] {
	t.Helper()
	var files []parquetFile[T]
	err := walkData(root, func(path, dir string) error {
		if !strings.HasSuffix(path, ".parquet") {
			return nil
		}
		rows, err := parquet.ReadFile[T](path)
		if err != nil {
			return err
		}
		files = append(files, parquetFile[T]{dir: dir, rows: rows})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no Parquet files under %s", root)
	}
	return files
}

func allRows[T any](files []parquetFile[T]) []T {
	var out []T
	for _, f := range files {
		out = append(out, f.rows...)
	}
	return out
}

func cents(x float64) int64 { return int64(math.Round(x * 100)) }

// generated returns rows [0, cfg.Rows) of cfg mapped by f.
func generated[T any](t *testing.T, cfg generator.Config, f func(generator.Row) T) []T {
	t.Helper()
	g, err := generator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]T, cfg.Rows)
	for i := range out {
		out[i] = f(g.Row(int64(i)))
	}
	return out
}

// small is the orders data set of the tests: 20k orders of 2k users,
// Zipf-skewed, over 10 days.
var small = OrdersSpec{Seed: 7, Orders: 20_000, Users: 2_000, Zipf: 1.1, Days: 10, Splits: 3}

func (s OrdersSpec) args(prefix string) map[string]string {
	return map[string]string{
		"seed": strconv.FormatUint(s.Seed, 10), prefix + "orders": strconv.FormatInt(s.Orders, 10),
		prefix + "users": strconv.FormatInt(s.Users, 10), "zipf": strconv.FormatFloat(s.Zipf, 'g', -1, 64),
		"days": strconv.FormatInt(s.Days, 10), "splits": strconv.Itoa(s.Splits),
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestGenOrdersWritesTheGeneratedRows(t *testing.T) {
	dir := t.TempDir()
	printed, _ := runJob(t, GenOrders, with(small.args(""), "out", dir), 2)
	want := "orders: wrote 20000 rows to " + filepath.Join(dir, "orders") + "\n" +
		"users: wrote 2000 rows to " + filepath.Join(dir, "users") + "\n"
	if got := sortLines(printed); got != want {
		t.Errorf("printed\n%s\nwant\n%s", got, want)
	}
	orders := allRows(readParquet[Order](t, filepath.Join(dir, "orders")))
	if err := sameRows(orders, generated(t, small.OrdersConfig(), small.Order), func(o Order) int64 { return o.OrderID }); err != "" {
		t.Errorf("orders: %s", err)
	}
	users := allRows(readParquet[User](t, filepath.Join(dir, "users")))
	if err := sameRows(users, generated(t, small.UsersConfig(), small.User), func(u User) int64 { return u.UserID }); err != "" {
		t.Errorf("users: %s", err)
	}
}

// sameRows compares got and want as sets of rows with unique ids.
func sameRows[T any](got, want []T, id func(T) int64) string {
	if len(got) != len(want) {
		return "got " + strconv.Itoa(len(got)) + " rows, want " + strconv.Itoa(len(want))
	}
	byID := map[int64]T{}
	for _, w := range want {
		byID[id(w)] = w
	}
	for _, g := range got {
		w, ok := byID[id(g)]
		if !ok {
			return "unexpected or repeated row " + strconv.FormatInt(id(g), 10)
		}
		if !reflect.DeepEqual(g, w) {
			return "row " + strconv.FormatInt(id(g), 10) + " differs"
		}
		delete(byID, id(g))
	}
	return ""
}

func sortLines(s string) string {
	lines := strings.SplitAfter(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "")
}

// checkJoin checks a W1 output directory against the join of the
// generated orders and users.
func checkJoin(t *testing.T, s OrdersSpec, out string) {
	t.Helper()
	users := map[int64]User{}
	for _, u := range generated(t, s.UsersConfig(), s.User) {
		users[u.UserID] = u
	}
	var want []OrderUser
	for _, o := range generated(t, s.OrdersConfig(), s.Order) {
		if u, ok := users[o.UserID]; ok {
			want = append(want, OrderUser{UserID: o.UserID, OrderID: o.OrderID, TS: o.TS, Amount: o.Amount,
				Age: u.Age, Country: u.Country, LifetimeValue: u.LifetimeValue})
		}
	}
	files := readParquet[OrderUser](t, out)
	days := map[string]bool{}
	for _, f := range files {
		days[f.dir] = true
		for _, r := range f.rows {
			if day := "day=" + time.UnixMilli(r.TS).UTC().Format(time.DateOnly); f.dir != day {
				t.Fatalf("order %d at %v is under %s, not %s", r.OrderID, time.UnixMilli(r.TS).UTC(), f.dir, day)
			}
		}
	}
	if len(days) != int(s.Days) {
		t.Errorf("%d day= directories, want %d: %v", len(days), s.Days, days)
	}
	if err := sameRows(allRows(files), want, func(r OrderUser) int64 { return r.OrderID }); err != "" {
		t.Errorf("joined rows: %s", err)
	}
}

// checkTotals checks a W2 output directory against per-user totals of the
// generated orders.
func checkTotals(t *testing.T, s OrdersSpec, out string) {
	t.Helper()
	type total struct{ cnt, cents int64 }
	want := map[int64]total{}
	for _, o := range generated(t, s.OrdersConfig(), s.Order) {
		w := want[o.UserID]
		want[o.UserID] = total{w.cnt + 1, w.cents + cents(o.Amount)}
	}
	got := map[int64]total{}
	for _, r := range allRows(readParquet[UserTotal](t, out)) {
		if _, dup := got[r.UserID]; dup {
			t.Fatalf("user %d written twice", r.UserID)
		}
		got[r.UserID] = total{r.Cnt, cents(r.SumAmount)}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %d users' totals, want %d; they differ", len(got), len(want))
	}
}

func TestOrdersWorkloadsOnParquet(t *testing.T) {
	dir := t.TempDir()
	runJob(t, GenOrders, with(small.args(""), "out", dir), 2)
	orders, users := filepath.Join(dir, "orders"), filepath.Join(dir, "users")

	w1 := filepath.Join(dir, "w1")
	printed, res := runJob(t, OrdersJoin, map[string]string{"orders": orders, "users": users, "out": w1}, 2)
	if want := "orders-join: wrote 20000 rows to " + w1 + "\n"; printed != want {
		t.Errorf("printed %q, want %q", printed, want)
	}
	if plan := res.Plan.String(); !strings.Contains(plan, "broadcast join") {
		t.Errorf("the plan does not broadcast the users:\n%s", plan)
	}
	checkJoin(t, small, w1)

	w2 := filepath.Join(dir, "w2")
	printed, _ = runJob(t, OrdersPerUser, map[string]string{"orders": orders, "out": w2}, 2)
	if !strings.HasPrefix(printed, "orders-per-user: wrote ") {
		t.Errorf("printed %q", printed)
	}
	checkTotals(t, small, w2)

	// A second run replaces the output.
	runJob(t, OrdersPerUser, map[string]string{"orders": orders, "out": w2}, 3)
	checkTotals(t, small, w2)
}

func TestOrdersWorkloadsGenerated(t *testing.T) {
	dir := t.TempDir()
	w1 := filepath.Join(dir, "w1")
	_, res := runJob(t, OrdersJoin, with(small.args("n-"), "out", w1), 3)
	if plan := res.Plan.String(); !strings.Contains(plan, "broadcast join") {
		t.Errorf("the plan does not broadcast the users:\n%s", plan)
	}
	checkJoin(t, small, w1)
	w2 := filepath.Join(dir, "w2")
	runJob(t, OrdersPerUser, with(small.args("n-"), "out", w2), 3)
	checkTotals(t, small, w2)
}

// The benchmark's sizes (10M orders, 1M users) broadcast the users by
// default.
func TestOrdersJoinBroadcastsAMillionUsers(t *testing.T) {
	p, err := OrdersJoin.Build(map[string]string{"n-orders": "10000000", "n-users": "1000000"})
	if err != nil {
		t.Fatal(err)
	}
	phys, err := sluice.Plan(context.Background(), p, sluice.Options{Parallelism: 2})
	if err != nil {
		t.Fatal(err)
	}
	if plan := phys.String(); !strings.Contains(plan, "broadcast join: build side under") || !strings.Contains(plan, "1000000 rows") {
		t.Errorf("plan:\n%s", plan)
	}
}

func TestWorkloadArguments(t *testing.T) {
	for _, tc := range []struct {
		job  *stages.Job
		args map[string]string
		want string
	}{
		{OrdersJoin, map[string]string{"orders": "/x"}, "give both"},
		{OrdersJoin, map[string]string{"orders": "/x", "users": "/y", "n-orders": "5"}, "no argument n-orders"},
		{GenOrders, map[string]string{}, "needs out=DIR"},
		{GenOrders, map[string]string{"out": "/x", "days": "0"}, "days"},
		{GenEvents, map[string]string{"out": "/x", "every": "10us"}, "every"},
		{EventsWindows, map[string]string{"n-events": "many"}, "integer"},
	} {
		_, err := tc.job.Build(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: got %v, want an error with %q", tc.job.Name, tc.args, err, tc.want)
		}
	}
}

// smallEvents is the events data set of the tests: 20k events 10 ms apart
// (about 3 minutes) from 2k Zipf-skewed users.
var smallEvents = EventsSpec{Seed: 5, Events: 20_000, Users: 2_000, Zipf: 1.1, Every: 10 * time.Millisecond,
	Disorder: 5 * time.Second, Splits: 3}

func (s EventsSpec) args(prefix string) map[string]string {
	return map[string]string{
		"seed": strconv.FormatUint(s.Seed, 10), prefix + "events": strconv.FormatInt(s.Events, 10),
		prefix + "users": strconv.FormatInt(s.Users, 10), "zipf": strconv.FormatFloat(s.Zipf, 'g', -1, 64),
		"every": s.Every.String(), "disorder": s.Disorder.String(), "splits": strconv.Itoa(s.Splits),
	}
}

type userMinute struct{ user, start int64 }
type tally struct{ cnt, cents int64 }

// minuteTotals computes W3 in batch: every event in the minute of its
// time.
func minuteTotals(events []Event) map[userMinute]tally {
	out := map[userMinute]tally{}
	for _, e := range events {
		k := userMinute{e.UserID, e.TS - e.TS%60_000}
		w := out[k]
		out[k] = tally{w.cnt + 1, w.cents + cents(e.Amount)}
	}
	return out
}

// readMinutes reads a W3 output directory.
func readMinutes(t *testing.T, out string) map[userMinute]tally {
	t.Helper()
	got := map[userMinute]tally{}
	for _, r := range allRows(readParquet[UserWindow](t, out)) {
		k := userMinute{r.UserID, r.WindowStart}
		if _, dup := got[k]; dup {
			t.Fatalf("user %d window %d written twice", r.UserID, r.WindowStart)
		}
		got[k] = tally{r.Cnt, cents(r.SumAmount)}
	}
	return got
}

// dropped returns the records the run's stages dropped as late or for
// closed windows.
func dropped(res *sluice.Result) (late, closed int64) {
	for _, s := range res.Stages {
		late += s.DroppedLate
		closed += s.DroppedClosed
	}
	return late, closed
}

func TestEventsWindows(t *testing.T) {
	events := generated(t, smallEvents.Config(), smallEvents.Event)
	want := minuteTotals(events)
	if len(want) < 1000 {
		t.Fatalf("only %d user-minutes: the data set is too small to test", len(want))
	}

	dir := t.TempDir()
	printed, _ := runJob(t, GenEvents, with(smallEvents.args(""), "out", dir), 2)
	if want := "events: wrote 20000 rows to " + filepath.Join(dir, "events") + "\n"; printed != want {
		t.Errorf("printed %q, want %q", printed, want)
	}
	files := readParquet[Event](t, filepath.Join(dir, "events"))
	if got := allRows(files); !reflect.DeepEqual(got, events) {
		t.Errorf("the events files do not hold the generated events in order")
	}

	for _, tc := range []struct {
		name string
		args map[string]string
		par  int
	}{
		{"parquet", map[string]string{"events": filepath.Join(dir, "events")}, 2},
		{"generated", smallEvents.args("n-"), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "w3")
			_, res := runJob(t, EventsWindows, with(tc.args, "out", out), tc.par)
			// The disorder is within MaxDelay: nothing is late.
			if late, closed := dropped(res); late != 0 || closed != 0 {
				t.Errorf("%d records dropped late and %d for closed windows, want none", late, closed)
			}
			if got := readMinutes(t, out); !reflect.DeepEqual(got, want) {
				t.Errorf("got %d user-minutes, want %d; they differ", len(got), len(want))
			}
		})
	}
}

// With more disorder than MaxDelay some events are late: every event is
// either counted in its window or dropped, and no window counts more than
// its events.
func TestEventsWindowsLate(t *testing.T) {
	s := smallEvents
	s.Disorder = 30 * time.Second
	out := filepath.Join(t.TempDir(), "w3")
	_, res := runJob(t, EventsWindows, with(s.args("n-"), "out", out), 2)
	late, closed := dropped(res)
	t.Logf("%d late", late)
	if late == 0 || closed != 0 {
		t.Errorf("%d late and %d closed; want some late, none closed", late, closed)
	}
	want := minuteTotals(generated(t, s.Config(), s.Event))
	var counted int64
	for k, g := range readMinutes(t, out) {
		if w, ok := want[k]; !ok || g.cnt > w.cnt {
			t.Errorf("user %d window %d: counted %d of %d events", k.user, k.start, g.cnt, w.cnt)
		}
		counted += g.cnt
	}
	if counted+late != s.Events {
		t.Errorf("%d counted + %d late = %d, want %d events", counted, late, counted+late, s.Events)
	}
}

// TestEventsWindowsManyFiles: events written by several instances lie in
// files that each span the whole time range. Read in file order, a source
// instance would step back in time at every file and records would fall
// behind the watermark; events-windows orders the splits by their least
// ts (parquetio.OrderBy), so nothing is late.
func TestEventsWindowsManyFiles(t *testing.T) {
	s := smallEvents
	s.Splits = 12
	dir := filepath.Join(t.TempDir(), "events")
	p := stages.NewPipeline("write-events")
	parquetio.Write(s.ReadEvents(p, stages.Parallelism(3)), dir, parquetio.RowGroupRows(1000))
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 3}); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.parquet")); len(files) < 2 {
		t.Fatalf("%d files written; the test needs several", len(files))
	}
	out := filepath.Join(t.TempDir(), "w3")
	_, res := runJob(t, EventsWindows, map[string]string{"events": dir, "out": out}, 2)
	if late, closed := dropped(res); late != 0 || closed != 0 {
		t.Errorf("%d records dropped late and %d for closed windows, want none", late, closed)
	}
	if got, want := readMinutes(t, out), minuteTotals(generated(t, s.Config(), s.Event)); !reflect.DeepEqual(got, want) {
		t.Errorf("got %d user-minutes, want %d; they differ", len(got), len(want))
	}
}

// TestEventsWindowsFireWhileReading: with the splits of many files ordered
// by time, the watermark moves while the input is read, so windows fire
// before the end of input instead of all at once at the end.
func TestEventsWindowsFireWhileReading(t *testing.T) {
	s := smallEvents
	s.Splits = 12
	dir := filepath.Join(t.TempDir(), "events")
	p := stages.NewPipeline("write-events")
	parquetio.Write(s.ReadEvents(p, stages.Parallelism(3)), dir, parquetio.RowGroupRows(1000))
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 3}); err != nil {
		t.Fatal(err)
	}
	var read, early atomic.Int64
	p = stages.NewPipeline("w3-progress")
	events := parquetio.Read[Event](p, dir, parquetio.OrderBy("ts"))
	counted := stages.Map(events, func(e Event) Event { read.Add(1); return e })
	stages.ForEach(UserMinutes(counted), func(UserWindow) error {
		if read.Load() < s.Events {
			early.Add(1)
		}
		return nil
	})
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2}); err != nil {
		t.Fatal(err)
	}
	if early.Load() == 0 {
		t.Errorf("no window fired before the input was read: the watermark did not move")
	}
	t.Logf("%d panes fired before the end of input", early.Load())
}
