package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/examples"
	"github.com/sluice-data/sluice/membership"
	"github.com/sluice-data/sluice/stages"
)

var clusterSeeds = flag.Int("cluster.seeds", 6, "TestClusterNodeKilled: how many seeded rounds (the last freezes a node with SIGSTOP, the others SIGKILL one)")
var clusterSeed = flag.Uint64("cluster.seed", 0, "TestClusterNodeKilled: the first seed (0: 1)")

// threeNodes starts three real nodes joined on loopback, with flags, and
// waits until each sees the others alive.
func threeNodes(t *testing.T, flags ...string) []*testNode {
	t.Helper()
	a := startNode(t, "", flags...)
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive})
	b, c := startNode(t, a.gossip, flags...), startNode(t, a.gossip, flags...)
	all := map[*testNode]membership.State{a: membership.Alive, b: membership.Alive, c: membership.Alive}
	for _, n := range []*testNode{a, b, c} {
		n.waitMembers(t, all)
	}
	return []*testNode{a, b, c}
}

// nodesOfSummary returns the nodes a summary's "nodes:" section names.
func nodesOfSummary(summary string) map[string]bool {
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  v\d+ on (.*)$`).FindAllStringSubmatch(summary, -1) {
		for _, part := range strings.Split(m[1], ", ") {
			out[strings.Fields(part)[0]] = true
		}
	}
	return out
}

// samePeersChecksum compares two outputs of workload w by tools/peers'
// checksum (DuckDB), when scripts/test.sh has built it.
func samePeersChecksum(t *testing.T, w, got, want string) {
	t.Helper()
	peers := os.Getenv("SLUICE_PEERS")
	if peers == "" {
		t.Logf("SLUICE_PEERS unset: %s compared row by row only", w)
		return
	}
	sum := func(dir string) string {
		out, err := exec.Command(peers, "verify", "-w", w, dir).CombinedOutput()
		if err != nil {
			t.Fatalf("peers verify -w %s %s: %v\n%s", w, dir, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if g, w := sum(got), sum(want); g != w {
		t.Fatalf("checksums differ:\n%s: %s\n%s: %s", got, g, want, w)
	}
}

// sameUserTotals compares two outputs of W2 row by row (sums to the cent).
func sameUserTotals(t *testing.T, got, want string) {
	t.Helper()
	read := func(dir string) []examples.UserTotal {
		p := stages.NewPipeline("read")
		c := stages.Collect(parquetio.Read[examples.UserTotal](p, dir))
		if _, err := sluice.Run(context.Background(), p, sluice.Options{}); err != nil {
			t.Fatal(err)
		}
		rows := c.Values()
		slices.SortFunc(rows, func(a, b examples.UserTotal) int { return cmp.Compare(a.UserID, b.UserID) })
		return rows
	}
	g, w := read(got), read(want)
	if len(g) != len(w) || len(w) == 0 {
		t.Fatalf("%s holds %d rows, %s %d", got, len(g), want, len(w))
	}
	for i := range w {
		if g[i].UserID != w[i].UserID || g[i].Cnt != w[i].Cnt || math.Round(g[i].SumAmount*100) != math.Round(w[i].SumAmount*100) {
			t.Fatalf("row %d: %+v in %s, %+v in %s", i, g[i], got, w[i], want)
		}
	}
}

// TestClusterSpreadsJobs: W2 and W3 submitted to one of three real nodes
// at parallelism 6 run with instances on all three (the summary says
// where) and write the output of a run in one process.
func TestClusterSpreadsJobs(t *testing.T) {
	skipUnderRace(t)
	nodes := threeNodes(t)
	dir := t.TempDir()
	for _, w := range []struct{ peer, job, arg string }{
		{"w2", "orders-per-user", "n-orders=300000"},
		{"w3", "events-windows", "n-events=400000"},
	} {
		clean, out := filepath.Join(dir, w.peer+"-clean"), filepath.Join(dir, w.peer)
		if code, _, stderr := command(context.Background(), false, "run", w.job, "--quiet", "--parallelism", "6", "--arg", w.arg,
			"--arg", "out="+clean); code != 0 {
			t.Fatalf("%s in one process: exit %d:\n%s", w.job, code, stderr)
		}
		code, _, stderr := client(t, "submit", "--to", nodes[0].http, w.job, "--parallelism", "6", "--arg", w.arg, "--arg", "out="+out)
		if code != 0 {
			t.Fatalf("%s on the cluster: exit %d:\n%s", w.job, code, stderr)
		}
		if ran := nodesOfSummary(stderr); len(ran) != 3 {
			t.Fatalf("%s ran on %v, want all three nodes:\n%s", w.job, ran, stderr)
		}
		if w.peer == "w2" {
			sameUserTotals(t, out, clean)
		} else {
			sameUserWindows(t, out, clean)
		}
		samePeersChecksum(t, w.peer, out, clean)
	}

	// A job without checkpoints, a worker node killed mid-job: it starts
	// again from the start on the nodes left, and says so. They have 4 of
	// the 6 slots it needs: it waits, and says so, until a node joins.
	const arg = "n-events=3000000"
	clean, out := filepath.Join(dir, "restart-clean"), filepath.Join(dir, "restart")
	if code, _, stderr := command(context.Background(), false, "run", "events-windows", "--quiet", "--parallelism", "6", "--arg", arg,
		"--arg", "out="+clean); code != 0 {
		t.Fatalf("clean run: exit %d:\n%s", code, stderr)
	}
	sub := startProcess(t, "submit", "--to", nodes[0].http, "events-windows", "--parallelism", "6", "--arg", arg, "--arg", "out="+out)
	for deadline := time.Now().Add(time.Minute); ; {
		if js := nodes[0].jobs(t); len(js) == 3 && js[2].State == "running" {
			if st := nodes[0].jobStats(t, js[2].ID); len(st.Stages) > 0 && st.Stages[0].Records > 200_000 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the third job did not get going within a minute:\n%s", sub.stderr.String())
		}
		<-time.After(10 * time.Millisecond)
	}
	nodes[2].signal(t, syscall.SIGKILL)
	for deadline := time.Now().Add(time.Minute); !strings.Contains(sub.stderr.String(), "waiting for 6 task slots: the live nodes have 4 free"); {
		if time.Now().After(deadline) {
			t.Fatalf("the job did not wait for slots:\n%s", sub.stderr.String())
		}
		<-time.After(20 * time.Millisecond)
	}
	startNode(t, nodes[0].gossip)
	if code := sub.wait(t, 2*time.Minute); code != 0 || !strings.Contains(sub.stderr.String(), "from the start (no checkpoint had completed)") ||
		!strings.Contains(sub.stderr.String(), "slots free now: the job goes on") {
		t.Fatalf("the job without checkpoints after a node's SIGKILL: exit %d:\n%s", code, sub.stderr.String())
	}
	sameUserWindows(t, out, clean)
}

// jobStats returns a node's statistics of one of its jobs.
func (n *testNode) jobStats(t *testing.T, id string) jobView {
	t.Helper()
	resp, err := http.Get("http://" + n.http + "/v1/jobs/" + id + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v jobView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestClusterNodeKilled: a worker node of a job spread over three real
// nodes is killed with SIGKILL at a seeded moment (after a seeded number
// of checkpoints): the job recovers from its latest checkpoint on the
// nodes left and writes the output of a run never interrupted. Then a node
// frozen with SIGSTOP for 5 s is found dead, its part recovered elsewhere,
// and woken it is told its part has ended: the output has no duplicate.
// Each seed's numbers are logged: the kill to the job's resumption next to
// memberlist's detection. -cluster.seeds N runs more.
func TestClusterNodeKilled(t *testing.T) {
	skipUnderRace(t)
	nodes := threeNodes(t, "--slots", "3") // 9 slots: the 6 of a job fit on the two left after a kill
	dir := t.TempDir()
	const job, arg = "events-windows", "n-events=1500000"
	clean := filepath.Join(dir, "clean")
	if code, _, stderr := command(context.Background(), false, "run", job, "--quiet", "--parallelism", "6", "--arg", arg,
		"--arg", "out="+clean); code != 0 {
		t.Fatalf("clean run: exit %d:\n%s", code, stderr)
	}
	var dead []*testNode // replaced, as the members list them
	states := func() map[*testNode]membership.State {
		want := map[*testNode]membership.State{}
		for _, n := range nodes {
			want[n] = membership.Alive
		}
		for _, n := range dead {
			want[n] = membership.Dead
		}
		return want
	}
	first := *clusterSeed
	if first == 0 {
		first = 1
	}
	for s := range uint64(*clusterSeeds) {
		seed := first + s
		rng := rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15))
		victim := 1 + rng.IntN(2) // a worker: the coordinator's loss is failover's (TestCommandNodes)
		after := 1 + rng.IntN(3)  // checkpoints completed before the kill
		freeze := s == uint64(*clusterSeeds)-1
		what := "SIGKILL"
		if freeze {
			what = "SIGSTOP for 5 s"
		}
		t.Logf("seed %d: %s node %d after %d checkpoints", seed, what, victim, after)
		out, ck := filepath.Join(dir, fmt.Sprint("out", seed)), filepath.Join(dir, fmt.Sprint("ck", seed))
		sub := startProcess(t, "submit", "--to", nodes[0].http, job, "--quiet", "--parallelism", "6", "--arg", arg, "--arg", "out="+out,
			"--checkpoints", ck, "--checkpoint-every", "100ms")
		sub.waitForFiles(t, filepath.Join(ck, "chk-*", "MANIFEST"), after, fmt.Sprintf("seed %d: %d checkpoints", seed, after))
		v := nodes[victim]
		killed := time.Now()
		if freeze {
			v.signal(t, syscall.SIGSTOP)
		} else {
			v.signal(t, syscall.SIGKILL)
		}
		want := states()
		want[v] = membership.Dead
		nodes[0].waitMembers(t, want)
		detected := time.Since(killed)
		if freeze {
			time.AfterFunc(max(0, 5*time.Second-time.Since(killed)), func() { _ = v.cmd.Process.Signal(syscall.SIGCONT) })
		}
		code := sub.wait(t, 3*time.Minute)
		if code != 0 {
			t.Fatalf("seed %d: the job after %s of a node: exit %d:\n%s", seed, what, code, sub.stderr.String())
		}
		m := regexp.MustCompile(`job (\S+) on node`).FindStringSubmatch(sub.stderr.String())
		if m == nil {
			t.Fatalf("seed %d: no job ID in:\n%s", seed, sub.stderr.String())
		}
		st := nodes[0].jobStats(t, m[1])
		if len(st.Recoveries) != 1 || !regexp.MustCompile(`^node \S+ (was found dead|is unreachable)`).MatchString(st.Recoveries[0].Cause) {
			t.Fatalf("seed %d: recoveries %+v, want one from the lost node", seed, st.Recoveries)
		}
		r := st.Recoveries[0]
		resumed := r.Failed.Add(r.Restored).Sub(killed)
		t.Logf("seed %d: %s; found dead %v after, the job resumed (read again) %v after (checkpoint %d, %d records replayed)",
			seed, what, detected.Round(time.Millisecond), resumed.Round(time.Millisecond), r.Checkpoint, r.Replayed)
		sameUserWindows(t, out, clean)
		if freeze { // woken, it is told its part has ended
			deadline := time.Now().Add(time.Minute)
			for !strings.Contains(v.stderr.String(), "the job's coordinator is gone, or gave this node up for lost") {
				if time.Now().After(deadline) {
					t.Fatalf("the woken node's part did not end:\n%s", v.stderr.String())
				}
				<-time.After(50 * time.Millisecond)
			}
			continue
		}
		dead = append(dead, v)
		nodes[victim] = startNode(t, nodes[0].gossip, "--slots", "3") // a fresh node in its place
		nodes[0].waitMembers(t, states())
	}
}
