package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/membership"
)

// peerPoll is how often a node asks the others which jobs they run, so
// that it knows a dead node's jobs.
const peerPoll = 500 * time.Millisecond

// peers is what a node last heard of the other nodes' jobs.
type peers struct {
	mu    sync.Mutex
	jobs  map[string][]nodeJob // by member name
	taken map[string]bool      // member/job IDs this node took over
}

// watchPeers follows the cluster until ctx is done: it polls the other
// nodes' jobs and, when a node dies, takes over its jobs if this node is
// the one to (failover).
func (n *nodeServer) watchPeers(ctx context.Context) {
	events := n.m.Watch()
	tick := time.NewTicker(peerPoll)
	defer tick.Stop()
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			n.pollPeers(ctx, client)
		case m := <-events:
			switch m.State {
			case membership.Dead:
				n.failover(ctx, m)
			case membership.Alive:
				n.fence(ctx, m)
			}
		}
	}
}

// announce tells the other nodes which jobs this node runs, at once (the
// polls may come after a node has died): a job started with --checkpoints
// is known to every live node before it runs.
func (n *nodeServer) announce(ctx context.Context) {
	n.mu.Lock()
	js := make([]nodeJob, 0, len(n.jobs))
	for _, j := range n.jobs {
		js = append(js, *j)
	}
	n.mu.Unlock()
	body, err := json.Marshal(peerJobs{Node: n.m.Name(), Jobs: js})
	if err != nil {
		return
	}
	client := &http.Client{Timeout: time.Second}
	var wg sync.WaitGroup
	for _, m := range n.m.Members() {
		if m.Name == n.m.Name() || m.State != membership.Alive || m.Meta.HTTP == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+m.Meta.HTTP+"/v1/cluster/jobs", bytes.NewReader(body))
			if err != nil {
				return
			}
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
}

// peerJobs is POST /v1/cluster/jobs: a node's jobs, which it announces.
type peerJobs struct {
	Node string    `json:"node"`
	Jobs []nodeJob `json:"jobs"`
}

func (n *nodeServer) peerJobs(w http.ResponseWriter, r *http.Request) {
	var pj peerJobs
	if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&pj); err != nil || pj.Node == "" {
		writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("the request: want {\"node\": NAME, \"jobs\": [...]} (%v)", err)})
		return
	}
	n.peers.mu.Lock()
	n.peers.jobs[pj.Node] = pj.Jobs
	n.peers.mu.Unlock()
	writeJSON(w, http.StatusOK, struct{}{})
}

func (n *nodeServer) pollPeers(ctx context.Context, client *http.Client) {
	for _, m := range n.m.Members() {
		if m.Name == n.m.Name() || m.State != membership.Alive || m.Meta.HTTP == "" {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.Meta.HTTP+"/v1/jobs", nil)
		if err != nil {
			continue
		}
		resp, err := client.Do(req)
		if err != nil {
			continue // it may be dying: the last list stands
		}
		var js []nodeJob
		err = json.NewDecoder(resp.Body).Decode(&js)
		resp.Body.Close()
		if err == nil {
			n.peers.mu.Lock()
			n.peers.jobs[m.Name] = js
			n.peers.mu.Unlock()
		}
	}
}

// failover takes over the jobs dead node d was running when it was last
// heard of, if this node is the one to: the first by name of the live
// nodes, which every node picks alike once their views agree. A job run
// with --checkpoints is run again here from its store's latest checkpoint
// (--restore latest); one without is not: it was reading from its start
// with nothing to go on from, and its output directory may still be held
// by the dead run's lease, so the node says so and leaves it to its user.
func (n *nodeServer) failover(ctx context.Context, d membership.Member) {
	var alive []string
	for _, m := range n.m.Members() {
		if m.State == membership.Alive && m.Name != d.Name {
			alive = append(alive, m.Name)
		}
	}
	slices.Sort(alive)
	if len(alive) == 0 || alive[0] != n.m.Name() {
		return
	}
	n.peers.mu.Lock()
	jobs := n.peers.jobs[d.Name]
	n.peers.mu.Unlock()
	for _, j := range jobs {
		if j.State != "running" {
			continue
		}
		key := d.Name + "/" + j.ID
		n.peers.mu.Lock()
		taken := n.peers.taken[key]
		n.peers.taken[key] = true
		n.peers.mu.Unlock()
		if taken {
			continue
		}
		store := flagValue(j.Args, "checkpoints")
		if store == "" {
			n.c.warnf("node: job %s of dead node %s did not checkpoint: not resumed (submit it again)", j.ID, d.Name)
			continue
		}
		args := withFlag(j.Args, "restore", "latest")
		if !hasCheckpoint(ctx, store, n.c.jobName(j.Args)) {
			args = withFlag(j.Args, "restore", "") // none completed: from the start
		}
		log := n.c.stderr
		out := newFrameStream(prefixWriter{w: log, prefix: "node: resumed " + key + ": "}, nil)
		nj := n.start(args, out, key)
		fmt.Fprintf(log, "node %s: node %s is dead: job %s resumed here as %s from %s\n", n.m.Name(), d.Name, j.ID, nj.ID,
			map[bool]string{true: "its latest checkpoint", false: "its start (no checkpoint had completed)"}[slices.Contains(args, "latest")])
		go out.drain(context.Background())
	}
}

// fence stops node m if this node took over jobs from it when it was
// found dead: a node that was frozen (SIGSTOP, a long pause) and wakes
// refutes its death and would run them on beside their resumed runs. It
// is told to exit at once (POST /v1/cluster/fence), not to cancel them: a
// cancelled job aborts its sinks, which would delete the staged files of
// the run that the resumed job restores from its checkpoint.
func (n *nodeServer) fence(ctx context.Context, m membership.Member) {
	n.peers.mu.Lock()
	var ids []string
	for key, took := range n.peers.taken {
		if node, id, ok := strings.Cut(key, "/"); ok && took && node == m.Name {
			ids = append(ids, id)
		}
	}
	n.peers.mu.Unlock()
	if len(ids) == 0 || m.Meta.HTTP == "" {
		return
	}
	slices.Sort(ids)
	body, _ := json.Marshal(fenceRequest{By: n.m.Name(), Jobs: ids})
	client := &http.Client{Timeout: 5 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+m.Meta.HTTP+"/v1/cluster/fence", bytes.NewReader(body))
	if err != nil {
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		n.c.warnf("node: fencing node %s, which came back after it was found dead: %v", m.Name, err)
		return
	}
	resp.Body.Close()
	fmt.Fprintf(n.c.stderr, "node %s: node %s came back after it was found dead: told it to exit (its jobs %s run here)\n",
		n.m.Name(), m.Name, strings.Join(ids, ", "))
}

// fenceRequest is POST /v1/cluster/fence: the node was found dead and
// its jobs resumed by node By.
type fenceRequest struct {
	By   string   `json:"by"`
	Jobs []string `json:"jobs"`
}

// fenced is POST /v1/cluster/fence: this node was found dead and its jobs
// resumed elsewhere; it exits at once, touching no output (crash-only: its
// leases expire, the resumed runs take over its staged files).
func (n *nodeServer) fenced(w http.ResponseWriter, r *http.Request) {
	var req fenceRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || req.By == "" {
		writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("the request: want {\"by\": NODE, \"jobs\": [...]} (%v)", err)})
		return
	}
	n.c.errorf("node %s was found dead by the cluster, and node %s runs its jobs %s: exiting now, leaving its outputs to them",
		n.m.Name(), req.By, strings.Join(req.Jobs, ", "))
	writeJSON(w, http.StatusOK, struct{}{})
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if n.c.exit != nil {
		n.c.exit(exitFailed)
	}
}

// jobName returns the job that the command line of run args names (flags
// may come before it), or args[0] if it does not parse.
func (c *invocation) jobName(args []string) string {
	q := &invocation{name: c.name, stdout: io.Discard, stderr: io.Discard}
	fs, _ := q.runFlags()
	if job, code := q.parseJob(fs, args); code < 0 {
		return job
	}
	if len(args) > 0 {
		return args[0]
	}
	return ""
}

// hasCheckpoint reports whether store holds a complete checkpoint of job.
func hasCheckpoint(ctx context.Context, store, job string) bool {
	st, err := checkpoints.Open(ctx, store)
	if err != nil {
		return false
	}
	r, _, err := checkpoints.New(st).LatestOfJob(ctx, job)
	return err == nil && r != nil
}

// flagValue returns the value of --name in args ("" if absent).
func flagValue(args []string, name string) string {
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name && i+1 < len(args) && strings.HasPrefix(args[i], "-") {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok && strings.HasPrefix(args[i], "-") {
			return v
		}
	}
	return ""
}

// withFlag returns args with --name set to value, or without it when value
// is empty.
func withFlag(args []string, name, value string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		if strings.HasPrefix(args[i], "-") && a == name {
			i++ // and its value
			continue
		}
		if strings.HasPrefix(args[i], "-") && strings.HasPrefix(a, name+"=") {
			continue
		}
		out = append(out, args[i])
	}
	if value != "" {
		out = append(out, "--"+name, value)
	}
	return out
}

// prefixWriter writes the standard error lines of the frames written to
// it to w, each behind prefix.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	var f frame
	if json.Unmarshal(b, &f) != nil || f.Err == "" {
		return len(b), nil // the ID, standard output, the exit status
	}
	for _, line := range strings.Split(strings.TrimSuffix(f.Err, "\n"), "\n") {
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, line)
	}
	return len(b), nil
}
