package cli

import (
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
	taken map[string]bool      // member/job IDs of dead nodes this node has considered: true, those it took over
}

// watchPeers follows the cluster until ctx is done: it polls the other
// nodes' jobs and, when a node dies, takes over its jobs if this node is
// the one to (failover).
func (n *nodeServer) watchPeers(ctx context.Context) {
	events := n.m.Watch()
	draining := map[string]bool{}
	tick := time.NewTicker(peerPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			n.pollPeers(ctx)
		case m := <-events:
			if n.data != nil && (m.State == membership.Dead || m.State == membership.Left) {
				n.data.nodeLost(m.Name, map[membership.State]string{membership.Dead: "was found dead", membership.Left: "left the cluster"}[m.State])
			}
			if n.data != nil && drainingNow(m, draining) {
				go n.moveOff(m.Name)
			}
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
	var wg sync.WaitGroup
	for _, m := range n.livePeers() {
		wg.Go(func() {
			_ = peer(m, time.Second).call(ctx, http.MethodPost, "/v1/cluster/jobs", peerJobs{Node: n.m.Name(), Jobs: js}, nil)
		})
	}
	wg.Wait()
}

// livePeers returns the other members alive with an HTTP address.
func (n *nodeServer) livePeers() []membership.Member {
	var out []membership.Member
	for _, m := range n.m.Members() {
		if m.Name != n.m.Name() && m.State == membership.Alive && m.Meta.HTTP != "" {
			out = append(out, m)
		}
	}
	return out
}

// peer returns a client of member m's API, its requests cut off after
// timeout, with this node's token and trusting its CA (peerAuth).
func peer(m membership.Member, timeout time.Duration) *remote {
	a := peerAuth()
	return &remote{to: m.Meta.HTTP, http: a.httpClient(timeout), auth: a}
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
	n.peers.heard(pj.Node, pj.Jobs)
	writeJSON(w, http.StatusOK, struct{}{})
}

// heard records node's jobs as a poll's reply or an announcement gives
// them. These cross (a reply may have left the node before it announced a
// job, an announcement before a job ended), but a node's list only grows
// and a job that ended stays so: the jobs heard of before and not in js
// are kept, and so is the end of a job that js has running.
func (p *peers) heard(node string, js []nodeJob) {
	p.mu.Lock()
	defer p.mu.Unlock()
	merged := slices.Clone(js)
	at := map[string]int{}
	for i, j := range merged {
		at[j.ID] = i
	}
	for _, old := range p.jobs[node] {
		i, ok := at[old.ID]
		switch {
		case !ok:
			merged = append(merged, old)
		case old.State != "running" && merged[i].State == "running":
			merged[i] = old
		}
	}
	slices.SortStableFunc(merged, func(a, b nodeJob) int { return a.Started.Compare(b.Started) })
	p.jobs[node] = merged
}

func (n *nodeServer) pollPeers(ctx context.Context) {
	for _, m := range n.livePeers() {
		var js []nodeJob
		if err := peer(m, time.Second).call(ctx, http.MethodGet, "/v1/jobs", nil, &js); err == nil {
			n.peers.heard(m.Name, js)
		} // else it may be dying: the last list stands
	}
}

// failover takes over the jobs of dead nodes, d and any other found dead
// before, that they were running when last heard of, if this node is the
// one to: the first by name of the live nodes, which every node picks
// alike once their views agree. A dead node's job is taken over once: not
// if this node took it before, nor if a node lists a job that resumes it
// (another took it; if that one died, its own job is resumed instead). So
// the jobs of a node whose successor died before it took them over are
// taken by the next. A job run with --checkpoints is run again here from
// its store's latest checkpoint (--restore latest); one without is not: it
// was reading from its start with nothing to go on from, and its output
// directory may still be held by the dead run's lease, so the node says
// so and leaves it to its user.
func (n *nodeServer) failover(ctx context.Context, d membership.Member) {
	alive, dead := []string{}, []string{d.Name}
	for _, m := range n.m.Members() {
		switch {
		case m.Name == d.Name:
		case m.State == membership.Dead:
			dead = append(dead, m.Name)
		case m.State == membership.Alive:
			alive = append(alive, m.Name)
		}
	}
	slices.Sort(alive)
	if len(alive) == 0 || alive[0] != n.m.Name() {
		return
	}
	n.peers.mu.Lock()
	elsewhere := map[string]bool{} // jobs that a node's job resumes
	for _, js := range n.peers.jobs {
		for _, j := range js {
			if j.Resumes != "" {
				elsewhere[j.Resumes] = true
			}
		}
	}
	jobs := map[string][]nodeJob{}
	for _, name := range dead {
		jobs[name] = n.peers.jobs[name]
	}
	n.peers.mu.Unlock()
	for _, owner := range dead {
		for _, j := range jobs[owner] {
			if j.State != "running" {
				continue
			}
			key := owner + "/" + j.ID
			if elsewhere[key] {
				continue
			}
			n.peers.mu.Lock()
			_, seen := n.peers.taken[key]
			n.peers.taken[key] = false // true once resumed
			n.peers.mu.Unlock()
			if seen {
				continue
			}
			store := flagValue(j.Args, "checkpoints")
			if store == "" {
				n.c.warnf("node: job %s of dead node %s did not checkpoint: not resumed (submit it again)", j.ID, owner)
				continue
			}
			args := withFlag(j.Args, "restore", "latest")
			if !hasCheckpoint(ctx, store, n.c.jobName(j.Args)) {
				args = withFlag(j.Args, "restore", "") // none completed: from the start
			}
			log := n.c.stderr
			out := newFrameStream(prefixWriter{w: log, prefix: "node: resumed " + key + ": "}, nil)
			nj := n.start(args, out, key)
			if nj == nil {
				n.c.warnf("node: job %s of dead node %s not resumed: this node is stopping", j.ID, owner)
				return
			}
			n.peers.mu.Lock()
			n.peers.taken[key] = true
			n.peers.mu.Unlock()
			fmt.Fprintf(log, "node %s: node %s is dead: job %s resumed here as %s from %s\n", n.m.Name(), owner, j.ID, nj.ID,
				map[bool]string{true: "its latest checkpoint", false: "its start (no checkpoint had completed)"}[slices.Contains(args, "latest")])
			go out.drain(context.Background())
		}
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
	if err := peer(m, 5*time.Second).call(ctx, http.MethodPost, "/v1/cluster/fence", fenceRequest{By: n.m.Name(), Jobs: ids}, nil); err != nil {
		n.c.warnf("node: fencing node %s, which came back after it was found dead: %v", m.Name, err)
		return
	}
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

// flagValue returns the value of --name in args ("" if absent), the last
// one if it is given more than once, as run parses it.
func flagValue(args []string, name string) string {
	value := ""
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		if a == name && i+1 < len(args) && strings.HasPrefix(args[i], "-") {
			i++
			value = args[i]
		} else if v, ok := strings.CutPrefix(a, name+"="); ok && strings.HasPrefix(args[i], "-") {
			value = v
		}
	}
	return value
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
