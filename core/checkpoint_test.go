package core_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/core"
)

// ckptStep is one event for the coordinator at a time (ms), and what its
// Ready must then say.
type ckptStep struct {
	at   int64
	ev   core.CoordEvent
	want string
}

var (
	t1 = core.Addr{Vertex: 0, Instance: 0}
	t2 = core.Addr{Vertex: 1, Instance: 0}
)

func tick() core.CoordEvent { return core.CoordEvent{Kind: core.CkptTick} }
func ack(id uint64, from core.Addr) core.CoordEvent {
	return core.CoordEvent{Kind: core.CkptAck, ID: id, From: from}
}
func written(id uint64, err error) core.CoordEvent {
	return core.CoordEvent{Kind: core.CkptManifestWritten, ID: id, Err: err}
}

func formatReady(r *core.CoordReady) string {
	var out []string
	if r.Trigger != 0 {
		out = append(out, fmt.Sprintf("trigger %d", r.Trigger))
	}
	if r.WriteManifest != 0 {
		out = append(out, fmt.Sprintf("write-manifest %d", r.WriteManifest))
	}
	if r.Completed != 0 {
		out = append(out, fmt.Sprintf("completed %d", r.Completed))
	}
	if r.Abandoned != 0 {
		out = append(out, fmt.Sprintf("abandoned %d", r.Abandoned))
	}
	if r.Tick != 0 {
		out = append(out, fmt.Sprintf("tick@%d", r.Tick/1e6))
	}
	if r.Fail != nil {
		out = append(out, "fail: "+r.Fail.Error())
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, "; ")
}

// TestCoordinator scripts the checkpoint coordinator with an interval of
// 100 ms, a timeout of 50 ms, a minimum pause of 30 ms and one tolerated
// failure in a row, over two tasks.
func TestCoordinator(t *testing.T) {
	cfg := core.CheckpointConfig{Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond,
		MinPause: 30 * time.Millisecond, TolerableFailures: 1}
	for _, tc := range []struct {
		name  string
		steps []ckptStep
		stats string
	}{
		{name: "completes", steps: []ckptStep{
			{0, tick(), "tick@100"},
			{100, tick(), "trigger 1; tick@150"},
			{110, ack(1, t1), "tick@150"},
			{111, ack(1, t1), "tick@150"}, // twice: counted once
			{112, ack(2, t2), "tick@150"}, // another checkpoint's: ignored
			{120, ack(1, t2), "write-manifest 1; tick@150"},
			{125, written(1, nil), "completed 1; tick@200"},
			{200, tick(), "trigger 2; tick@250"},
		}, stats: "1 completed in 25ms"},
		{name: "a timeout abandons, a second in a row fails the job", steps: []ckptStep{
			{0, tick(), "tick@100"},
			{100, tick(), "trigger 1; tick@150"},
			{120, ack(1, t1), "tick@150"},
			{150, tick(), "abandoned 1; tick@200"},
			{160, ack(1, t2), "tick@200"}, // too late
			{200, tick(), "trigger 2; tick@250"},
			{250, tick(), "abandoned 2; fail: checkpoint 2 was abandoned: it did not complete within 50ms (2 of 2 tasks had not acknowledged it, the first v0/0); 2 checkpoints in a row failed, more than the 1 tolerated"},
			{300, tick(), "-"}, // the job has failed: nothing more
		}, stats: "1 abandoned: it did not complete within 50ms (1 of 2 tasks had not acknowledged it, the first v1/0) | 2 abandoned: it did not complete within 50ms (2 of 2 tasks had not acknowledged it, the first v0/0)"},
		{name: "a completion resets the failures; the minimum pause delays the next", steps: []ckptStep{
			{100, tick(), "trigger 1; tick@150"},
			{110, core.CoordEvent{Kind: core.CkptDecline, ID: 1, From: t2, Err: errors.New("disk full")}, "abandoned 1; tick@200"},
			{200, tick(), "trigger 2; tick@250"},
			{205, ack(2, t1), "tick@250"},
			{206, ack(2, t2), "write-manifest 2; tick@250"},
			{249, written(2, nil), "completed 2; tick@300"},
			{300, tick(), "trigger 3; tick@350"},
			{301, ack(3, t1), "tick@350"},
			{302, ack(3, t2), "write-manifest 3; tick@350"},
			// A slow store: the manifest is still being written at the
			// timeout. The next checkpoint, due at 400 by the interval,
			// waits for the pause after the abandon: 390 + 30 = 420.
			{390, tick(), "abandoned 3; tick@420"},
			{420, tick(), "trigger 4; tick@470"},
		}, stats: "1 abandoned: v1/0 declined it: disk full | 2 completed in 49ms | 3 abandoned: it did not complete within 50ms (its manifest was still being written)"},
		{name: "a finished task is no longer waited for", steps: []ckptStep{
			{100, tick(), "trigger 1; tick@150"},
			{101, ack(1, t1), "tick@150"},
			{102, core.CoordEvent{Kind: core.CkptFinished, From: t2}, "write-manifest 1; tick@150"},
			{103, written(1, nil), "completed 1; tick@200"},
			{200, tick(), "trigger 2; tick@250"},
			{201, ack(2, t1), "write-manifest 2; tick@250"},
		}, stats: "1 completed in 3ms"},
		{name: "a failed manifest write abandons; stop ends it without a failure", steps: []ckptStep{
			{100, tick(), "trigger 1; tick@150"},
			{101, ack(1, t1), "tick@150"},
			{102, ack(1, t2), "write-manifest 1; tick@150"},
			{103, written(1, errors.New("503 slow down")), "abandoned 1; tick@200"},
			{200, tick(), "trigger 2; tick@250"},
			{201, core.CoordEvent{Kind: core.CkptStop}, "abandoned 2"},
			{300, tick(), "-"},
		}, stats: "1 abandoned: writing its manifest: 503 slow down | 2 abandoned: the job (or its attempt, to recover) ended first"},
		{name: "stop lets a manifest being written land", steps: []ckptStep{
			{100, tick(), "trigger 1; tick@150"},
			{101, ack(1, t1), "tick@150"},
			{102, ack(1, t2), "write-manifest 1; tick@150"},
			{103, core.CoordEvent{Kind: core.CkptStop}, "-"},
			{104, written(1, nil), "completed 1"},
			{300, tick(), "-"},
		}, stats: "1 completed in 4ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := core.NewCoordinator(cfg, []core.Addr{t1, t2}, 1, 0)
			if got := formatReady(c.Ready()); got != "tick@100" {
				t.Fatalf("at start: %s, want tick@100", got)
			}
			c.Advance()
			for _, s := range tc.steps {
				c.Step(s.at*1e6, s.ev)
				if got := formatReady(c.Ready()); got != s.want {
					t.Fatalf("at %d ms, %+v:\n got %s\nwant %s", s.at, s.ev, got, s.want)
				}
				c.Advance()
			}
			var stats []string
			for _, st := range c.Stats {
				if st.Completed {
					stats = append(stats, fmt.Sprintf("%d completed in %v", st.ID, time.Duration(st.End-st.Start)))
				} else {
					stats = append(stats, fmt.Sprintf("%d abandoned: %s", st.ID, st.Reason))
				}
			}
			if got := strings.Join(stats, " | "); got != tc.stats {
				t.Errorf("stats:\n got %s\nwant %s", got, tc.stats)
			}
		})
	}
}
