package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/membership"
	"github.com/sluice-data/sluice/metrics"
)

// skipUnderRace skips the cluster tests under the race detector: their
// W3 jobs on three real nodes and a frozen node's 30 s lease take minutes
// there. scripts/test.sh runs them without it, one after the other; the
// node's own code runs under it in TestNodeInProcess.
func skipUnderRace(t *testing.T) {
	t.Helper()
	if testenv.Race() {
		t.Skip("the cluster tests run without -race (scripts/test.sh): minutes under it")
	}
}

// nodeBase returns a loopback base address whose port and the three after
// it (gossip TCP and UDP, data, HTTP) were free a moment ago.
func nodeBase(t *testing.T) string {
	t.Helper()
	for range 100 {
		base := 20000 + rand.IntN(40000)
		free := true
		for off := range 4 {
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(base+off))
			l, err := net.Listen("tcp", addr)
			if err != nil {
				free = false
				break
			}
			l.Close()
			if off == 1 {
				u, err := net.ListenPacket("udp", addr)
				if err != nil {
					free = false
					break
				}
				u.Close()
			}
		}
		if free {
			return net.JoinHostPort("127.0.0.1", strconv.Itoa(base))
		}
	}
	t.Fatal("no four free ports in a row")
	return ""
}

// testNode is a real sluice node process.
type testNode struct {
	*process
	base, gossip, http string
}

func startNode(t *testing.T, join string, flags ...string) *testNode {
	t.Helper()
	base := nodeBase(t)
	host, p, _ := net.SplitHostPort(base)
	port, _ := strconv.Atoi(p)
	n := &testNode{base: base, gossip: net.JoinHostPort(host, strconv.Itoa(port+1)), http: net.JoinHostPort(host, strconv.Itoa(port+3))}
	args := []string{"node", "--listen", base, "--profile", "ci", "--slots", "2"}
	if join != "" {
		args = append(args, "--join", join)
	}
	n.process = startProcess(t, append(args, flags...)...)
	return n
}

// members returns the members node n sees, by the name each was given
// (before its incarnation), or nil while it does not answer yet.
func (n *testNode) members(t *testing.T) map[string]membership.Member {
	t.Helper()
	resp, err := http.Get("http://" + n.http + "/v1/nodes")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var rep nodesReply
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatalf("GET /v1/nodes: %v", err)
	}
	out := map[string]membership.Member{}
	for _, m := range rep.Members {
		out[m.Meta.HTTP] = m
	}
	return out
}

// waitMembers waits, 60 s at most, until n sees each node of want (by
// HTTP address) in its state.
func (n *testNode) waitMembers(t *testing.T, want map[*testNode]membership.State) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := n.members(t)
		ok := got != nil && len(got) == len(want)
		for w, st := range want {
			ok = ok && got[w.http].State == st
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s sees %v, want %d members in their states; stderr:\n%s", n.http, got, len(want), n.stderr.String())
		}
		select {
		case <-n.exited:
			t.Fatalf("node %s exited:\n%s", n.http, n.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// jobs returns the jobs node n runs and ran.
func (n *testNode) jobs(t *testing.T) []nodeJob {
	t.Helper()
	resp, err := http.Get("http://" + n.http + "/v1/jobs")
	if err != nil {
		t.Fatalf("GET /v1/jobs of %s: %v", n.http, err)
	}
	defer resp.Body.Close()
	var js []nodeJob
	if err := json.NewDecoder(resp.Body).Decode(&js); err != nil {
		t.Fatal(err)
	}
	return js
}

// client runs a client command of the real binary and returns its status
// and output.
func client(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	p := startProcess(t, args...)
	code := p.wait(t, 3*time.Minute)
	return code, p.stdout.String(), p.stderr.String()
}

// TestCommandNodes: three real sluice node processes gossip on loopback.
// A job submitted to one runs there and writes what 'run' writes; one
// savepointed through its node ('savepoint take --to') and then stopped
// with 'sluice stop' exits 75 at a final checkpoint and, submitted
// again to another node with --restore latest, finishes with the output of
// a run never stopped. A node killed with SIGKILL while it runs a job that
// checkpoints is found dead and the job resumed on another node from its
// latest checkpoint, with the output of a run never interrupted; a node
// sent SIGTERM leaves (exit 0) and is seen as left.
func TestCommandNodes(t *testing.T) {
	skipUnderRace(t)
	a := startNode(t, "")
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive})
	b, c := startNode(t, a.gossip), startNode(t, a.gossip)
	all := map[*testNode]membership.State{a: membership.Alive, b: membership.Alive, c: membership.Alive}
	for _, n := range []*testNode{a, b, c} {
		n.waitMembers(t, all)
	}
	code, stdout, stderr := client(t, "nodes", "--to", a.http)
	if code != 0 || strings.Count(stdout, " alive ") != 3 || !strings.Contains(stdout, "(this node)") {
		t.Fatalf("nodes: exit %d:\n%s%s", code, stdout, stderr)
	}

	dir := t.TempDir()
	events := "n-events=2000000"
	clean := filepath.Join(dir, "clean")
	if code, _, stderr := command(context.Background(), false, "run", "events-windows", "--quiet", "--parallelism", "2",
		"--arg", events, "--arg", "out="+clean); code != 0 {
		t.Fatalf("clean run: exit %d:\n%s", code, stderr)
	}
	out := filepath.Join(dir, "out")
	code, _, stderr = client(t, "submit", "--to", b.http, "events-windows", "--parallelism", "2", "--arg", events, "--arg", "out="+out)
	if code != 0 || !strings.Contains(stderr, "job events-windows-1 on node ") || !strings.Contains(stderr, "elapsed ") {
		t.Fatalf("submit: exit %d, want 0 with the job's ID and summary:\n%s", code, stderr)
	}
	sameUserWindows(t, out, clean)
	if code, stdout, _ := client(t, "status", "--to", b.http, "events-windows-1"); code != 0 || !strings.Contains(stdout, "ended  0") {
		t.Fatalf("status: exit %d:\n%s", code, stdout)
	}
	// The node's /metrics, after the job's end, holds the summary's counts.
	fams := scrape(t, "http://"+b.http+"/metrics")
	rows := summaryRecords(t, stderr)
	for stage, n := range rows {
		if v, ok := sample(fams, "sluice_stage_records_total", map[string]string{"job_id": "events-windows-1", "stage": stage}); !ok || v != float64(n) {
			t.Errorf("sluice_stage_records_total for %s: %v (found %v), the summary says %d", stage, v, ok, n)
		}
	}
	if v, ok := sample(fams, "sluice_job_running", map[string]string{"job_id": "events-windows-1"}); !ok || v != 0 {
		t.Errorf("sluice_job_running after the end: %v (found %v)", v, ok)
	}

	// Stopped at a final checkpoint on c, restored on a.
	ck, stopped := filepath.Join(dir, "ck"), filepath.Join(dir, "stopped")
	job := []string{"events-windows", "--quiet", "--parallelism", "2", "--arg", "n-events=20000000", "--arg", "out=" + stopped,
		"--checkpoints", ck, "--checkpoint-every", "1m"}
	sub := startProcess(t, append([]string{"submit", "--to", c.http}, job...)...)
	sub.waitForFiles(t, filepath.Join(stopped, "_sluice", "lease", "*"), 1, "the output's lease (its sinks open)")
	if code, stdout, stderr := client(t, "savepoint", "take", "--to", c.http, "events-windows-1", "before-stop"); code != 0 ||
		!strings.Contains(stdout, `savepoint "before-stop": checkpoint `) {
		t.Fatalf("savepoint take --to: exit %d:\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := client(t, "savepoint", "list", ck); code != 0 || !strings.Contains(stdout, "before-stop") {
		t.Fatalf("savepoint list: exit %d:\n%s%s", code, stdout, stderr)
	}
	if code, stdout, _ := client(t, "status", "--to", c.http); code != 0 || !strings.Contains(stdout, "events-windows-1  running") {
		t.Fatalf("status while it runs: exit %d:\n%s", code, stdout)
	}
	if code, _, stderr := client(t, "stop", "--to", c.http, "events-windows-1"); code != 0 {
		t.Fatalf("stop: exit %d:\n%s", code, stderr)
	}
	if code := sub.wait(t, 2*time.Minute); code != exitStopped {
		t.Fatalf("the stopped submission: exit %d, want %d:\n%s", code, exitStopped, sub.stderr.String())
	}
	if code, _, stderr := client(t, append([]string{"submit", "--to", a.http}, append(job, "--restore", "latest")...)...); code != 0 {
		t.Fatalf("submitted again with --restore latest: exit %d:\n%s", code, stderr)
	}
	if code, _, stderr := command(context.Background(), false, "run", "events-windows", "--quiet", "--parallelism", "2",
		"--arg", "n-events=20000000", "--arg", "out="+clean+"2"); code != 0 {
		t.Fatalf("clean run: exit %d:\n%s", code, stderr)
	}
	sameUserWindows(t, stopped, clean+"2")

	// Mistakes: found by the client, or named by the node.
	if code, _, stderr := client(t, "submit", "--to", a.http, "no-such-job"); code != exitUsage || !strings.Contains(stderr, `unknown job "no-such-job"`) {
		t.Errorf("submit of an unknown job: exit %d:\n%s", code, stderr)
	}
	if code, _, stderr := client(t, "status", "--to", a.http, "nope-1"); code != exitUsage || !strings.Contains(stderr, `has no job "nope-1"`) {
		t.Errorf("status of no job: exit %d:\n%s", code, stderr)
	}
	if code, _, stderr := client(t, "nodes"); code != exitUsage || !strings.Contains(stderr, "missing --to") {
		t.Errorf("nodes without --to: exit %d:\n%s", code, stderr)
	}

	// Failover: c runs a job that checkpoints and is killed with SIGKILL;
	// the first live node by name resumes the job from its latest
	// checkpoint, with the output of a run never interrupted.
	ck2, resumed := filepath.Join(dir, "ck2"), filepath.Join(dir, "resumed")
	sub = startProcess(t, "submit", "--to", c.http, "events-windows", "--quiet", "--parallelism", "2", "--arg", "n-events=20000000",
		"--arg", "out="+resumed, "--checkpoints", ck2, "--checkpoint-every", "100ms")
	sub.waitForFiles(t, filepath.Join(ck2, "chk-*", "MANIFEST"), 2, "two checkpoints")
	killed := time.Now()
	c.signal(t, syscall.SIGKILL)
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive, b: membership.Alive, c: membership.Dead})
	detected := time.Since(killed)
	if code := sub.wait(t, time.Minute); code != exitFailed || !strings.Contains(sub.stderr.String(), "resumes a job run with --checkpoints") {
		t.Errorf("the submission to the killed node: exit %d:\n%s", code, sub.stderr.String())
	}
	var took nodeJob
	var by *testNode
	for deadline := time.Now().Add(2 * time.Minute); took.Ended == nil; {
		for _, n := range []*testNode{a, b} {
			for _, j := range n.jobs(t) {
				if strings.HasSuffix(j.Resumes, "/events-windows-2") {
					took, by = j, n
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no node resumed and ended c's job within 2 minutes (%+v):\n%s\n%s", took, a.stderr.String(), b.stderr.String())
		}
		<-time.After(50 * time.Millisecond)
	}
	t.Logf("node a found c dead %v after SIGKILL (profile ci); node %s resumed its job %v after the kill",
		detected.Round(time.Millisecond), by.http, took.Started.Sub(killed).Round(time.Millisecond))
	if took.Exit != 0 || !strings.Contains(by.stderr.String(), "from its latest checkpoint") {
		t.Fatalf("the resumed job: exit %d:\n%s", took.Exit, by.stderr.String())
	}
	sameUserWindows(t, resumed, clean+"2")
	b.signal(t, syscall.SIGTERM)
	if code := b.wait(t, time.Minute); code != 0 {
		t.Fatalf("node b after SIGTERM: exit %d:\n%s", code, b.stderr.String())
	}
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive, b: membership.Left, c: membership.Dead})
	if s := b.stderr.String(); !strings.Contains(s, "left the cluster") {
		t.Errorf("node b's stderr:\n%s", s)
	}
}

// summaryRecords returns the records column of a summary's stage table,
// by stage.
func summaryRecords(t *testing.T, summary string) map[string]int64 {
	t.Helper()
	row := regexp.MustCompile(`^(\S.*?)\s{2,}v\d+\s+\d+\s+(\d+)\s`)
	out := map[string]int64{}
	in := false
	for _, line := range strings.Split(summary, "\n") {
		switch {
		case strings.HasPrefix(line, "STAGE "):
			in = true
		case line == "":
			in = false
		case in:
			if m := row.FindStringSubmatch(line); m != nil {
				n, _ := strconv.ParseInt(m[2], 10, 64)
				out[m[1]] = n
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no stage table in the summary:\n%s", summary)
	}
	return out
}

// TestCommandNodeFrozen: a node frozen with SIGSTOP while it runs a job
// that checkpoints is found dead and its job resumed on the other node,
// which waits for the frozen process's output lease to expire; woken with
// SIGCONT, the frozen node refutes its death and the node that resumed the
// job tells it to exit, which it does at once (its job's staged files are
// the resumed run's to take over). The resumed job writes the output of a
// run never interrupted.
func TestCommandNodeFrozen(t *testing.T) {
	skipUnderRace(t)
	a := startNode(t, "")
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive})
	b := startNode(t, a.gossip)
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive, b: membership.Alive})
	b.waitMembers(t, map[*testNode]membership.State{a: membership.Alive, b: membership.Alive})
	dir := t.TempDir()
	ck, out := filepath.Join(dir, "ck"), filepath.Join(dir, "out")
	sub := startProcess(t, "submit", "--to", b.http, "events-windows", "--quiet", "--parallelism", "2", "--arg", "n-events=20000000",
		"--arg", "out="+out, "--checkpoints", ck, "--checkpoint-every", "100ms")
	sub.waitForFiles(t, filepath.Join(ck, "chk-*", "MANIFEST"), 2, "two checkpoints")
	b.signal(t, syscall.SIGSTOP)
	frozen := time.Now()
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive, b: membership.Dead})
	var resumed nodeJob
	for deadline := time.Now().Add(time.Minute); resumed.ID == ""; {
		for _, j := range a.jobs(t) {
			if strings.HasSuffix(j.Resumes, "/events-windows-1") {
				resumed = j
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node a did not resume b's job:\n%s", a.stderr.String())
		}
		<-time.After(20 * time.Millisecond)
	}
	t.Logf("b frozen; a found it dead and resumed its job %v after", resumed.Started.Sub(frozen).Round(time.Millisecond))
	b.signal(t, syscall.SIGCONT)
	if code := b.wait(t, time.Minute); code != exitFailed || !strings.Contains(b.stderr.String(), "was found dead by the cluster") {
		t.Fatalf("node b after SIGCONT: exit %d, want %d, fenced:\n%s", code, exitFailed, b.stderr.String())
	}
	// a says so once it has b's reply, which may come after b has exited.
	fencedB := "came back after it was found dead: told it to exit (its jobs events-windows-1 run here)"
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(a.stderr.String(), fencedB); {
		if time.Now().After(deadline) {
			t.Fatalf("node a's stderr does not say it fenced b:\n%s", a.stderr.String())
		}
		<-time.After(10 * time.Millisecond) // polling a condition, within the deadline
	}
	for deadline := time.Now().Add(3 * time.Minute); ; {
		var j nodeJob
		for _, x := range a.jobs(t) {
			if x.ID == resumed.ID {
				j = x
			}
		}
		if j.State == "ended" {
			if j.Exit != 0 {
				t.Fatalf("the resumed job: exit %d:\n%s", j.Exit, a.stderr.String())
			}
			t.Logf("the resumed job ended %v after b was frozen", j.Ended.Sub(frozen).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the resumed job did not end within 3 minutes:\n%s", a.stderr.String())
		}
		<-time.After(50 * time.Millisecond)
	}
	clean := filepath.Join(dir, "clean")
	if code, _, stderr := command(context.Background(), false, "run", "events-windows", "--quiet", "--parallelism", "2",
		"--arg", "n-events=20000000", "--arg", "out="+clean); code != 0 {
		t.Fatalf("clean run: exit %d:\n%s", code, stderr)
	}
	sameUserWindows(t, out, clean)
}

// TestNodeInProcess: a node run in this process (so that the race
// detector sees its goroutines): a job submitted over its API streams its
// summary and exit status; a bad submission is a 400 naming what is
// wrong, an unknown job a 404; /metrics holds the job; the node leaves
// when its context ends.
func TestNodeInProcess(t *testing.T) {
	base := nodeBase(t)
	host, p, _ := net.SplitHostPort(base)
	port, _ := strconv.Atoi(p)
	api := "http://" + net.JoinHostPort(host, strconv.Itoa(port+3))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan string, 1)
	go func() {
		_, _, stderr := command(ctx, false, "node", "--listen", base, "--profile", "ci")
		done <- stderr
	}()
	testenv.WaitFor(t, "the node's API", 30*time.Second, func() bool {
		resp, err := http.Get(api + "/v1/nodes")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	resp, err := http.Post(api+"/v1/jobs", "application/json", strings.NewReader(`{"args": ["sum-by-key", "--arg", "rows=20000"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var frames []frame
	dec := json.NewDecoder(resp.Body)
	for {
		var f frame
		if err := dec.Decode(&f); err != nil {
			break
		}
		frames = append(frames, f)
	}
	resp.Body.Close()
	if len(frames) < 2 || frames[0].Job != "sum-by-key-1" || frames[len(frames)-1].Exit == nil || *frames[len(frames)-1].Exit != 0 {
		t.Fatalf("the job's stream: %+v", frames)
	}
	var summary strings.Builder
	for _, f := range frames {
		summary.WriteString(f.Err)
	}
	if !strings.Contains(summary.String(), "elapsed ") {
		t.Errorf("no summary in the stream:\n%s", summary.String())
	}
	// Flags may come before the job's name, as for run.
	resp, err = http.Post(api+"/v1/jobs", "application/json", strings.NewReader(`{"args": ["--quiet", "sum-by-key", "--arg", "rows=1000"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var first frame
	err = json.NewDecoder(resp.Body).Decode(&first)
	resp.Body.Close()
	if err != nil || first.Job != "sum-by-key-2" {
		t.Errorf("a job with flags before its name: first frame %+v (%v), want the ID sum-by-key-2", first, err)
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/v1/jobs", `{"args": []}`, http.StatusBadRequest, "no job"},
		{"POST", "/v1/jobs", `{"args": `, http.StatusBadRequest, "the request"},
		{"POST", "/v1/jobs", `{"args": ["sum-by-key"], "build": "other"}`, http.StatusConflict, "the client is build other"},
		{"GET", "/v1/jobs/nope-1", "", http.StatusNotFound, `has no job "nope-1"`},
		{"POST", "/v1/jobs/nope-1/stop", "", http.StatusNotFound, `has no job "nope-1"`},
		{"GET", "/v1/nothing", "", http.StatusNotFound, "no endpoint GET /v1/nothing"},
	} {
		req, _ := http.NewRequest(tc.method, api+tc.path, strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e apiError
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s %s: %d %q, want %d with %q", tc.method, tc.path, resp.StatusCode, e.Error, tc.code, tc.want)
		}
	}
	fams := scrape(t, api+"/metrics")
	if v, ok := sample(fams, "sluice_stage_records_total", map[string]string{"job_id": "sum-by-key-1", "stage": `source "generator"`}); !ok || v != 20000 {
		t.Errorf("sluice_stage_records_total of the source: %v (found %v), want 20000", v, ok)
	}
	cancel()
	select {
	case stderr := <-done:
		if !strings.Contains(stderr, "left the cluster") {
			t.Errorf("the node's stderr:\n%s", stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not end within 30 s of its context")
	}
}

// failingWriter fails every write, as a response to a client gone does.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// TestFrameStreamClientGone: a client whose connection fails holds no job
// up: once drain has stopped on the failed write, the job may write past
// the queue's room and its end (close) still returns.
func TestFrameStreamClientGone(t *testing.T) {
	s := newFrameStream(failingWriter{}, nil)
	s.send(frame{Job: "j-1"})
	s.drain(context.Background()) // the write fails: it returns
	for range 2 * cap(s.q) {
		s.send(frame{Err: "a line\n"})
	}
	closed := make(chan struct{})
	go func() {
		s.close(0)
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close blocked for 10 s on a stream whose client is gone")
	}
}

// TestFrameStreamDropped: past the queue's room lines are dropped, and the
// stream says how many before the exit status.
func TestFrameStreamDropped(t *testing.T) {
	var b strings.Builder
	s := newFrameStream(&b, nil)
	s.send(frame{Job: "j-1"})
	for range cap(s.q) + 9 {
		s.send(frame{Err: "a line\n"})
	}
	go s.close(3)
	s.drain(context.Background())
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if n := len(lines); n != cap(s.q)+2 ||
		lines[n-2] != `{"err":"sluice: node: 10 lines of output dropped: the client read too slowly\n"}` || lines[n-1] != `{"exit":3}` {
		t.Fatalf("%d lines, ending %q", len(lines), lines[max(0, len(lines)-2):])
	}
}

// newNodeServer returns a node's server in this process, with a
// membership of its own (no HTTP API served) named name, joining join.
func newNodeServer(t *testing.T, name string, join ...string) *nodeServer {
	t.Helper()
	m := startMember(t, name, "", join...)
	c := &invocation{name: "sluice", stdout: io.Discard, stderr: newSyncBuffer()}
	return &nodeServer{c: c, m: m, build: "test", jobs: map[string]*nodeJob{}, ctx: context.Background(), metrics: &metrics.Collector{},
		peers: peers{jobs: map[string][]nodeJob{}, taken: map[string]bool{}}}
}

// startMember starts a membership node named name on a free loopback
// port, its HTTP API said to be at api, joining join.
func startMember(t *testing.T, name, api string, join ...string) *membership.Node {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	m, err := membership.Start(membership.Config{Name: name, Gossip: addr, Join: join, Profile: "ci", Meta: membership.Meta{Build: "test", HTTP: api}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return m
}

// TestNodeJobSeenAsItStarts: a job is read by the API's handlers (here
// the job list, as the other nodes poll it) from the moment it is listed,
// while the node starts it.
func TestNodeJobSeenAsItStarts(t *testing.T) {
	n := newNodeServer(t, "a")
	seen := make(chan struct{})
	go func() {
		defer close(seen)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			rec := httptest.NewRecorder()
			n.listJobs(rec, httptest.NewRequest(http.MethodGet, "/v1/jobs", nil))
			if strings.Contains(rec.Body.String(), "sum-by-key-1") {
				return
			}
		}
	}()
	n.start([]string{"sum-by-key", "--arg", "rows=10"}, newFrameStream(io.Discard, nil), "")
	<-seen
	if !n.waitAll(30 * time.Second) {
		t.Fatal("the job did not end within 30 s")
	}
}

// TestSubmitStopBeforeID: a signal that comes before the node has named
// the job (the client's context is done as the stream starts) stops the
// job once its ID arrives, as one that comes after does.
func TestSubmitStopBeforeID(t *testing.T) {
	stops := make(chan string, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(w)
		enc.Encode(frame{Job: "sum-by-key-1", Node: "a"})
		w.(http.Flusher).Flush()
		code := 0
		select {
		case <-stops:
			code = exitStopped
		case <-time.After(10 * time.Second): // the test fails
		}
		enc.Encode(frame{Exit: &code})
	})
	mux.HandleFunc("POST /v1/jobs/{id}/stop", func(w http.ResponseWriter, r *http.Request) {
		stops <- r.PathValue("id")
		writeJSON(w, http.StatusOK, nodeJob{ID: r.PathValue("id"), State: "running"})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for i := range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the signal has come
		code, _, stderr := command(ctx, false, "submit", "--to", srv.URL, "sum-by-key", "--arg", "rows=10")
		if code != exitStopped {
			t.Fatalf("submission %d: exit %d, want %d (the job stopped); stderr:\n%s", i, code, exitStopped, stderr)
		}
	}
}

// TestNodeStoppingRefusesJobs: once the node has begun to stop (SIGTERM:
// its jobs are asked to stop, then it leaves), it takes no new job, which
// nothing would stop and which would die with the node: a submission is a
// 503.
func TestNodeStoppingRefusesJobs(t *testing.T) {
	n := newNodeServer(t, "a")
	if running := n.stopAll(); running != 0 {
		t.Fatalf("%d jobs running", running)
	}
	rec := httptest.NewRecorder()
	n.submit(rec, httptest.NewRequest(http.MethodPost, "/v1/jobs", strings.NewReader(`{"args": ["sum-by-key", "--arg", "rows=10"]}`)))
	n.waitAll(30 * time.Second)
	var e apiError
	_ = json.NewDecoder(rec.Body).Decode(&e)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(e.Error, "stopping") {
		t.Fatalf("a submission to a node that stops: %d %q, want 503 saying it stops", rec.Code, e.Error)
	}
	if len(n.jobs) != 0 {
		t.Fatalf("the node took the job: %v", n.jobs)
	}
}

// waitState waits, 30 s at most, until n sees member m in state st.
func waitState(t *testing.T, n *nodeServer, m *membership.Node, st membership.State) membership.Member {
	t.Helper()
	var got membership.Member
	testenv.WaitFor(t, fmt.Sprintf("%s seeing %s %s", n.m.Name(), m.Name(), st), 30*time.Second, func() bool {
		for _, x := range n.m.Members() {
			if x.Name == m.Name() {
				got = x
			}
		}
		return got.State == st
	})
	return got
}

// resumed returns the jobs of other nodes that n resumed (Resumes).
func resumed(n *nodeServer) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var keys []string
	for _, j := range n.jobs {
		keys = append(keys, j.Resumes)
	}
	slices.Sort(keys)
	return keys
}

// TestFailoverAfterSuccessorDied: node a dies while b, the first live
// node by name, is alive: c leaves a's jobs to b. b dies before it has
// resumed one of them: c, now the first, resumes b's jobs and a's that no
// node runs, but not a's job that e took over (e lists it as resumed), not
// even when a's death is reported again (a came back and was fenced).
func TestFailoverAfterSuccessorDied(t *testing.T) {
	a := startMember(t, "a", "")
	b := startMember(t, "b", "", a.Members()[0].Gossip)
	n := newNodeServer(t, "c", a.Members()[0].Gossip)
	e := startMember(t, "e", "", a.Members()[0].Gossip)
	for _, m := range []*membership.Node{a, b, e} {
		waitState(t, n, m, membership.Alive)
	}
	ck := filepath.Join(t.TempDir(), "ck")
	job := func(id, resumes string) nodeJob {
		return nodeJob{ID: id, Args: []string{"sum-by-key", "--arg", "rows=10", "--checkpoints", ck + "-" + id}, State: "running", Resumes: resumes}
	}
	n.peers.jobs[a.Name()] = []nodeJob{job("sum-by-key-1", ""), job("sum-by-key-2", "")}
	n.peers.jobs[b.Name()] = []nodeJob{job("sum-by-key-3", "")}
	n.peers.jobs[e.Name()] = []nodeJob{job("sum-by-key-4", a.Name()+"/sum-by-key-1")}
	ctx := context.Background()

	a.Shutdown()
	deadA := waitState(t, n, a, membership.Dead)
	n.failover(ctx, deadA)
	if got := resumed(n); len(got) != 0 {
		t.Fatalf("a died while b lives: c resumed %v, want none (b's to resume)", got)
	}
	b.Shutdown()
	n.failover(ctx, waitState(t, n, b, membership.Dead))
	n.failover(ctx, deadA) // again
	if !n.waitAll(30 * time.Second) {
		t.Fatal("the resumed jobs did not end within 30 s")
	}
	want := []string{a.Name() + "/sum-by-key-2", b.Name() + "/sum-by-key-3"}
	if got := resumed(n); !slices.Equal(got, want) {
		t.Fatalf("c resumed %v, want %v", got, want)
	}
}

// TestPeerJobsNewestKept: a node's jobs are never dropped from its list
// and an ended job never runs again, so what a node heard of another's
// jobs keeps every job and its end, whatever order a poll's reply and an
// announcement arrive in: a reply that left the peer before it announced
// a job does not make the job unknown (not resumed if the peer dies), and
// an announcement made before a job ended does not make it run again
// (resumed though it ended: stopped, cancelled or done).
func TestPeerJobsNewestKept(t *testing.T) {
	now := time.Now()
	running := func(id string) nodeJob {
		return nodeJob{ID: id, Args: []string{"sum-by-key"}, State: "running", Started: now}
	}
	ended := func(id string) nodeJob {
		j := running(id)
		j.State, j.Exit, j.Ended = "ended", exitStopped, &now
		return j
	}
	polled := make(chan []nodeJob, 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, <-polled)
	}))
	defer api.Close()
	n := newNodeServer(t, "c")
	a := startMember(t, "a", strings.TrimPrefix(api.URL, "http://"), n.m.Members()[0].Gossip)
	waitState(t, n, a, membership.Alive)
	announce := func(js ...nodeJob) {
		body, _ := json.Marshal(peerJobs{Node: a.Name(), Jobs: js})
		rec := httptest.NewRecorder()
		n.peerJobs(rec, httptest.NewRequest(http.MethodPost, "/v1/cluster/jobs", strings.NewReader(string(body))))
		if rec.Code != http.StatusOK {
			t.Fatalf("POST /v1/cluster/jobs: %d %s", rec.Code, rec.Body)
		}
	}
	known := func() map[string]string {
		n.peers.mu.Lock()
		defer n.peers.mu.Unlock()
		got := map[string]string{}
		for _, j := range n.peers.jobs[a.Name()] {
			got[j.ID] = j.State
		}
		return got
	}
	announce(running("j-1"), running("j-2"))
	polled <- []nodeJob{running("j-1")} // left a before j-2 was announced
	n.pollPeers(context.Background())
	if got, want := known(), map[string]string{"j-1": "running", "j-2": "running"}; !maps.Equal(got, want) {
		t.Fatalf("after an announcement and an older poll's reply: %v, want %v", got, want)
	}
	polled <- []nodeJob{ended("j-1"), running("j-2")}
	n.pollPeers(context.Background())
	announce(running("j-1"), running("j-2"), running("j-3")) // made before j-1 ended
	if got, want := known(), map[string]string{"j-1": "ended", "j-2": "running", "j-3": "running"}; !maps.Equal(got, want) {
		t.Fatalf("after a poll and an older announcement: %v, want %v", got, want)
	}
}

// TestFlagValue: a node reads a job's --checkpoints (to announce it, and
// to resume it from there) as run parses its command line.
func TestFlagValue(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sum-by-key", "--checkpoints", "/ck"}, "/ck"},
		{[]string{"sum-by-key", "-checkpoints", "/ck"}, "/ck"},
		{[]string{"sum-by-key", "--checkpoints=/ck"}, "/ck"},
		{[]string{"-checkpoints=/ck", "sum-by-key"}, "/ck"},
		{[]string{"--quiet", "--checkpoints", "/ck", "sum-by-key"}, "/ck"},
		{[]string{"sum-by-key", "--arg", "checkpoints=/x"}, ""},
		{[]string{"sum-by-key"}, ""},
		// Given twice (a base command line and an override): the last.
		{[]string{"sum-by-key", "--checkpoints", "/old", "--arg", "rows=10", "--checkpoints", "/new"}, "/new"},
		{[]string{"--checkpoints=/old", "sum-by-key", "--checkpoints=/new"}, "/new"},
	} {
		if got := flagValue(tc.args, "checkpoints"); got != tc.want {
			t.Errorf("flagValue(%q): %q, want %q", tc.args, got, tc.want)
		}
		// As run reads it.
		fs, f := (&invocation{name: "sluice", stdout: io.Discard, stderr: io.Discard}).runFlags()
		if _, code := (&invocation{name: "sluice", stdout: io.Discard, stderr: io.Discard}).parseJob(fs, tc.args); code >= 0 || f.checkpoints != tc.want {
			t.Errorf("run %q: --checkpoints %q (code %d), the test wants %q", tc.args, f.checkpoints, code, tc.want)
		}
	}
}

// TestFenceOnlyWhatWasResumed: a node found dead whose job did not
// checkpoint is not resumed (it is left to its user), so when that node
// comes back (it was frozen) nothing runs its job elsewhere and it is not
// told to exit; one whose job was resumed is.
func TestFenceOnlyWhatWasResumed(t *testing.T) {
	fenced := make(chan fenceRequest, 2)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req fenceRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		fenced <- req
		writeJSON(w, http.StatusOK, struct{}{})
	}))
	defer api.Close()
	n := newNodeServer(t, "c")
	ctx := context.Background()
	plain := nodeJob{ID: "sum-by-key-1", Args: []string{"sum-by-key", "--arg", "rows=10"}, State: "running"}
	n.peers.jobs["x-1"] = []nodeJob{plain}
	n.failover(ctx, membership.Member{Name: "x-1", State: membership.Dead})
	n.fence(ctx, membership.Member{Name: "x-1", State: membership.Alive, Meta: membership.Meta{HTTP: strings.TrimPrefix(api.URL, "http://")}})
	select {
	case req := <-fenced:
		t.Fatalf("node x-1, whose job did not checkpoint and was not resumed, was fenced: %+v", req)
	default:
	}
	resumable := nodeJob{ID: "sum-by-key-2", Args: []string{"sum-by-key", "--arg", "rows=10", "--checkpoints", filepath.Join(t.TempDir(), "ck")},
		State: "running"}
	n.peers.jobs["y-1"] = []nodeJob{plain, resumable}
	n.failover(ctx, membership.Member{Name: "y-1", State: membership.Dead})
	n.fence(ctx, membership.Member{Name: "y-1", State: membership.Alive, Meta: membership.Meta{HTTP: strings.TrimPrefix(api.URL, "http://")}})
	n.waitAll(30 * time.Second)
	select {
	case req := <-fenced:
		if req.By != n.m.Name() || !slices.Equal(req.Jobs, []string{"sum-by-key-2"}) {
			t.Fatalf("fenced %+v", req)
		}
	default:
		t.Fatal("node y-1, whose job was resumed, was not fenced")
	}
}

// TestStopAskedOnce: a job is asked to stop once, however often: by its
// user (a retried POST .../stop) and then by the node's own stop
// (SIGTERM). A second signal would tell the job to exit at once, as a
// second SIGTERM tells run: cancelled, its sinks aborted, rather than
// stopped at a final checkpoint.
func TestStopAskedOnce(t *testing.T) {
	n := newNodeServer(t, "a")
	j := &nodeJob{ID: "sum-by-key-1", State: "running", sigs: make(chan os.Signal, 2), cancel: func() {}, done: make(chan struct{})}
	n.jobs[j.ID] = j
	for range 2 {
		req := httptest.NewRequest(http.MethodPost, "/v1/jobs/sum-by-key-1/stop", nil)
		req.SetPathValue("id", j.ID)
		rec := httptest.NewRecorder()
		n.stopJob(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("POST .../stop: %d %s", rec.Code, rec.Body)
		}
	}
	if running := n.stopAll(); running != 1 {
		t.Fatalf("stopAll: %d running, want 1", running)
	}
	if len(j.sigs) != 1 {
		t.Fatalf("the job was sent %d signals, want 1", len(j.sigs))
	}
}
