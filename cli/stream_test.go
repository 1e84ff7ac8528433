package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"

	"github.com/sluice-data/sluice/connectors/generator"
	"github.com/sluice-data/sluice/examples"
	"github.com/sluice-data/sluice/internal/natstest"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// TestCommandStopStreamToRedisAndNATS: a real sluice run of the clicks job
// reads clicks from a JetStream stream (a real nats-server, in this test's
// process) into one-minute windows written to Redis (accumulating
// features) and published to a NATS subject exactly once. It gets SIGTERM
// midway and exits 75 at a final checkpoint; run again with --restore
// latest it finishes: Redis holds, key for key, what a run never stopped
// wrote, and the subject holds each of that run's panes once. The same
// with SIGKILL instead (restored from the last periodic checkpoint). The
// stream is read up to its last message at the job's start (UntilEmpty),
// so that the runs end and their outputs compare.
func TestCommandStopStreamToRedisAndNATS(t *testing.T) {
	addr := os.Getenv("SLUICE_REDIS_ADDR")
	if addr == "" {
		testenv.Need(t, "SLUICE_REDIS_ADDR is not set: no Redis server to test against (scripts/test.sh starts redis-server and sets it)")
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s (SLUICE_REDIS_ADDR): %v", addr, err)
	}
	url, js := startJetStream(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CLICKS", Subjects: []string{"clicks"}}); err != nil {
		t.Fatal(err)
	}
	out, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FEATURES", Subjects: []string{"features.>"}})
	if err != nil {
		t.Fatal(err)
	}
	spec := examples.ClicksSpec{Seed: 1, Users: 20, Rows: 30_000, Zipf: 1.1, Every: 4 * time.Millisecond, Disorder: 2 * time.Second}
	g, err := generator.New(spec.Config())
	if err != nil {
		t.Fatal(err)
	}
	for i := range spec.Rows {
		data, _ := json.Marshal(spec.Click(g.Row(i)))
		if _, err := js.PublishAsync("clicks", data); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publishing the clicks: no acknowledgements")
	}
	prefix := fmt.Sprintf("test:%s:%d", t.Name(), time.Now().UnixNano())
	t.Cleanup(func() {
		if keys, _ := rdb.Keys(context.Background(), prefix+"*").Result(); len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	job := func(name string, speed string) []string {
		return []string{"run", "clicks", "--quiet", "--arg", "nats=" + url, "--arg", "speed=" + speed, "--arg", "redis=" + addr,
			"--arg", "prefix=" + prefix + "-" + name, "--arg", "nats-out=features." + name}
	}
	if code, _, stderr := command(ctx, false, job("clean", "0")...); code != 0 {
		t.Fatalf("clean run: exit %d:\n%s", code, stderr)
	}
	want, wantPanes := redisFeatures(t, rdb, prefix+"-clean"), publishedPanes(t, out, "features.clean")
	if len(want) == 0 || len(wantPanes) != len(want) {
		t.Fatalf("the clean run wrote %d windows to Redis and published %d panes", len(want), len(wantPanes))
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		name := map[syscall.Signal]string{syscall.SIGTERM: "term", syscall.SIGKILL: "kill"}[sig]
		ck := filepath.Join(t.TempDir(), "ck")
		// 120 s of event time at 40 times real time: 3 s, with no early pane.
		args := append(job(name, "40"), "--checkpoints", ck, "--checkpoint-every", "50ms")
		p := startProcess(t, args...)
		// Midway: once the first windows have fired and been published.
		for deadline := time.Now().Add(60 * time.Second); len(publishedPanes(t, out, "features."+name)) == 0; {
			if time.Now().After(deadline) {
				t.Fatalf("no pane published within 60 s:\n%s", p.stderr.String())
			}
			select {
			case <-p.exited:
				t.Fatalf("the run ended before it published a pane:\n%s", p.stderr.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
		p.signal(t, sig)
		code := p.wait(t, 60*time.Second)
		if sig == syscall.SIGTERM && code != exitStopped {
			t.Fatalf("SIGTERM: exit %d, want %d:\n%s", code, exitStopped, p.stderr.String())
		}
		before := len(publishedPanes(t, out, "features."+name))
		if code, _, stderr := command(ctx, false, append(args, "--restore", "latest")...); code != 0 {
			t.Fatalf("%v, then --restore latest: exit %d:\n%s", sig, code, stderr)
		}
		got, gotPanes := redisFeatures(t, rdb, prefix+"-"+name), publishedPanes(t, out, "features."+name)
		t.Logf("%v: %d panes published before it, %d after the restore; %d windows in Redis", sig, before, len(gotPanes), len(got))
		if !mapsEqual(got, want) {
			t.Errorf("%v: Redis holds %d windows, the clean run %d: %s", sig, len(got), len(want), firstMapDiff(got, want))
		}
		if !slices.Equal(gotPanes, wantPanes) {
			t.Errorf("%v: the subject holds %d panes, the clean run's %d (a duplicate or a loss): %s", sig, len(gotPanes), len(wantPanes),
				firstSliceDiff(gotPanes, wantPanes))
		}
	}
}

// startJetStream starts a nats-server with JetStream in the test process.
func startJetStream(t *testing.T) (string, jetstream.JetStream) {
	t.Helper()
	url := natstest.Start(t)
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return url, js
}

// feature is a window's features as the comparison sees them: amounts in
// cents, since a float sum depends on the order of its terms.
type feature struct {
	Key           int64
	Start, End    int64
	Clicks, Cents int64
	Timing        string
}

// redisFeatures reads the windows the clicks job wrote under prefix.
func redisFeatures(t *testing.T, c *goredis.Client, prefix string) map[string]feature {
	t.Helper()
	ctx := context.Background()
	keys, err := c.Keys(ctx, prefix+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]feature{}
	for _, k := range keys {
		h, err := c.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var v examples.ClickFeatures
		if err := json.Unmarshal([]byte(h["value"]), &v); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		out[strings.TrimPrefix(k, prefix)] = feature{Clicks: v.Clicks, Cents: int64(math.Round(v.Value * 100)), Timing: h["timing"]}
	}
	return out
}

// publishedPanes reads the panes published to subject, sorted.
func publishedPanes(t *testing.T, s jetstream.Stream, subject string) []feature {
	t.Helper()
	ctx := context.Background()
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []feature
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != subject {
			continue
		}
		var w stages.Windowed[int64, examples.ClickFeatures]
		if err := json.Unmarshal(m.Data, &w); err != nil {
			t.Fatal(err)
		}
		out = append(out, feature{Key: w.Key, Start: int64(w.Window.Start), End: int64(w.Window.End), Clicks: w.Value.Clicks,
			Cents: int64(math.Round(w.Value.Value * 100)), Timing: w.Pane.Timing.String()})
	}
	slices.SortFunc(out, func(a, b feature) int {
		if a.Key != b.Key {
			return int(a.Key - b.Key)
		}
		return int(a.Start - b.Start)
	})
	return out
}

func mapsEqual(a, b map[string]feature) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func firstMapDiff(got, want map[string]feature) string {
	for k, v := range want {
		if got[k] != v {
			return fmt.Sprintf("window %s: %+v, want %+v", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			return fmt.Sprintf("window %s: %+v, not in the clean run", k, v)
		}
	}
	return "none"
}

func firstSliceDiff(got, want []feature) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("pane %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	return "one is a prefix of the other"
}
