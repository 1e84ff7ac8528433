package nats_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/connectors/nats"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func noRestarts() *actors.Config {
	cfg := actors.DefaultConfig()
	cfg.Restart.MaxRestarts = 0
	return &cfg
}

// writeOrders runs a job that publishes xs through the sink, two instances.
func writeOrders(t *testing.T, url string, xs []order, opts ...nats.SinkOption) {
	t.Helper()
	p := stages.NewPipeline("publish-orders")
	opts = append([]nats.SinkOption{nats.SubjectOf(order.subject)}, opts...)
	stages.Write(stages.FromSlice(p, xs), nats.Sink[order](url, "", opts...), stages.Parallelism(2))
	if _, err := sluice.Run(ctxT(t), p, sluice.Options{Parallelism: 2}); err != nil {
		t.Fatal(err)
	}
}

// readOrders runs a job that reads the stream back, bounded.
func readOrders(t *testing.T, url string, opts ...nats.SourceOption) []order {
	t.Helper()
	p := stages.NewPipeline("read-orders")
	opts = append([]nats.SourceOption{nats.UntilEmpty()}, opts...)
	out := stages.Collect(stages.Read(p, nats.Source[order](url, "ORDERS", opts...)))
	if _, err := sluice.Run(ctxT(t), p, sluice.Options{Parallelism: 2}); err != nil {
		t.Fatal(err)
	}
	return byID(out.Values())
}

func TestRoundTrip(t *testing.T) {
	url := startServer(t)
	js := client(t, url)
	str := createStream(t, js, "ORDERS", "orders.>")
	n := int64(20000)
	if testenv.Race() {
		n = 5000
	}
	want := orders(n)
	writeOrders(t, url, want, nats.MsgID(order.msgID))
	if got := streamMsgs(t, str); got != uint64(n) {
		t.Fatalf("stream holds %d messages, want %d", got, n)
	}

	t.Run("one split", func(t *testing.T) {
		if got := readOrders(t, url); !reflect.DeepEqual(got, want) {
			t.Fatalf("read %d orders, want %d (first differences: %s)", len(got), len(want), firstDiff(got, want))
		}
	})
	t.Run("a split per region", func(t *testing.T) {
		parts := nats.Partitions("orders.eu", "orders.us", "orders.ap")
		splits, err := nats.Source[order](url, "ORDERS", parts, nats.UntilEmpty()).Splits(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for i, s := range splits {
			if s.Records <= 0 {
				t.Errorf("split %d (%s): Records %d, want a positive count", i, s.Desc, s.Records)
			}
			total += s.Records
		}
		if total != n {
			t.Errorf("splits count %d records, want %d", total, n)
		}
		if got := readOrders(t, url, parts); !reflect.DeepEqual(got, want) {
			t.Fatalf("read %d orders, want %d (first differences: %s)", len(got), len(want), firstDiff(got, want))
		}
	})
	t.Run("subjects and decoder", func(t *testing.T) {
		type seen struct {
			order
			Subject string
			Seq     uint64
		}
		decode := nats.Decode(func(m nats.Message) (seen, error) {
			var s seen
			err := json.Unmarshal(m.Data, &s.order)
			s.Subject, s.Seq = m.Subject, m.Sequence
			return s, err
		})
		r := open(t, nats.Source[seen](url, "ORDERS", nats.Subjects("orders.eu"), nats.UntilEmpty(), decode), 0)
		defer r.Close()
		got, _, err := drain(t, r)
		if err != nil {
			t.Fatal(err)
		}
		var eu int
		for _, o := range want {
			if o.Region == "eu" {
				eu++
			}
		}
		if len(got) != eu {
			t.Fatalf("read %d eu orders, want %d", len(got), eu)
		}
		for i, s := range got {
			if s.Subject != "orders.eu" || s.Region != "eu" || i > 0 && s.Seq <= got[i-1].Seq {
				t.Fatalf("record %d: %+v (after sequence %d)", i, s, got[max(i-1, 0)].Seq)
			}
		}
	})
}

func firstDiff(got, want []order) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("index %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	return "one is a prefix of the other"
}

func TestReplayWithMsgIDsDoesNotDuplicate(t *testing.T) {
	url := startServer(t)
	js := client(t, url)
	str := createStream(t, js, "ORDERS", "orders.>")
	want := orders(3000)
	writeOrders(t, url, want, nats.MsgID(order.msgID))
	writeOrders(t, url, want, nats.MsgID(order.msgID)) // a replay
	if got := streamMsgs(t, str); got != uint64(len(want)) {
		t.Fatalf("after a replay with message IDs the stream holds %d messages, want %d", got, len(want))
	}
	if got := readOrders(t, url); !reflect.DeepEqual(got, want) {
		t.Fatalf("read %d orders, want %d (%s)", len(got), len(want), firstDiff(got, want))
	}
	// The control: without IDs the replay is stored twice.
	writeOrders(t, url, want)
	if got := streamMsgs(t, str); got != uint64(2*len(want)) {
		t.Fatalf("after a replay without message IDs the stream holds %d messages, want %d", got, 2*len(want))
	}
}

func TestBadMessageNamesSequence(t *testing.T) {
	url := startServer(t)
	js := client(t, url)
	createStream(t, js, "ORDERS", "orders.>")
	xs := orders(5)
	publish(t, js, xs[:3])
	if _, err := js.Publish(ctxT(t), "orders.eu", []byte(`{"id": "not a number"`)); err != nil {
		t.Fatal(err)
	}
	publish(t, js, xs[3:])

	r := open(t, nats.Source[order](url, "ORDERS", nats.UntilEmpty()), 0)
	defer r.Close()
	got, _, err := drain(t, r)
	var merr *nats.MessageError
	if !errors.As(err, &merr) || !errors.Is(err, nats.ErrBadMessage) {
		t.Fatalf("got %v, want a *MessageError", err)
	}
	if merr.Sequence != 4 || merr.Subject != "orders.eu" || merr.Stream != "ORDERS" {
		t.Errorf("error names %s/%s sequence %d, want ORDERS/orders.eu sequence 4", merr.Stream, merr.Subject, merr.Sequence)
	}
	if msg := err.Error(); !strings.Contains(msg, "sequence 4") || !strings.Contains(msg, "orders.eu") {
		t.Errorf("error %q does not name the sequence and subject", msg)
	}
	if !reflect.DeepEqual(got, xs[:3]) {
		t.Errorf("records before the bad message: %+v, want %+v", got, xs[:3])
	}

	// Through the runtime the job fails with the same message.
	p := stages.NewPipeline("read-bad")
	stages.Collect(stages.Read(p, nats.Source[order](url, "ORDERS", nats.UntilEmpty())))
	_, err = sluice.Run(ctxT(t), p, sluice.Options{Runtime: noRestarts(), Parallelism: 1})
	if err == nil || !strings.Contains(err.Error(), "stream ORDERS sequence 4 (subject orders.eu)") {
		t.Fatalf("job error %v does not name the message", err)
	}
}

func TestUnboundedReturnsNoData(t *testing.T) {
	url := startServer(t)
	js := client(t, url)
	createStream(t, js, "ORDERS", "orders.>")
	before := len(testenv.Goroutines())
	src := nats.Source[order](url, "ORDERS", nats.FetchWait(20*time.Millisecond))
	splits, err := src.Splits(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) != 1 || splits[0].Records != -1 {
		t.Fatalf("splits %+v, want one of -1 records", splits)
	}
	r := open(t, src, 0)
	buf := make([]order, 16)
	start := time.Now()
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, stages.ErrNoData) {
		t.Fatalf("Read of an empty stream: %d, %v; want 0, ErrNoData", n, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Read of an empty stream took %v", d)
	}
	xs := orders(40)
	publish(t, js, xs)
	if got := readUntil(t, r, len(xs)); !reflect.DeepEqual(got, xs) {
		t.Fatalf("read %+v, want %+v", got, xs)
	}
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, stages.ErrNoData) {
		t.Fatalf("Read after the last message: %d, %v; want 0, ErrNoData", n, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	testenv.CheckLeaks(t, before)
}

func TestEphemeralConsumerRecreated(t *testing.T) {
	url := startServer(t)
	js := client(t, url)
	str := createStream(t, js, "ORDERS", "orders.>")
	xs := orders(100)
	publish(t, js, xs)
	r := open(t, nats.Source[order](url, "ORDERS", nats.UntilEmpty()), 0)
	defer r.Close()
	first := readUntil(t, r, 30)
	// Delete the reader's consumer under it, as a server restart or an
	// inactivity timeout would.
	ctx := ctxT(t)
	names := str.ConsumerNames(ctx)
	var deleted int
	for name := range names.Name() {
		if err := str.DeleteConsumer(ctx, name); err != nil {
			t.Fatal(err)
		}
		deleted++
	}
	if deleted != 1 {
		t.Fatalf("deleted %d consumers, want the reader's one", deleted)
	}
	rest, _, err := drain(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(first, rest...); !reflect.DeepEqual(got, xs) {
		t.Fatalf("read %d records across the new consumer, want %d in order (%s)", len(got), len(xs), firstDiff(got, xs))
	}
}

func TestDurableResumes(t *testing.T) {
	url := startServer(t)
	js := client(t, url)
	createStream(t, js, "ORDERS", "orders.>")
	xs := orders(100)
	publish(t, js, xs)

	r := open(t, nats.Source[order](url, "ORDERS", nats.Durable("reader"), nats.StopAfter(40)), 0)
	got, _, err := drain(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, xs[:40]) {
		t.Fatalf("first reader read %d records, want the first 40", len(got))
	}
	src := nats.Source[order](url, "ORDERS", nats.Durable("reader"), nats.UntilEmpty())
	splits, err := src.Splits(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if splits[0].Records != 60 {
		t.Errorf("the durable consumer's split estimates %d records, want 60", splits[0].Records)
	}
	r = open(t, src, 0)
	got, _, err = drain(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, xs[40:]) {
		t.Fatalf("second reader read %d records, want the last 60 (%s)", len(got), firstDiff(got, xs[40:]))
	}
	r = open(t, src, 0)
	defer r.Close()
	if got, _, err = drain(t, r); err != nil || len(got) != 0 {
		t.Fatalf("third reader: %d records, %v; want none", len(got), err)
	}
}

func TestDurableRedeliversUnacknowledged(t *testing.T) {
	url := startServer(t)
	js := client(t, url)
	createStream(t, js, "ORDERS", "orders.>")
	xs := orders(50)
	publish(t, js, xs)
	src := nats.Source[order](url, "ORDERS", nats.Durable("reader"), nats.AckWait(200*time.Millisecond),
		nats.FetchWait(20*time.Millisecond))
	r := open(t, src, 0)
	first := readUntil(t, r, 10)
	// The job fails: the last batch was handed over but never acknowledged.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = open(t, src, 0)
	defer r.Close()
	// The rest comes at once, the unacknowledged batch after AckWait.
	got := readUntil(t, r, len(xs))
	seen := map[int64]int{}
	for _, o := range got {
		seen[o.ID]++
	}
	for _, o := range xs {
		if seen[o.ID] != 1 {
			t.Errorf("order %d read %d times by the second reader, want once", o.ID, seen[o.ID])
		}
	}
	if len(first) != 10 {
		t.Fatalf("first reader read %d", len(first))
	}
}

func TestStartSeqAndStopAfter(t *testing.T) {
	url := startServer(t)
	js := client(t, url)
	createStream(t, js, "ORDERS", "orders.>")
	xs := orders(100)
	publish(t, js, xs)
	src := nats.Source[order](url, "ORDERS", nats.StartSeq(51), nats.StopAfter(30))
	splits, err := src.Splits(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if splits[0].Records != 30 {
		t.Errorf("split estimates %d records, want 30", splits[0].Records)
	}
	r := open(t, src, 0)
	defer r.Close()
	got, _, err := drain(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, xs[50:80]) {
		t.Fatalf("read %d records (%s), want orders 50..79", len(got), firstDiff(got, xs[50:80]))
	}
	// UntilEmpty with a start past the end reads nothing.
	r2 := open(t, nats.Source[order](url, "ORDERS", nats.StartSeq(1000), nats.UntilEmpty()), 0)
	defer r2.Close()
	if got, _, err := drain(t, r2); err != nil || len(got) != 0 {
		t.Fatalf("start past the end: %d records, %v", len(got), err)
	}
}

func TestUntilEmptyStopsAtOpenTime(t *testing.T) {
	url := startServer(t)
	js := client(t, url)
	createStream(t, js, "ORDERS", "orders.>")
	xs := orders(60)
	publish(t, js, xs[:40])
	r := open(t, nats.Source[order](url, "ORDERS", nats.UntilEmpty()), 0)
	defer r.Close()
	publish(t, js, xs[40:]) // after the split was opened: not part of it
	got, noData, err := drain(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if noData != 0 {
		t.Errorf("a bounded reader returned ErrNoData %d times", noData)
	}
	if !reflect.DeepEqual(got, xs[:40]) {
		t.Fatalf("read %d records, want the 40 published before open (%s)", len(got), firstDiff(got, xs[:40]))
	}
	// An empty stream ends at once.
	createStream(t, js, "EMPTY", "empty.>")
	r2 := open(t, nats.Source[order](url, "EMPTY", nats.UntilEmpty()), 0)
	defer r2.Close()
	if n, err := r2.Read(make([]order, 4)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("empty stream: %d, %v; want 0, io.EOF", n, err)
	}
}

func TestPublishFailureNamesSubject(t *testing.T) {
	url := startServer(t)
	js := client(t, url)
	createStream(t, js, "ORDERS", "orders.>")
	snk := nats.Sink[order](url, "nowhere.orders", nats.AckTimeout(5*time.Second))
	w, err := snk.Open(ctxT(t), stages.Instance{Job: "j", Stage: "s", Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	err = w.Write(orders(3))
	if err == nil {
		err = w.Prepare()
	}
	if err == nil || !strings.Contains(err.Error(), "record 0 to nowhere.orders") {
		t.Fatalf("publishing to a subject no stream holds: %v, want an error naming record 0 and the subject", err)
	}
}

func TestWriterLifecycle(t *testing.T) {
	url := startServer(t)
	js := client(t, url)
	str := createStream(t, js, "ORDERS", "orders.>")
	snk := nats.Sink[order](url, "orders.eu", nats.MsgID(order.msgID))
	w, err := snk.Open(ctxT(t), stages.Instance{Job: "j", Stage: "s", Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); !errors.Is(err, nats.ErrState) {
		t.Errorf("Commit before Prepare: %v, want ErrState", err)
	}
	if err := w.Write(orders(10)); err != nil {
		t.Fatal(err)
	}
	if err := w.Prepare(); err != nil {
		t.Fatal(err)
	}
	// Prepare waited for the acknowledgements: the stream holds them now.
	if got := streamMsgs(t, str); got != 10 {
		t.Errorf("after Prepare the stream holds %d messages, want 10", got)
	}
	if err := w.Write(orders(1)); !errors.Is(err, nats.ErrState) {
		t.Errorf("Write after Prepare: %v, want ErrState", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Errorf("second Commit: %v", err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
}

func TestEncoderAndBadSubject(t *testing.T) {
	url := startServer(t)
	js := client(t, url)
	str := createStream(t, js, "ORDERS", "orders.>")
	enc := nats.Encode(func(o order) ([]byte, error) {
		if o.ID == 2 {
			return nil, errors.New("cannot encode two")
		}
		return []byte(fmt.Sprint(o.ID)), nil
	})
	w, err := nats.Sink[order](url, "orders.eu", enc).Open(ctxT(t), stages.Instance{Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	err = w.Write(orders(5))
	if err == nil || !strings.Contains(err.Error(), "encoding record 2 for orders.eu") {
		t.Fatalf("got %v, want an error naming record 2", err)
	}
	if err := w.Prepare(); err != nil {
		t.Fatal(err)
	}
	m, err := str.GetMsg(ctxT(t), 2)
	if err != nil || string(m.Data) != "1" {
		t.Fatalf("message 2: %v, %v; want the encoder's 1", m, err)
	}

	bad := nats.SubjectOf(func(o order) string { return "orders.*" })
	w2, err := nats.Sink[order](url, "", bad).Open(ctxT(t), stages.Instance{Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Abort()
	if err := w2.Write(orders(1)); err == nil || !strings.Contains(err.Error(), `subject "orders.*"`) {
		t.Fatalf("wildcard subject: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	src := nats.Source[order]("", "", nats.Subjects("a"), nats.Partitions("b"), nats.StopAfter(0),
		nats.StartSeq(3), nats.StartTime(time.Unix(1, 0)), nats.Durable("a.b"))
	_, err := src.Splits(context.Background())
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"no server URL", "no stream name", "Subjects and Partitions", "StopAfter(0)",
		"StartSeq and StartTime", `durable name "a.b"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := nats.Sink[order]("nats://x", "a.*").Open(context.Background(), stages.Instance{}); err == nil ||
		!strings.Contains(err.Error(), `cannot publish to subject "a.*"`) {
		t.Errorf("wildcard sink subject: %v", err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "Decode gives") {
			t.Errorf("Decode of another type: recovered %v, want a panic naming Decode", r)
		}
	}()
	nats.Source[order]("nats://x", "S", nats.Decode(func(nats.Message) (int, error) { return 0, nil }))
}

func TestDurablePartitions(t *testing.T) {
	url := startServer(t)
	js := client(t, url)
	str := createStream(t, js, "ORDERS", "orders.>")
	xs := orders(90)
	publish(t, js, xs)
	src := nats.Source[order](url, "ORDERS", nats.Durable("feed"), nats.Partitions("orders.eu", "orders.us", "orders.ap"),
		nats.UntilEmpty())
	var got []order
	for i := range 3 {
		r := open(t, src, i)
		part, _, err := drain(t, r)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		for _, o := range part {
			if o.Region != regions[i] {
				t.Fatalf("split %d read an order of %s", i, o.Region)
			}
		}
		got = append(got, part...)
	}
	if got = byID(got); !reflect.DeepEqual(got, xs) {
		t.Fatalf("read %d orders, want %d (%s)", len(got), len(xs), firstDiff(got, xs))
	}
	for i := range 3 {
		c, err := str.Consumer(ctxT(t), fmt.Sprintf("feed-%d", i))
		if err != nil {
			t.Fatalf("durable consumer feed-%d: %v", i, err)
		}
		if info := c.CachedInfo(); info.NumPending != 0 || info.NumAckPending != 0 {
			t.Errorf("feed-%d: %d pending, %d unacknowledged after reading all", i, info.NumPending, info.NumAckPending)
		}
	}
}
