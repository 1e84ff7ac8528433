package cli

// Tests of elastic rescale and draining from a review (helper 27): each
// failed on the first version of the change (8bffea6), showing a bug.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/membership"
	"github.com/sluice-data/sluice/metrics"
)

// reviewRun runs 'run' in this process with inv, returning the exit
// status on the channel.
func reviewRun(ctx context.Context, inv *invocation, args ...string) chan int {
	done := make(chan int, 1)
	go func() { done <- inv.main(ctx, append([]string{"run"}, args...)) }()
	return done
}

// reviewJob returns inv's running execution, or nil.
func reviewJob(inv *invocation) *actors.Execution {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.job
}

// waitUntil polls ok every 5 ms up to d, failing with what.
func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool, out fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v:\n%s", what, d, out)
		}
		<-time.After(5 * time.Millisecond)
	}
}

// TestRunHTTPAcrossRescales: 'run --http' serves each segment of a
// rescaled job on one listener (keepOpen, whose Close does nothing). At
// the end of the first segment runSegment's deferred shutdown calls
// http.Server.Shutdown, which waits for Serve to return (Go 1.26's
// listenerGroup; the 1 s context does not bound that wait): Serve is in
// Accept on the listener nobody closes, so the rescale never gets to its
// second segment and the job hangs, stopped, for good. (Were Shutdown to
// return, that Serve would go on taking the listener's connections for
// the ended segment's execution.)
func TestRunHTTPAcrossRescales(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	errs := newSyncBuffer()
	inv := &invocation{name: "sluice", stdout: newSyncBuffer(), stderr: errs}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reviewRun(ctx, inv, "test-paced-windows", "--quiet", "--parallelism", "1", "--arg", "n-events=3000000",
		"--arg", "out="+filepath.Join(dir, "out"), "--checkpoints", filepath.Join(dir, "ck"), "--checkpoint-every", "100ms",
		"--http", addr) // never waited for: it hangs
	waitUntil(t, 30*time.Second, "first checkpoint", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "ck", "chk-*", "MANIFEST"))
		return len(m) > 0 && reviewJob(inv) != nil
	}, errs)
	first := reviewJob(inv)
	if err := inv.rescale(2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if x := reviewJob(inv); x != nil && x != first {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtimeStack(buf)]
			t.Fatalf("rescaled to 2, the job with --http has no second segment after 15 s; its output:\n%s\nthe goroutine in Shutdown:\n%s",
				errs, shutdownStack(string(buf)))
		}
		<-time.After(5 * time.Millisecond)
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	stale := 0
	const polls = 40
	for range polls {
		resp, err := hc.Get("http://" + addr + "/v1/job")
		if err != nil {
			t.Fatal(err)
		}
		var v jobView
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		par := 0
		for _, vx := range v.Vertices {
			par = max(par, vx.Parallelism)
		}
		if !v.Running || par != 2 {
			stale++
		}
	}
	if stale > 0 {
		t.Fatalf("after the rescale to 2, %d of %d GET /v1/job were answered by the first segment's server (running false or parallelism 1)", stale, polls)
	}
}

// TestRescaleSignalBetweenSegments: SIGTERM (a node's 'sluice stop', or
// the node's own SIGTERM, stopAll) that comes while a rescale goes from
// one segment to the next, while no execution is set (inv.job nil: the
// next segment is being placed, which on a node waits up to slotWait for
// slots inside sluice.Start), cancels the command instead of leaving it
// stopped at the checkpoint the rescale just took: it exits 143 with
// "context canceled" rather than 75 and "stopped at checkpoint N: run it
// again with --restore".
func TestRescaleSignalBetweenSegments(t *testing.T) {
	dir := t.TempDir()
	errs := newSyncBuffer()
	sigs := make(chan os.Signal, 2)
	inv := &invocation{name: "sluice", stdout: newSyncBuffer(), stderr: errs, signals: sigs, exit: func(int) {}}
	var calls atomic.Int32
	inv.spread = func(ctx context.Context, args []string, opts sluice.Options) (sluice.Options, func(*actors.Execution), func(), error) {
		if calls.Add(1) == 2 { // the rescale's second segment, being placed
			sigs <- syscall.SIGTERM
			<-time.After(300 * time.Millisecond) // a slow placement
		}
		return opts, func(*actors.Execution) {}, func() {}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := reviewRun(ctx, inv, "test-paced-windows", "--quiet", "--parallelism", "1", "--arg", "n-events=3000000",
		"--arg", "out="+filepath.Join(dir, "out"), "--checkpoints", filepath.Join(dir, "ck"), "--checkpoint-every", "100ms")
	waitUntil(t, 30*time.Second, "first checkpoint", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "ck", "chk-*", "MANIFEST"))
		return len(m) > 0 && reviewJob(inv) != nil
	}, errs)
	if err := inv.rescale(2); err != nil {
		t.Fatal(err)
	}
	var code int
	select {
	case code = <-done:
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatalf("the job did not end at SIGTERM:\n%s", errs)
	}
	if code != exitStopped || !strings.Contains(errs.String(), "stopped at checkpoint") {
		t.Fatalf("SIGTERM during the rescale: exit %d, want %d (stopped at the checkpoint the rescale took):\n%s", code, exitStopped, errs)
	}
}

// TestCollectorAddRace: Collector.Add replaces e.j of the entry of
// a rescaled job under the collector's lock, but collect reads e.j
// without it: a scrape of /metrics during a rescale is a data race (run
// with -race).
func TestCollectorAddRace(t *testing.T) {
	if !testenv.Race() {
		t.Skip("a data race: run with -race")
	}
	x := finishedJob(t, "test-explain", nil, 1)
	c := &metrics.Collector{}
	job := metrics.Job{ID: "j-1", Snapshot: x.Snapshot, Running: func() bool { return true }}
	c.Add(job)
	reg := metrics.Registry(c)
	var wg sync.WaitGroup
	wg.Add(2)
	var gathered atomic.Bool
	go func() {
		defer wg.Done()
		for !gathered.Load() {
			c.Add(job) // the next segment of the rescaled job
		}
	}()
	go func() {
		defer wg.Done()
		defer gathered.Store(true)
		for range 50 {
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
}

// TestClusterDrainNoSlotFree: a node drains while the job it has tasks of
// has no slot free elsewhere (the coordinator's one slot is another
// job's): moveOff computes min(parallelism, have+free) = 0 and asks
// rescale(0): 0 passes every check and sets rescaleTo to 0 ("none"), and
// Stop stops the job at a checkpoint: run, finding no rescale, ends the
// job with "stopped at checkpoint" (75), where it should have stayed (and
// been recovered as a lost node's) or been refused with "cannot move off".
func TestClusterDrainNoSlotFree(t *testing.T) {
	skipUnderRace(t)
	dir := t.TempDir()
	a := startNode(t, "", "--slots", "1", "--name", "aa")
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive})
	b := startNode(t, a.gossip, "--slots", "2", "--name", "bb", "--stop-timeout", "2s")
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive, b: membership.Alive})
	// z takes a's one slot (a and b tie at all free; a first by name).
	z := startProcess(t, "submit", "--to", a.http, "test-paced-windows", "--parallelism", "1", "--arg", "n-events=4000000",
		"--arg", "out="+filepath.Join(dir, "z"), "--checkpoints", filepath.Join(dir, "zck"), "--checkpoint-every", "200ms")
	z.waitForFiles(t, filepath.Join(dir, "zck", "chk-*", "MANIFEST"), 1, "a checkpoint of z")
	zid := regexp.MustCompile(`job (\S+) on node`).FindStringSubmatch(z.stderr.String())[1]
	aName := a.members(t)[a.http].Name
	if ran := a.nodesRunning(t, zid); !ran[aName] || len(ran) != 1 {
		t.Fatalf("z runs on %v, want a (%s) alone", ran, aName)
	}
	// x goes to b's two slots.
	x := startProcess(t, "submit", "--to", a.http, "test-paced-windows", "--quiet", "--parallelism", "2", "--arg", "n-events=4000000",
		"--arg", "out="+filepath.Join(dir, "x"), "--checkpoints", filepath.Join(dir, "xck"), "--checkpoint-every", "200ms")
	x.waitForFiles(t, filepath.Join(dir, "xck", "chk-*", "MANIFEST"), 1, "a checkpoint of x")
	xid := regexp.MustCompile(`job (\S+) on node`).FindStringSubmatch(x.stderr.String())[1]
	bName := a.members(t)[b.http].Name
	if ran := taskNodes(t, a, xid); !ran[bName] || len(ran) != 1 {
		t.Fatalf("x's tasks (but its sink) run on %v, want b (%s) alone", ran, bName)
	}
	b.signal(t, syscall.SIGTERM)
	b.wait(t, time.Minute)
	// x had nowhere to go: it says so and goes on (recovered as a lost
	// node's once b has left), rather than stop.
	waitFor(t, x, "the warning that x cannot move", func() bool {
		return strings.Contains(x.stderr.String(), "cannot move off it: the other nodes have no task slot free")
	})
	if strings.Contains(x.stderr.String(), "at parallelism 0") || strings.Contains(x.stderr.String(), "stopped at checkpoint") {
		code := -1
		select {
		case <-x.exited:
			code = x.cmd.ProcessState.ExitCode()
		default:
		}
		t.Fatalf("job x, with no slot free off the draining node, was stopped (exit %d):\n%s\nnode b:\n%s", code, x.stderr.String(), b.stderr.String())
	}
}

// TestClusterDrainSaysDrained: a node sent SIGTERM while a job's tasks run
// on it prints "drained" once they have moved off it (TestClusterRescales
// and TestClusterSpotNotice expect it), unless they moved while Drain
// waited for its gossip to spread (memberlist's UpdateNode waits for the
// broadcast's retransmits, ~400 ms on the ci profile): then parts() is 0
// at its first look and drain returns saying nothing. TestClusterSpotNotice
// fails so about half its runs.
func TestClusterDrainSaysDrained(t *testing.T) {
	skipUnderRace(t)
	dir := t.TempDir()
	a := startNode(t, "")
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive})
	const tries = 2
	for try := range tries {
		b := startNode(t, a.gossip, "--slots", "1")
		waitUntil(t, time.Minute, "the new node alive", func() bool { return a.members(t)[b.http].State == membership.Alive }, b.stderr)
		out, ck := filepath.Join(dir, fmt.Sprint("out", try)), filepath.Join(dir, fmt.Sprint("ck", try))
		sub := startProcess(t, "submit", "--to", a.http, "test-paced-windows", "--quiet", "--parallelism", "2", "--arg", "n-events=3000000",
			"--arg", "out="+out, "--checkpoints", ck, "--checkpoint-every", "50ms")
		sub.waitForFiles(t, filepath.Join(ck, "chk-*", "MANIFEST"), 1, "a checkpoint")
		id := regexp.MustCompile(`job (\S+) on node`).FindStringSubmatch(sub.stderr.String())[1]
		bName := a.members(t)[b.http].Name
		if !a.nodesRunning(t, id)[bName] {
			t.Fatalf("the job does not run on b: %v", a.nodesRunning(t, id))
		}
		b.signal(t, syscall.SIGTERM)
		code := b.wait(t, time.Minute)
		waitFor(t, sub, "the job going on off b", func() bool { return strings.Contains(sub.stderr.String(), "going on from it at parallelism") })
		if code != 0 || !strings.Contains(b.stderr.String(), "drained") {
			t.Fatalf("try %d of %d: node b had its tasks moved off (the job: %q), but exit %d without saying drained:\n%s", try+1, tries,
				regexp.MustCompile(`.*going on from it.*`).FindString(sub.stderr.String()), code, b.stderr.String())
		}
		sub.cmd.Process.Kill()
		<-sub.exited
		if _, err := http.Post("http://"+a.http+"/v1/jobs/"+id+"/cancel", "application/json", nil); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, time.Minute, "b left", func() bool { return a.members(t)[b.http].State == membership.Left }, a.stderr)
	}
}

// TestClusterDrainDuringRescale: a rescale to 3 asked just before the
// third node drains: moveOff's rescale is refused ("a rescale to
// parallelism 3 is under way") and the rescale to 3 goes on, its
// placement excluding the draining node: the job waits for 3 slots that
// the 2 nodes left do not have, up to slotWait (2 min), and then fails,
// though it could have gone on at 2.
func TestClusterDrainDuringRescale(t *testing.T) {
	skipUnderRace(t)
	dir := t.TempDir()
	a := startNode(t, "", "--slots", "1")
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive})
	b := startNode(t, a.gossip, "--slots", "1")
	c := startNode(t, a.gossip, "--slots", "1", "--stop-timeout", "5s")
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive, b: membership.Alive, c: membership.Alive})
	sub := startProcess(t, "submit", "--to", a.http, "test-paced-windows", "--quiet", "--parallelism", "2", "--arg", "n-events=3000000",
		"--arg", "pace=20ms", "--arg", "out="+filepath.Join(dir, "out"), "--checkpoints", filepath.Join(dir, "ck"), "--checkpoint-every", "500ms")
	sub.waitForFiles(t, filepath.Join(dir, "ck", "chk-*", "MANIFEST"), 1, "a checkpoint")
	id := regexp.MustCompile(`job (\S+) on node`).FindStringSubmatch(sub.stderr.String())[1]
	if code, _, stderr := client(t, "rescale", "--to", a.http, id, "3"); code != 0 {
		t.Fatalf("rescale to 3: exit %d:\n%s", code, stderr)
	}
	c.signal(t, syscall.SIGTERM) // while the rescale is under way
	c.wait(t, time.Minute)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(sub.stderr.String(), "going on from it at parallelism 2") {
			return
		}
		<-time.After(100 * time.Millisecond)
	}
	t.Fatalf("15 s after the third node drained and left, the job still waits for 3 slots (it fails after slotWait, 2m):\n%s\nnode c:\n%s", sub.stderr.String(), c.stderr.String())
}

// TestRunHTTPEnds: 'run --http' of a job that ends by itself must
// exit. runSegment serves the job on keepOpen{ln}, whose Close does
// nothing, and its deferred shutdown calls http.Server.Shutdown, which
// (Go 1.26, go.mod's) waits for Serve to return (listenerGroup): Serve is
// blocked in Accept on a listener nobody closes (run closes it only after
// runSegment returns), so the command hangs for good once the job has
// ended, and at every rescale.
func TestRunHTTPEnds(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ended := commandInBackground(context.Background(), "run", "test-paced-windows", "--quiet", "--parallelism", "1",
		"--arg", "n-events=20000", "--arg", "pace=0s", "--arg", "out="+filepath.Join(t.TempDir(), "out"), "--http", addr)
	select {
	case r := <-ended:
		if r.code != 0 {
			t.Fatalf("exit %d:\n%s", r.code, r.stderr)
		}
	case <-time.After(20 * time.Second):
		buf := make([]byte, 1<<20)
		buf = buf[:runtimeStack(buf)]
		t.Fatalf("'run --http %s' of a job of 20000 events has not exited after 20 s; the goroutine in Shutdown:\n%s", addr, shutdownStack(string(buf)))
	}
}

func runtimeStack(buf []byte) int { return runtime.Stack(buf, true) }

// shutdownStack returns the goroutines of stacks in http.Server.Shutdown.
func shutdownStack(stacks string) string {
	var out []string
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "(*Server).Shutdown") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// taskNodes returns the nodes that run instances of job id's vertices but
// its sinks' (which run on the coordinator, outside the slots).
func taskNodes(t *testing.T, n *testNode, id string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, v := range n.jobStats(t, id).Vertices {
		if strings.HasSuffix(v.Name, "sink") {
			continue
		}
		for _, in := range v.Instances {
			if in.Node != "" && !in.Done {
				out[in.Node] = true
			}
		}
	}
	return out
}
