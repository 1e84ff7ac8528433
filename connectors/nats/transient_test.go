package nats_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/connectors/nats"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// TestSourceTransientErrors: the source declares the errors of a server
// that cannot be reached or is restarting transient, and not a message that
// does not decode or the job's cancellation.
func TestSourceTransientErrors(t *testing.T) {
	src, ok := nats.Source[order]("nats://127.0.0.1:1", "ORDERS").(stages.TransientErrors)
	if !ok {
		t.Fatal("the source does not implement stages.TransientErrors")
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("nats: connecting to x: %w", natsgo.ErrNoServers), true},
		{fmt.Errorf("nats: fetching: %w", natsgo.ErrTimeout), true},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
		{natsgo.ErrConnectionClosed, true},
		{&nats.MessageError{Stream: "ORDERS", Sequence: 3, Err: errors.New("bad json")}, false},
		{fmt.Errorf("nats: stream ORDERS: %w", errors.New("stream not found")), false},
		{fmt.Errorf("nats: fetching: %w", context.Canceled), false},
	} {
		if got := src.Transient(tc.err); got != tc.want {
			t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestSourceRetriesUntilTheServerIsBack: a job started while the server is
// down retries opening its split until the server is back on the same port
// with the same store, then reads every message once.
func TestSourceRetriesUntilTheServerIsBack(t *testing.T) {
	store := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	opts := &server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: store, NoLog: true, NoSigs: true}
	start := func() *server.Server {
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			s.Shutdown()
			t.Fatal("nats-server did not become ready in 10 s")
		}
		return s
	}
	s := start()
	url := s.ClientURL()
	xs := orders(300)
	js := client(t, url)
	createStream(t, js, "ORDERS", "orders.>")
	publish(t, js, xs)
	s.Shutdown()
	s.WaitForShutdown()

	cfg := actors.DefaultConfig()
	cfg.Retry = actors.RetryPolicy{Attempts: 200, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	p := stages.NewPipeline("nats-retry")
	out := stages.Collect(stages.Read(p, nats.Source[order](url, "ORDERS", nats.StopAfter(int64(len(xs))))))
	x, err := sluice.Start(ctxT(t), p, sluice.Options{Parallelism: 1, Runtime: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the source to retry", 30*time.Second, func() bool { return x.Snapshot().Vertices[0].Retries > 0 })
	s = start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	res, err := x.Wait()
	if err != nil {
		t.Fatal(err)
	}
	got := byID(out.Values())
	if len(got) != len(xs) {
		t.Fatalf("%d records, want %d", len(got), len(xs))
	}
	for i := range got {
		if got[i] != xs[i] {
			t.Fatalf("record %d is %+v, want %+v", i, got[i], xs[i])
		}
	}
	t.Logf("%d retries while the server was down", res.Vertices[0].Retries)
}
