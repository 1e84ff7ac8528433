package nats_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/connectors/nats"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// durableJob copies the orders a durable consumer per region partition
// (feed-0, feed-1, feed-2) delivers into the stream COPY, exactly once.
func durableJob(url string, par int, opts ...nats.SourceOption) *stages.Pipeline {
	p := stages.NewPipeline("orders-copy")
	opts = append([]nats.SourceOption{nats.Durable("feed"), nats.Partitions("orders.eu", "orders.us", "orders.ap"), nats.UntilEmpty()}, opts...)
	src := stages.Read(p, nats.Source[order](url, "ORDERS", opts...), stages.Parallelism(par))
	stages.Write(src, nats.Sink[order](url, "copy", nats.ExactlyOnce()), stages.Parallelism(par))
	return p
}

func checkpointed(store checkpoints.Store, every time.Duration, restore string) actors.Config {
	cfg := actors.DefaultConfig()
	cfg.BatchRecords = 256
	cfg.Checkpoints = &actors.CheckpointConfig{Store: store, Every: every, Timeout: 30 * time.Second, Restore: restore,
		Recovery: actors.RestartPolicy{MaxRestarts: 10, Window: time.Minute, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}}
	return cfg
}

// consumers returns the durable consumers' ack floors (stream sequences)
// and their messages delivered and not acknowledged.
func consumers(t *testing.T, str jetstream.Stream) (floors []uint64, pending int) {
	t.Helper()
	for _, name := range []string{"feed-0", "feed-1", "feed-2"} {
		c, err := str.Consumer(ctxT(t), name)
		if err != nil {
			t.Fatalf("consumer %s: %v", name, err)
		}
		info, err := c.Info(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		floors = append(floors, info.AckFloor.Stream)
		pending += info.NumAckPending
	}
	return floors, pending
}

// TestDurableAcrossKills: a job that checkpoints every 5 ms reads orders
// through durable consumers and copies them exactly once into another
// stream while chaos kills its instances: the copy holds every order once,
// and when the job has ended every message is acknowledged. A second run
// of the job, not restored, reads nothing (the consumers start after what
// the first acknowledged); after more orders are published a third reads
// exactly those.
func TestDurableAcrossKills(t *testing.T) {
	n := int64(30_000)
	if testenv.Race() {
		n = 6_000
	}
	all := orders(n + 3000)
	want := all[:n]
	url := startServer(t)
	js := client(t, url)
	str := createStream(t, js, "ORDERS", "orders.>")
	out := createStream(t, js, "COPY", "copy")
	publish(t, js, want)
	cfg := checkpointed(checkpoints.NewLocal(filepath.Join(t.TempDir(), "ck")), 5*time.Millisecond, "")
	cfg.Chaos = &actors.ChaosConfig{Kills: 5, Seed: 4}
	res, err := sluice.Run(context.Background(), durableJob(url, 2), sluice.Options{Runtime: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	restored := fromCheckpoints(res)
	t.Logf("%d kills, %d recoveries from a checkpoint; the copy holds %d messages of %d", len(res.Kills), restored, streamMsgs(t, out), n)
	if len(res.Kills) != 5 || restored == 0 {
		t.Fatalf("%d kills and %d recoveries from a checkpoint, want 5 and some", len(res.Kills), restored)
	}
	if got := byID(readCopy(t, url)); !reflect.DeepEqual(got, want) {
		t.Fatalf("the copy holds %d orders, want %d (%s)", len(got), len(want), firstDiff(got, want))
	}
	floors, pending := consumers(t, str)
	if pending != 0 || floors[0]+floors[1]+floors[2] == 0 {
		t.Fatalf("after the job: ack floors %v, %d pending, want everything acknowledged", floors, pending)
	}
	again := checkpointed(checkpoints.NewLocal(filepath.Join(t.TempDir(), "ck2")), 5*time.Millisecond, "")
	if _, err := sluice.Run(context.Background(), durableJob(url, 2), sluice.Options{Runtime: &again}); err != nil {
		t.Fatal(err)
	}
	if got := streamMsgs(t, out); got != uint64(n) {
		t.Fatalf("a second run over the same consumers: the copy holds %d messages, want %d (it read again what was acknowledged)", got, n)
	}
	publish(t, js, all[n:])
	third := checkpointed(checkpoints.NewLocal(filepath.Join(t.TempDir(), "ck3")), 5*time.Millisecond, "")
	if _, err := sluice.Run(context.Background(), durableJob(url, 2), sluice.Options{Runtime: &third}); err != nil {
		t.Fatal(err)
	}
	if got := byID(readCopy(t, url)); !reflect.DeepEqual(got, all) {
		t.Fatalf("after more orders and a third run the copy holds %d orders, want %d (%s)", len(got), len(all), firstDiff(got, all))
	}
}

// TestDurableStopAndRestore: stopped at a checkpoint midway (on the
// simulator, so that the stop comes at a place in the input), the durable
// consumers have acknowledged no more than the checkpoints that completed
// hold; restored at another parallelism, the job copies every order once.
func TestDurableStopAndRestore(t *testing.T) {
	n := int64(20_000)
	want := orders(n)
	url := startServer(t)
	js := client(t, url)
	str := createStream(t, js, "ORDERS", "orders.>")
	createStream(t, js, "COPY", "copy")
	publish(t, js, want)
	store := checkpoints.NewLocal(filepath.Join(t.TempDir(), "ck"))
	cfg := checkpointed(store, 20*time.Microsecond, "")
	cfg.Executor = actors.Sim{StepTime: time.Microsecond}
	cfg.Chaos = &actors.ChaosConfig{StopAt: n / 2}
	var stopped *actors.StoppedError
	if _, err := sluice.Run(context.Background(), durableJob(url, 2), sluice.Options{Runtime: &cfg}); !errors.As(err, &stopped) {
		t.Fatalf("stopping midway: %v, want a *StoppedError", err)
	}
	floors, _ := consumers(t, str)
	cursors := stopCursors(t, store)
	t.Logf("stopped at checkpoint %d; ack floors %v, the checkpoint's stream sequences %v", stopped.Checkpoint, floors, cursors)
	acked := false
	for i, f := range floors {
		if f > cursors[i] {
			t.Fatalf("partition %d: acknowledged up to stream sequence %d, past the stop's checkpoint (%d)", i, f, cursors[i])
		}
		acked = acked || f > 0
	}
	if !acked {
		t.Fatalf("ack floors %v: no checkpoint's acknowledgement reached the server before the stop", floors)
	}
	restore := checkpointed(store, 20*time.Microsecond, "latest")
	restore.Executor = actors.Sim{StepTime: time.Microsecond}
	if _, err := sluice.Run(context.Background(), durableJob(url, 3), sluice.Options{Runtime: &restore}); err != nil {
		t.Fatal(err)
	}
	if got := byID(readCopy(t, url)); !reflect.DeepEqual(got, want) {
		t.Fatalf("after the restore the copy holds %d orders, want %d (%s)", len(got), len(want), firstDiff(got, want))
	}
}

// stopCursors returns, per partition, the stream sequence of the last
// message read before the latest checkpoint in store.
func stopCursors(t *testing.T, store checkpoints.Store) []uint64 {
	t.Helper()
	ck, _, err := checkpoints.New(store).Latest(ctxT(t))
	if err != nil || ck == nil {
		t.Fatalf("the latest checkpoint: %v (%v)", ck, err)
	}
	cursors := make([]uint64, 3)
	for _, st := range ck.States {
		if st.Kind != "source" {
			continue
		}
		var sp core.SourcePosition
		if err := json.Unmarshal(st.Data, &sp); err != nil {
			t.Fatal(err)
		}
		for _, s := range sp.Splits {
			var pos struct {
				Cursor uint64 `json:"cursor"`
			}
			if len(s.Pos) > 0 {
				if err := json.Unmarshal(s.Pos, &pos); err != nil {
					t.Fatalf("split %s: %q: %v", s.Desc, s.Pos, err)
				}
			}
			cursors[s.Split] = pos.Cursor
		}
	}
	return cursors
}

// readCopy reads the stream COPY.
func readCopy(t *testing.T, url string) []order {
	t.Helper()
	p := stages.NewPipeline("read-copy")
	out := stages.Collect(stages.Read(p, nats.Source[order](url, "COPY", nats.UntilEmpty())))
	if _, err := sluice.Run(ctxT(t), p, sluice.Options{}); err != nil {
		t.Fatal(err)
	}
	return out.Values()
}

// TestDurableAcknowledgesCompletedOnly: an unbounded job whose checkpoints
// never complete (every manifest write fails) reads every message through
// its durable consumers and acknowledges none of them: when it is
// cancelled, each consumer's ack floor is still 0, so the messages are
// delivered again to whoever reads next.
func TestDurableAcknowledgesCompletedOnly(t *testing.T) {
	n := 3000
	url := startServer(t)
	js := client(t, url)
	str := createStream(t, js, "ORDERS", "orders.>")
	createStream(t, js, "COPY", "copy")
	publish(t, js, orders(int64(n)))
	store := &checkpoints.Faulty{Store: checkpoints.NewMem(), Inject: checkpoints.InjectorFunc(func(op checkpoints.Op, key string) checkpoints.Fault {
		if op == checkpoints.OpPut && strings.HasSuffix(key, "/MANIFEST") {
			return checkpoints.FailBefore
		}
		return checkpoints.NoFault
	})}
	cfg := checkpointed(store, 5*time.Millisecond, "")
	cfg.Checkpoints.TolerableFailures = 1 << 20
	p := stages.NewPipeline("orders-copy")
	src := stages.Read(p, nats.Source[order](url, "ORDERS", nats.Durable("feed"), nats.Partitions("orders.eu", "orders.us", "orders.ap")),
		stages.Parallelism(3))
	stages.Write(src, stages.AtLeastOnce(nats.Sink[order](url, "copy")), stages.Parallelism(3))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ended := make(chan error, 1)
	go func() {
		_, err := sluice.Run(ctx, p, sluice.Options{Runtime: &cfg})
		ended <- err
	}()
	for deadline := time.Now().Add(60 * time.Second); delivered(t, str) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("the consumers did not deliver all %d messages within 60 s", n)
		}
		select {
		case err := <-ended:
			t.Fatalf("the job ended: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if store.Injected()[checkpoints.FailBefore] == 0 {
		t.Fatal("no checkpoint was attempted")
	}
	floors, pending := consumers(t, str)
	if floors[0]+floors[1]+floors[2] != 0 || pending != n {
		t.Fatalf("ack floors %v and %d messages pending, want 0 acknowledged and all %d pending", floors, pending, n)
	}
}

// delivered counts the messages the durable consumers have delivered.
func delivered(t *testing.T, str jetstream.Stream) int {
	t.Helper()
	n := 0
	for _, name := range []string{"feed-0", "feed-1", "feed-2"} {
		c, err := str.Consumer(ctxT(t), name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		n += int(info.Delivered.Consumer)
	}
	return n
}

// fromCheckpoints counts a run's recoveries from a checkpoint.
func fromCheckpoints(res *sluice.Result) int {
	n := 0
	for _, r := range res.Recoveries {
		if r.Checkpoint != 0 {
			n++
		}
	}
	return n
}
