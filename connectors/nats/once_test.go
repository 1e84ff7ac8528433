package nats_test

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/connectors/nats"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// TestExactlyOnceAcrossKills: a job on actors that checkpoints every 5 ms
// into local files writes orders to a real JetStream with ExactlyOnce while
// chaos kills its instances: the stream holds every order once. The same
// job with an at-least-once sink (stages.AtLeastOnce) stores duplicates,
// so the kills did replay records into the sink.
func TestExactlyOnceAcrossKills(t *testing.T) {
	n := int64(50_000)
	if testenv.Race() {
		n = 10_000
	}
	want := orders(n)
	for _, once := range []bool{true, false} {
		url := startServer(t)
		js := client(t, url)
		str := createStream(t, js, "ORDERS", "orders.>")
		cfg := actors.DefaultConfig()
		cfg.BatchRecords = 256
		cfg.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewLocal(filepath.Join(t.TempDir(), "ck")),
			Every: 5 * time.Millisecond, Timeout: 30 * time.Second,
			Recovery: actors.RestartPolicy{MaxRestarts: 10, Window: time.Minute, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}}
		cfg.Chaos = &actors.ChaosConfig{Kills: 5, Seed: 3}
		p := stages.NewPipeline("orders-out")
		src := stages.FromSlice(p, want, stages.Parallelism(2))
		if once {
			stages.Write(src, nats.Sink[order](url, "", nats.SubjectOf(order.subject), nats.ExactlyOnce()), stages.Parallelism(2))
		} else {
			stages.Write(src, stages.AtLeastOnce(nats.Sink[order](url, "", nats.SubjectOf(order.subject))), stages.Parallelism(2))
		}
		res, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg})
		if err != nil {
			t.Fatal(err)
		}
		restored := fromCheckpoints(res)
		got := streamMsgs(t, str)
		t.Logf("exactly once %v: %d kills, %d recoveries from a checkpoint; the stream holds %d messages of %d orders",
			once, len(res.Kills), restored, got, n)
		if len(res.Kills) != 5 {
			t.Fatalf("%d kills, want 5", len(res.Kills))
		}
		if !once {
			if got <= uint64(n) {
				t.Fatalf("at least once: the stream holds %d messages, want more than %d (the kills replayed none)", got, n)
			}
			continue
		}
		if got != uint64(n) {
			t.Fatalf("exactly once: the stream holds %d messages, want %d", got, n)
		}
		if all := byID(readOrders(t, url)); !reflect.DeepEqual(all, want) {
			t.Fatalf("read %d orders, want %d (%s)", len(all), len(want), firstDiff(all, want))
		}
	}
}

// TestExactlyOnceRefusesMsgID: ExactlyOnce sets the message IDs itself.
func TestExactlyOnceRefusesMsgID(t *testing.T) {
	s := nats.Sink[order]("nats://127.0.0.1:1", "", nats.SubjectOf(order.subject), nats.ExactlyOnce(), nats.MsgID(order.msgID))
	if _, err := s.Open(context.Background(), stages.Instance{}); err == nil ||
		!strings.Contains(err.Error(), "ExactlyOnce") || !strings.Contains(err.Error(), "MsgID") {
		t.Fatalf("Open: %v, want an error naming ExactlyOnce and MsgID", err)
	}
}

// TestExactlyOnceStopAndRestore: a job writing to JetStream with
// ExactlyOnce, stopped at a checkpoint midway and restored in a new
// execution at another parallelism, leaves every order in the stream once
// (on the simulator, so that the stop comes midway).
func TestExactlyOnceStopAndRestore(t *testing.T) {
	n := int64(40_000)
	want := orders(n)
	url := startServer(t)
	js := client(t, url)
	str := createStream(t, js, "ORDERS", "orders.>")
	store := checkpoints.NewLocal(filepath.Join(t.TempDir(), "ck"))
	run := func(par int, chaos *actors.ChaosConfig, restore string) error {
		cfg := actors.DefaultConfig()
		cfg.BatchRecords = 256
		cfg.Executor = actors.Sim{StepTime: time.Microsecond} // the stop comes at a place in the input
		cfg.Checkpoints = &actors.CheckpointConfig{Store: store, Every: 20 * time.Microsecond, Timeout: 30 * time.Second, Restore: restore}
		cfg.Chaos = chaos
		p := stages.NewPipeline("orders-out")
		src := stages.FromSlice(p, want, stages.Parallelism(par))
		stages.Write(src, nats.Sink[order](url, "", nats.SubjectOf(order.subject), nats.ExactlyOnce()), stages.Parallelism(par))
		_, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg})
		return err
	}
	var stopped *actors.StoppedError
	if err := run(2, &actors.ChaosConfig{StopAt: n / 2}, ""); !errors.As(err, &stopped) {
		t.Fatalf("stopping midway: %v, want a *StoppedError", err)
	}
	before := streamMsgs(t, str)
	if err := run(3, nil, "latest"); err != nil {
		t.Fatal(err)
	}
	got := streamMsgs(t, str)
	t.Logf("stopped at checkpoint %d with %d messages published; restored at parallelism 3: %d", stopped.Checkpoint, before, got)
	if before == 0 || before >= uint64(n) || got != uint64(n) {
		t.Fatalf("the stream held %d messages at the stop and %d after the restore, want some but fewer than %d and then %d", before, got, n, n)
	}
	if all := byID(readOrders(t, url)); !reflect.DeepEqual(all, want) {
		t.Fatalf("read %d orders, want %d (%s)", len(all), len(want), firstDiff(all, want))
	}
}
