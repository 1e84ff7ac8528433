package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice/membership"
)

// nodesRunning returns the nodes that run instances of job id, as the
// coordinator n reports them.
func (n *testNode) nodesRunning(t *testing.T, id string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, v := range n.jobStats(t, id).Vertices {
		for _, in := range v.Instances {
			if in.Node != "" && !in.Done {
				out[in.Node] = true
			}
		}
	}
	return out
}

// waitFor waits, up to a minute, until ok holds, failing with what and
// the job's output otherwise.
func waitFor(t *testing.T, sub *process, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within a minute; the job's output:\n%s", what, sub.stderr.String())
		}
		select {
		case <-sub.exited:
			t.Fatalf("the job ended before %s:\n%s", what, sub.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// pacedJob runs test-paced-windows over events in one process, unpaced
// (the clean output), then submits it, paced, to node a at parallelism 2
// with checkpoints every 200 ms and extra flags, and waits for its first
// checkpoint. It returns the client, the job's ID and both outputs.
func pacedJob(t *testing.T, a *testNode, events string, extra ...string) (sub *process, id, out, clean string) {
	t.Helper()
	dir := t.TempDir()
	arg := "n-events=" + events
	clean, out, ck := filepath.Join(dir, "clean"), filepath.Join(dir, "out"), filepath.Join(dir, "ck")
	if code, _, stderr := command(context.Background(), false, "run", "test-paced-windows", "--quiet", "--parallelism", "2", "--arg", arg,
		"--arg", "pace=0s", "--arg", "out="+clean); code != 0 {
		t.Fatalf("clean run: exit %d:\n%s", code, stderr)
	}
	sub = startProcess(t, append([]string{"submit", "--to", a.http, "test-paced-windows", "--parallelism", "2", "--arg", arg, "--arg", "out=" + out,
		"--checkpoints", ck, "--checkpoint-every", "200ms"}, extra...)...)
	sub.waitForFiles(t, filepath.Join(ck, "chk-*", "MANIFEST"), 1, "a checkpoint")
	m := regexp.MustCompile(`job (\S+) on node`).FindStringSubmatch(sub.stderr.String())
	if m == nil {
		t.Fatalf("no job ID in:\n%s", sub.stderr.String())
	}
	return sub, m[1], out, clean
}

// TestClusterRescales: W3 (paced) with checkpoints runs on two real
// nodes of one slot each; a third joins and 'sluice rescale' takes the job
// to parallelism 3 on all three; SIGTERM on the third drains it: the job
// goes back to 2 on the first two, the third exits 0 once it runs none of
// the job's tasks, and the job writes what a run in one process writes.
func TestClusterRescales(t *testing.T) {
	skipUnderRace(t)
	a := startNode(t, "", "--slots", "1")
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive})
	b := startNode(t, a.gossip, "--slots", "1")
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive, b: membership.Alive})
	sub, id, out, clean := pacedJob(t, a, "1500000")

	// Too many: refused, the job unharmed.
	if code, _, stderr := client(t, "rescale", "--to", a.http, id, "5"); code != exitFailed ||
		!strings.Contains(stderr, "parallelism 5 needs 5 task slots: the live nodes have 2 for it") {
		t.Fatalf("rescale to 5 on 2 slots: exit %d:\n%s", code, stderr)
	}
	c := startNode(t, a.gossip, "--slots", "1")
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive, b: membership.Alive, c: membership.Alive})
	cName := a.members(t)[c.http].Name
	if code, _, stderr := client(t, "rescale", "--to", a.http, id, "3"); code != 0 ||
		!strings.Contains(stderr, "a rescale from parallelism 2 to 3 asked") {
		t.Fatalf("rescale to 3: exit %d:\n%s", code, stderr)
	}
	waitFor(t, sub, "the job on the third node", func() bool {
		return strings.Contains(sub.stderr.String(), "going on from it at parallelism 3") && a.nodesRunning(t, id)[cName]
	})
	if ran := a.nodesRunning(t, id); len(ran) != 3 {
		t.Fatalf("at parallelism 3 the job runs on %v, want all three nodes", ran)
	}

	c.signal(t, syscall.SIGTERM)
	if code := c.wait(t, time.Minute); code != 0 || !strings.Contains(c.stderr.String(), "drained") {
		t.Fatalf("the drained node: exit %d:\n%s", code, c.stderr.String())
	}
	if !strings.Contains(sub.stderr.String(), "going on from it at parallelism 2") || a.nodesRunning(t, id)[cName] {
		t.Fatalf("the drained node left before the job moved off it (running on %v):\n%s", a.nodesRunning(t, id), sub.stderr.String())
	}
	if code := sub.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("the rescaled job: exit %d:\n%s", code, sub.stderr.String())
	}
	t.Logf("the job's output:\n%s", sub.stderr.String())
	sameUserWindows(t, out, clean)
	samePeersChecksum(t, "w3", out, clean)
}

// TestClusterSpotNotice: a node polling a metadata service (AWS's IMDSv2
// protocol: a session token, then 404 until the notice) drains when the
// spot interruption notice comes, as at SIGTERM: the job with tasks on it
// moves to the other node at the parallelism it had (that node has the
// slots), the node exits 0, and the job writes the clean run's output.
func TestClusterSpotNotice(t *testing.T) {
	skipUnderRace(t)
	var notice atomic.Bool
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" && r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") != "":
			fmt.Fprint(w, "session-token")
		case r.Method == http.MethodGet && r.URL.Path == "/latest/meta-data/spot/instance-action":
			if r.Header.Get("X-aws-ec2-metadata-token") != "session-token" {
				http.Error(w, "no token", http.StatusUnauthorized)
			} else if notice.Load() {
				fmt.Fprint(w, `{"action": "terminate", "time": "2026-12-06T22:40:00Z"}`)
			} else {
				http.NotFound(w, r)
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer imds.Close()
	a := startNode(t, "")
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive})
	b := startNode(t, a.gossip, "--slots", "1", "--spot-notice", imds.URL+"/latest/meta-data/spot/instance-action")
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive, b: membership.Alive})
	sub, id, out, clean := pacedJob(t, a, "1000000")
	bName := a.members(t)[b.http].Name
	if !a.nodesRunning(t, id)[bName] {
		t.Fatalf("the job does not run on the second node: %v", a.nodesRunning(t, id))
	}
	notice.Store(true)
	if code := b.wait(t, time.Minute); code != 0 || !strings.Contains(b.stderr.String(), `spot interruption notice ({"action": "terminate"`) ||
		!strings.Contains(b.stderr.String(), "drained") {
		t.Fatalf("the node given notice: exit %d:\n%s", code, b.stderr.String())
	}
	if code := sub.wait(t, 3*time.Minute); code != 0 || !strings.Contains(sub.stderr.String(), "going on from it at parallelism 2") {
		t.Fatalf("the job: exit %d:\n%s", code, sub.stderr.String())
	}
	sameUserWindows(t, out, clean)
}

// TestDamper: a reactive job scales up only once the slots have been
// there for the stated time; a shorter burst moves nothing.
func TestDamper(t *testing.T) {
	t0 := time.Unix(1000, 0)
	d := damper{after: 10 * time.Second}
	for _, s := range []struct {
		at        time.Duration
		cur, most int
		want      int
	}{
		{0, 2, 2, 0},
		{1 * time.Second, 2, 4, 0},  // a burst of slots begins
		{9 * time.Second, 2, 4, 0},  // not yet 10 s
		{10 * time.Second, 2, 2, 0}, // gone again: nothing moved
		{11 * time.Second, 2, 3, 0}, // slots again: the wait starts over
		{20 * time.Second, 2, 4, 0},
		{21 * time.Second, 2, 4, 4}, // 10 s of more slots: up to what there is now
		{22 * time.Second, 4, 4, 0},
		{23 * time.Second, 4, 6, 0},
	} {
		if got := d.step(t0.Add(s.at), s.cur, s.most); got != s.want {
			t.Fatalf("at %v (parallelism %d, slots for %d): rescale to %d, want %d", s.at, s.cur, s.most, got, s.want)
		}
	}
}

// TestClusterReactive: a job submitted with --reactive on two nodes of
// one slot each goes to parallelism 3 on its own once a third node's slot
// has been free for the stated time, and writes the clean run's output. A
// job without a cluster, or without checkpoints, is refused --reactive.
func TestClusterReactive(t *testing.T) {
	skipUnderRace(t)
	if code, _, stderr := command(context.Background(), false, "run", "test-paced-windows", "--reactive", "1s", "--checkpoints", t.TempDir()); code != exitUsage ||
		!strings.Contains(stderr, "--reactive follows a cluster's task slots: submit the job to a node") {
		t.Fatalf("--reactive without a cluster: exit %d:\n%s", code, stderr)
	}
	a := startNode(t, "", "--slots", "1")
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive})
	if code, _, stderr := client(t, "submit", "--to", a.http, "test-paced-windows", "--reactive", "1s"); code != exitUsage ||
		!strings.Contains(stderr, "--reactive needs --checkpoints") {
		t.Fatalf("--reactive without checkpoints: exit %d:\n%s", code, stderr)
	}
	b := startNode(t, a.gossip, "--slots", "1")
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive, b: membership.Alive})
	sub, id, out, clean := pacedJob(t, a, "1500000", "--reactive", "1s")
	joined := time.Now()
	c := startNode(t, a.gossip, "--slots", "1")
	cName := ""
	waitFor(t, sub, "the job on the third node", func() bool {
		if cName == "" {
			cName = a.members(t)[c.http].Name
		}
		return strings.Contains(sub.stderr.String(), "reactive: job "+id+" goes from parallelism 2 to 3") && cName != "" && a.nodesRunning(t, id)[cName]
	})
	if took := time.Since(joined); took < time.Second {
		t.Fatalf("the job rescaled %v after the node started, before its slot had been free for 1 s", took)
	}
	if code := sub.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("the reactive job: exit %d:\n%s", code, sub.stderr.String())
	}
	sameUserWindows(t, out, clean)
}
