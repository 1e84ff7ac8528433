package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
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
// so that the runs end and their outputs compare; TestCommandStopFollowedStream
// follows a growing stream instead.
func TestCommandStopStreamToRedisAndNATS(t *testing.T) {
	r := newStreamRig(t)
	r.addStream(t, "all", r.clicks)
	want, wantPanes := r.cleanRun(t, "all")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		name := map[syscall.Signal]string{syscall.SIGTERM: "term", syscall.SIGKILL: "kill"}[sig]
		// 120 s of event time at 40 times real time: 3 s, with no early pane.
		args := r.job(name, "all", "40", "--checkpoints", filepath.Join(t.TempDir(), "ck"), "--checkpoint-every", "50ms")
		p := startProcess(t, args...)
		r.waitPanes(t, p, name, 1) // midway: once the first windows have fired and been published
		p.signal(t, sig)
		code := p.wait(t, 60*time.Second)
		if sig == syscall.SIGTERM && code != exitStopped {
			t.Fatalf("SIGTERM: exit %d, want %d:\n%s", code, exitStopped, p.stderr.String())
		}
		before := len(r.panes(t, name))
		if code, _, stderr := command(r.ctx, false, append(args, "--restore", "latest")...); code != 0 {
			t.Fatalf("%v, then --restore latest: exit %d:\n%s", sig, code, stderr)
		}
		t.Logf("%v: %d panes published before it", sig, before)
		r.compare(t, sig.String(), name, want, wantPanes)
	}
}

// TestCommandStopFollowedStream: as TestCommandStopStreamToRedisAndNATS,
// with a job that follows its stream without end (follow=true). Two thirds
// of the clicks are in the stream when the job starts; it is stopped
// midway through them (SIGTERM: exit 75, or SIGKILL), once its first
// windows have closed, and restored with --restore latest, and the rest is
// published while the restored run reads.
// A last click ten minutes later moves the watermark past every window of
// the others. Once their panes are all out the restored run is stopped
// with SIGTERM (exit 75), and Redis and the output subject must hold what
// a bounded run over the whole stream wrote, less the last click's window
// (which a followed stream never closes): no loss, no duplicate.
func TestCommandStopFollowedStream(t *testing.T) {
	r := newStreamRig(t)
	last := r.clicks[len(r.clicks)-1]
	late := examples.Click{UserID: lateUser, TS: last.TS + (10 * time.Minute).Milliseconds(), Price: 1}
	all := append(slices.Clip(r.clicks), late)
	r.addStream(t, "all", all)
	want, wantPanes := r.cleanRun(t, "all")
	part := len(r.clicks) * 2 / 3
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		name := map[syscall.Signal]string{syscall.SIGTERM: "term", syscall.SIGKILL: "kill"}[sig]
		r.addStream(t, name, all[:part])
		args := r.job(name, name, "40", "--arg", "follow=true", "--checkpoints", filepath.Join(t.TempDir(), "ck"),
			"--checkpoint-every", "50ms")
		p := startProcess(t, args...)
		r.waitPanes(t, p, name, 1)
		p.signal(t, sig)
		code := p.wait(t, 60*time.Second)
		if sig == syscall.SIGTERM && code != exitStopped {
			t.Fatalf("SIGTERM: exit %d, want %d:\n%s", code, exitStopped, p.stderr.String())
		}
		before := len(r.panes(t, name))
		p = startProcess(t, append(args, "--restore", "latest")...)
		r.publish(t, name, all[part:])
		r.waitPanes(t, p, name, len(wantPanes))
		// Redis is written as panes fire, before they are published.
		p.signal(t, syscall.SIGTERM)
		if code := p.wait(t, 60*time.Second); code != exitStopped {
			t.Fatalf("%v, then --restore latest and SIGTERM: exit %d, want %d:\n%s", sig, code, exitStopped, p.stderr.String())
		}
		t.Logf("%v: %d panes published before it", sig, before)
		r.compare(t, sig.String(), name, want, wantPanes)
	}
}

// lateUser is the user of TestCommandStopFollowedStream's last click,
// whose window is left out of the comparisons.
const lateUser = -1

// streamRig is the stream tests' servers: Redis at SLUICE_REDIS_ADDR, a
// nats-server in the test process with the output stream FEATURES
// (features.<run name>), and the clicks to publish.
type streamRig struct {
	ctx    context.Context
	addr   string
	rdb    *goredis.Client
	url    string
	js     jetstream.JetStream
	out    jetstream.Stream
	prefix string
	clicks []examples.Click
}

func newStreamRig(t *testing.T) *streamRig {
	addr := os.Getenv("SLUICE_REDIS_ADDR")
	if addr == "" {
		testenv.Need(t, "SLUICE_REDIS_ADDR is not set: no Redis server to test against (scripts/test.sh starts redis-server and sets it)")
	}
	r := &streamRig{addr: addr, rdb: goredis.NewClient(&goredis.Options{Addr: addr})}
	t.Cleanup(func() { r.rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	r.ctx = ctx
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s (SLUICE_REDIS_ADDR): %v", addr, err)
	}
	r.url, r.js = startJetStream(t)
	var err error
	if r.out, err = r.js.CreateStream(ctx, jetstream.StreamConfig{Name: "FEATURES", Subjects: []string{"features.>"}}); err != nil {
		t.Fatal(err)
	}
	spec := examples.ClicksSpec{Seed: 1, Users: 20, Rows: 30_000, Zipf: 1.1, Every: 4 * time.Millisecond, Disorder: 2 * time.Second}
	g, err := generator.New(spec.Config())
	if err != nil {
		t.Fatal(err)
	}
	for i := range spec.Rows {
		r.clicks = append(r.clicks, spec.Click(g.Row(i)))
	}
	r.prefix = fmt.Sprintf("test:%s:%d", t.Name(), time.Now().UnixNano())
	t.Cleanup(func() {
		if keys, _ := r.rdb.Keys(context.Background(), r.prefix+"*").Result(); len(keys) > 0 {
			r.rdb.Del(context.Background(), keys...)
		}
	})
	return r
}

// addStream creates the clicks stream CLICKS_<name> (subject
// clicks.<name>) holding clicks.
func (r *streamRig) addStream(t *testing.T, name string, clicks []examples.Click) {
	t.Helper()
	if _, err := r.js.CreateStream(r.ctx, jetstream.StreamConfig{Name: "CLICKS_" + name, Subjects: []string{"clicks." + name}}); err != nil {
		t.Fatal(err)
	}
	r.publish(t, name, clicks)
}

// publish appends clicks to stream CLICKS_<name>.
func (r *streamRig) publish(t *testing.T, name string, clicks []examples.Click) {
	t.Helper()
	for _, c := range clicks {
		data, _ := json.Marshal(c)
		if _, err := r.js.PublishAsync("clicks."+name, data); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-r.js.PublishAsyncComplete():
	case <-r.ctx.Done():
		t.Fatal("publishing the clicks: no acknowledgements")
	}
}

// job returns the arguments of a clicks run called name, reading stream
// CLICKS_<stream> at speed, into Redis and features.<name>.
func (r *streamRig) job(name, stream, speed string, extra ...string) []string {
	return append([]string{"run", "clicks", "--quiet", "--arg", "nats=" + r.url, "--arg", "stream=CLICKS_" + stream,
		"--arg", "speed=" + speed, "--arg", "redis=" + r.addr, "--arg", "prefix=" + r.prefix + "-" + name,
		"--arg", "nats-out=features." + name}, extra...)
}

// cleanRun runs the job over stream CLICKS_<stream> as fast as it goes,
// without checkpoints, and returns what it wrote to Redis and published.
func (r *streamRig) cleanRun(t *testing.T, stream string) (map[string]feature, []feature) {
	t.Helper()
	if code, _, stderr := command(r.ctx, false, r.job("clean", stream, "0")...); code != 0 {
		t.Fatalf("clean run: exit %d:\n%s", code, stderr)
	}
	want, wantPanes := r.features(t, "clean"), r.panes(t, "clean")
	if len(want) == 0 || len(wantPanes) != len(want) {
		t.Fatalf("the clean run wrote %d windows to Redis and published %d panes", len(want), len(wantPanes))
	}
	return want, wantPanes
}

// features and panes read what run name wrote to Redis and published,
// less lateUser's windows.
func (r *streamRig) features(t *testing.T, name string) map[string]feature {
	got := redisFeatures(t, r.rdb, r.prefix+"-"+name)
	maps.DeleteFunc(got, func(k string, _ feature) bool { return strings.HasPrefix(k, fmt.Sprintf(":%d:", lateUser)) })
	return got
}

func (r *streamRig) panes(t *testing.T, name string) []feature {
	return slices.DeleteFunc(publishedPanes(t, r.out, "features."+name), func(f feature) bool { return f.Key == lateUser })
}

// waitPanes waits, 60 s at most, until run name has published n panes
// while p runs.
func (r *streamRig) waitPanes(t *testing.T, p *process, name string, n int) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); len(r.panes(t, name)) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d panes published within 60 s:\n%s", len(r.panes(t, name)), n, p.stderr.String())
		}
		select {
		case <-p.exited:
			t.Fatalf("the run ended before it published %d panes:\n%s", n, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// compare checks run name's output against the clean run's.
func (r *streamRig) compare(t *testing.T, what, name string, want map[string]feature, wantPanes []feature) {
	t.Helper()
	got, gotPanes := r.features(t, name), r.panes(t, name)
	t.Logf("%s: %d panes published, %d windows in Redis", what, len(gotPanes), len(got))
	if !mapsEqual(got, want) {
		t.Errorf("%s: Redis holds %d windows, the clean run %d: %s", what, len(got), len(want), firstMapDiff(got, want))
	}
	if !slices.Equal(gotPanes, wantPanes) {
		t.Errorf("%s: the subject holds %d panes, the clean run's %d (a duplicate or a loss): %s", what, len(gotPanes), len(wantPanes),
			firstSliceDiff(gotPanes, wantPanes))
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
