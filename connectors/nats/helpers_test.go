package nats_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-data/sluice/connectors/generator"
	"github.com/sluice-data/sluice/internal/natstest"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// startServer starts a real NATS server with JetStream inside the test
// process, on a random port of 127.0.0.1 with its store in a temporary
// directory, and returns its URL. The server stops when the test ends.
func startServer(t testing.TB) string {
	t.Helper()
	return natstest.Start(t)
}

// client connects a test's own JetStream client.
func client(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// createStream creates a file-backed stream over subjects.
func createStream(t testing.TB, js jetstream.JetStream, name string, subjects ...string) jetstream.Stream {
	t.Helper()
	s, err := js.CreateStream(ctxT(t), jetstream.StreamConfig{Name: name, Subjects: subjects})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func streamMsgs(t testing.TB, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

type order struct {
	ID     int64  `json:"id"`
	Region string `json:"region"`
	User   int64  `json:"user"`
	Amount int64  `json:"amount"`
}

var regions = []string{"eu", "us", "ap"}

func (o order) subject() string { return "orders." + o.Region }
func (o order) msgID() string   { return fmt.Sprintf("order-%d", o.ID) }

// orders generates n orders from the project's generator.
func orders(n int64) []order {
	g, err := generator.New(generator.Config{Seed: 7, Rows: n, Keys: 500, Zipf: 1.1})
	if err != nil {
		panic(err)
	}
	out := make([]order, n)
	for i := range out {
		r := g.Row(int64(i))
		out[i] = order{ID: r.Index, Region: regions[r.Value%3], User: r.Key, Amount: r.Value}
	}
	return out
}

func byID(xs []order) []order {
	slices.SortFunc(xs, func(a, b order) int { return int(a.ID - b.ID) })
	return xs
}

// publish publishes xs to their subjects and waits for the acks.
func publish(t testing.TB, js jetstream.JetStream, xs []order) {
	t.Helper()
	ctx := ctxT(t)
	for _, x := range xs {
		if _, err := js.Publish(ctx, x.subject(), mustJSON(x)); err != nil {
			t.Fatal(err)
		}
	}
}

// open opens split i of src with a plain instance.
func open[T any](t testing.TB, src stages.Source[T], i int) stages.Reader[T] {
	t.Helper()
	ctx := ctxT(t)
	splits, err := src.Splits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, err := src.Open(ctx, stages.Instance{Job: t.Name(), Run: "r1", Stage: "nats", Parallelism: 1}, splits[i])
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// drain reads r to io.EOF (or another error) within a deadline, counting the
// Reads that returned ErrNoData.
func drain[T any](t testing.TB, r stages.Reader[T]) (got []T, noData int, err error) {
	t.Helper()
	buf := make([]T, 64)
	deadline := time.Now().Add(30 * time.Second)
	if testenv.Race() {
		deadline = deadline.Add(2 * time.Minute)
	}
	for time.Now().Before(deadline) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		switch {
		case errors.Is(err, stages.ErrNoData):
			noData++
		case errors.Is(err, io.EOF):
			return got, noData, nil
		case err != nil:
			return got, noData, err
		case n == 0:
			t.Fatal("Read returned (0, nil)")
		}
	}
	t.Fatalf("no io.EOF after %d records", len(got))
	return nil, 0, nil
}

// readUntil reads r until it has want records, within a deadline.
func readUntil[T any](t testing.TB, r stages.Reader[T], want int) []T {
	t.Helper()
	var got []T
	buf := make([]T, 64)
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < want {
		if time.Now().After(deadline) {
			t.Fatalf("read %d records of %d before the deadline", len(got), want)
		}
		n, err := r.Read(buf[:min(len(buf), want-len(got))])
		got = append(got, buf[:n]...)
		if err != nil && !errors.Is(err, stages.ErrNoData) {
			t.Fatalf("after %d records: %v", len(got), err)
		}
	}
	return got
}
