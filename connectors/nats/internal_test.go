package nats

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strconv"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-data/sluice/internal/natstest"
	"github.com/sluice-data/sluice/stages"
)

// TestGapStartsConsumerAgain checks the ordered reading of an ephemeral
// consumer: when a delivery goes missing (seen as a jump in the consumer
// sequence), the reader drops what follows it and reads again from the
// message after the last one it handed over, losing and repeating nothing.
func TestGapStartsConsumerAgain(t *testing.T) {
	ctx, url, want := intStream(t, 50)
	src := Source[int](url, "S", UntilEmpty()).(*source[int])
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
	ctx, url, want := intStream(t, 30)
	src := Source[int](url, "S", Durable("d"), UntilEmpty()).(*source[int])
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

// intStream starts a nats-server with a stream S holding the numbers 0 to
// n-1 on subject s.x, and returns a context for the test, the server's URL
// and the numbers.
func intStream(t *testing.T, n int) (context.Context, string, []int) {
	t.Helper()
	url := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	want := make([]int, n)
	for i := range want {
		want[i] = i
		if _, err := js.Publish(ctx, "s.x", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	return ctx, url, want
}
