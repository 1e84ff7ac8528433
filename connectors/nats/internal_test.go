package nats

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-data/sluice/stages"
)

// TestGapStartsConsumerAgain checks the ordered reading of an ephemeral
// consumer: when a delivery goes missing (seen as a jump in the consumer
// sequence), the reader drops what follows it and reads again from the
// message after the last one it handed over, losing and repeating nothing.
func TestGapStartsConsumerAgain(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not become ready")
	}
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, err := natsgo.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	var want []int
	for i := range 50 {
		want = append(want, i)
		if _, err := js.Publish(ctx, "s.x", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	src := Source[int](s.ClientURL(), "S", UntilEmpty()).(*source[int])
	splits, err := src.Splits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := src.Open(ctx, stages.Instance{Parallelism: 1}, splits[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r := rd.(*reader[int])
	buf := make([]int, 10)
	var got []int
	n, err := r.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, buf[:n]...)
	r.nextCons += 3 // as if three deliveries had been lost
	old := r.cons.CachedInfo().Name
	for len(got) < 60 {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	if r.cons.CachedInfo().Name == old {
		t.Error("the reader kept its consumer after a gap")
	}
}

// TestDurableRedeliveryIsNotTheEnd: in a job that checkpoints, a durable
// consumer's messages stay unacknowledged until a checkpoint completes, and
// the server may deliver them again (AckWait, here a Nak) ahead of the
// messages not yet read. A bounded (UntilEmpty) split whose pull request
// brings back only such messages, all handed over already, has not ended:
// it goes on to read the rest of the stream.
func TestDurableRedeliveryIsNotTheEnd(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not become ready")
	}
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, err := natsgo.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	var want []int
	for i := range 30 {
		want = append(want, i)
		if _, err := js.Publish(ctx, "s.x", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	src := Source[int](s.ClientURL(), "S", Durable("d"), UntilEmpty()).(*source[int])
	splits, err := src.Splits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := src.Open(ctx, stages.Instance{Parallelism: 1, Checkpointing: true}, splits[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r := rd.(*reader[int])
	buf := make([]int, 10)
	n, err := r.Read(buf)
	if err != nil || n != 10 {
		t.Fatalf("the first read: %d, %v", n, err)
	}
	got := append([]int(nil), buf[:n]...)
	for _, m := range r.acks { // as if AckWait had passed: delivered again, first
		if err := m.Nak(); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, stages.ErrNoData) {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
}
