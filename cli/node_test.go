package cli

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/membership"
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

func startNode(t *testing.T, join string) *testNode {
	t.Helper()
	base := nodeBase(t)
	host, p, _ := net.SplitHostPort(base)
	port, _ := strconv.Atoi(p)
	n := &testNode{base: base, gossip: net.JoinHostPort(host, strconv.Itoa(port+1)), http: net.JoinHostPort(host, strconv.Itoa(port+3))}
	args := []string{"node", "--listen", base, "--profile", "ci", "--slots", "2"}
	if join != "" {
		args = append(args, "--join", join)
	}
	n.process = startProcess(t, args...)
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
	if !strings.Contains(a.stderr.String(), "came back after it was found dead: told it to exit (its jobs events-windows-1 run here)") {
		t.Errorf("node a's stderr does not say it fenced b:\n%s", a.stderr.String())
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
