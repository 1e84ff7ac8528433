package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sluice-data/sluice/membership"
	"github.com/sluice-data/sluice/plan"
)

// Rescaling, Flink's adaptive way: a job stops at a checkpoint taken now
// and goes on from it at the new parallelism (its key groups restored onto
// the new instances, its sources at their positions), placed on the nodes
// live then. A node that drains (SIGTERM) says so in its metadata; the
// coordinators of the jobs with tasks on it rescale them onto the others,
// and it leaves once it runs none.

// rescaleRequest is POST /v1/jobs/ID/rescale.
type rescaleRequest struct {
	Parallelism int `json:"parallelism"`
}

// rescaleReply says what a rescale asked.
type rescaleReply struct {
	Job  string `json:"job"`
	From int    `json:"from"`
	To   int    `json:"to"`
}

func (n *nodeServer) rescaleJob(w http.ResponseWriter, r *http.Request) {
	j, _, ok := n.find(w, r)
	if !ok {
		return
	}
	var req rescaleRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("the request: %v", err)})
		return
	}
	if req.Parallelism < 1 {
		writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("parallelism %d: want at least 1", req.Parallelism)})
		return
	}
	from, err := n.rescale(j, req.Parallelism, false)
	if err != nil {
		writeJSON(w, http.StatusConflict, apiError{fmt.Sprintf("job %s: %v", j.ID, err)})
		return
	}
	writeJSON(w, http.StatusOK, rescaleReply{Job: j.ID, From: from, To: req.Parallelism})
}

// jobParallelism is the parallelism of a job's plan: its widest vertex
// but the sinks (which run on the coordinator).
func jobParallelism(phys *plan.Physical) int {
	p := 1
	for _, v := range phys.Vertices {
		if v.Tail().Kind != plan.KindSink {
			p = max(p, v.Parallelism)
		}
	}
	return p
}

// rescale asks job j to go on at parallelism to, checking first that it
// can: it checkpoints, it runs, to is within its key groups and the live
// nodes that do not drain have the slots; move: even at the parallelism
// it has (to place it again). It returns the parallelism the job had.
func (n *nodeServer) rescale(j *nodeJob, to int, move bool) (int, error) {
	if to < 1 {
		return 0, fmt.Errorf("parallelism %d: want at least 1", to)
	}
	if flagValue(j.Args, "checkpoints") == "" {
		return 0, errors.New("it runs without --checkpoints: it has no checkpoint to carry its state to another parallelism (submit it with --checkpoints)")
	}
	j.inv.mu.Lock()
	x := j.inv.job
	j.inv.mu.Unlock()
	if x == nil {
		return 0, errors.New("it is not running (it is starting, rescaling or ending)")
	}
	phys := x.Plan()
	from := jobParallelism(phys)
	switch {
	case to == from && !move:
		return from, fmt.Errorf("it runs at parallelism %d already", to)
	case to > phys.MaxParallelism:
		return from, fmt.Errorf("parallelism %d is over its %d key groups (--max-parallelism, fixed for the job's life)", to, phys.MaxParallelism)
	}
	if n.data != nil {
		have, free := n.slotsFor(j.ID)
		if to > have+free {
			return from, fmt.Errorf("parallelism %d needs %d task slots: the live nodes have %d for it (%d it holds, %d free)", to, to, have+free, have, free)
		}
	}
	return from, j.inv.rescale(to)
}

// slotsFor returns the slots the job of ID id holds on the live nodes that
// do not drain, and the slots free there for it.
func (n *nodeServer) slotsFor(id string) (have, free int) {
	cj := n.data.coordinated(id)
	nodes, _ := n.slotsFree(cj, nil)
	if cj != nil {
		cj.mu.Lock()
		slots := cj.slots
		cj.mu.Unlock()
		for _, s := range nodes {
			have += min(slots[s.name], s.free)
			free += s.free - min(slots[s.name], s.free)
		}
		return have, free
	}
	for _, s := range nodes {
		free += s.free
	}
	return 0, free
}

// coordinated returns the side of the job of ID id that this node
// coordinates, or nil (the job runs here alone).
func (dp *dataPlane) coordinated(id string) *clusterJob {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	for _, j := range dp.jobs {
		if j.coordinator && j.spec.ID == id && !j.ended {
			return j
		}
	}
	return nil
}

// moveOff rescales the jobs this node coordinates that have tasks on
// node, which drains: onto the other nodes, at the parallelism they had
// if the slots there allow, else at the slots there are.
func (n *nodeServer) moveOff(node string) {
	n.data.mu.Lock()
	var ids []string
	for _, j := range n.data.jobs {
		j.mu.Lock()
		if j.coordinator && !j.ended && j.slots[node] > 0 {
			ids = append(ids, j.spec.ID)
		}
		j.mu.Unlock()
	}
	n.data.mu.Unlock()
	for _, id := range ids {
		n.mu.Lock()
		j := n.jobs[id]
		n.mu.Unlock()
		if j == nil {
			continue
		}
		have, free := n.slotsFor(id)
		j.inv.mu.Lock()
		x := j.inv.job
		j.inv.mu.Unlock()
		if x == nil {
			continue
		}
		to := min(jobParallelism(x.Plan()), have+free)
		if to < 1 {
			j.inv.warnf("node %s drains, but job %s cannot move off it: the other nodes have no task slot free (its tasks there are lost when it leaves, and recovered as a lost node's)", node, id)
			continue
		}
		if _, err := n.rescale(j, to, true); err != nil {
			j.inv.warnf("node %s drains, but job %s cannot move off it: %v (its tasks there are lost when it leaves, and recovered as a lost node's)", node, id, err)
			continue
		}
		j.inv.warnf("node %s drains: job %s moves off it at parallelism %d", node, id, to)
	}
}

// drain tells the cluster this node is leaving and waits, up to timeout,
// until it runs no task of a job that checkpoints (their coordinators move
// them; a job without checkpoints would start again from the start
// anyway, and is not waited for).
func (n *nodeServer) drain(timeout time.Duration) {
	n.mu.Lock()
	n.stopping = true // new jobs go to other nodes
	n.mu.Unlock()
	parts := func() int {
		n.data.mu.Lock()
		defer n.data.mu.Unlock()
		k := 0
		for _, j := range n.data.jobs {
			j.mu.Lock()
			if !j.coordinator && !j.ended && !j.pending && j.x != nil && j.spec.Restart == "" {
				k++
			}
			j.mu.Unlock()
		}
		return k
	}
	k := parts() // before the word spreads: the tasks may move at once
	if k > 0 {
		fmt.Fprintf(n.c.stderr, "node %s: draining: the tasks of %d jobs move to other nodes at a checkpoint (within %v)\n", n.m.Name(), k, timeout)
	}
	if err := n.m.Drain(5 * time.Second); err != nil {
		n.c.warnf("node %s: telling the cluster it drains: %v", n.m.Name(), err)
		return
	}
	if k == 0 && parts() == 0 { // none placed here while the word spread either
		return
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for parts() > 0 {
		select {
		case <-tick.C:
		case <-deadline:
			n.c.warnf("node %s: %d jobs still have tasks here after %v (--stop-timeout): leaving; they recover them as a lost node's", n.m.Name(), parts(), timeout)
			return
		}
	}
	fmt.Fprintf(n.c.stderr, "node %s: drained\n", n.m.Name())
}

// drainingNow reports whether member m has just said it drains.
func drainingNow(m membership.Member, seen map[string]bool) bool {
	if m.State != membership.Alive || !m.Meta.Draining || seen[m.Name] {
		return false
	}
	seen[m.Name] = true
	return true
}

// reactPoll is how often a reactive job looks at the cluster's slots.
const reactPoll = 250 * time.Millisecond

// damper decides a reactive job's rescales up: to the slots the cluster
// has for it, only once more than it has have been there for after (a
// burst of free slots shorter than that moves nothing; autoscalers that
// follow every burst pay a restart each time).
type damper struct {
	after time.Duration
	since time.Time // when more slots than the job has came; zero: none
}

// step takes the job's parallelism now and the most it could have and
// returns the parallelism to rescale to, or 0.
func (d *damper) step(now time.Time, cur, most int) int {
	if most <= cur {
		d.since = time.Time{}
		return 0
	}
	if d.since.IsZero() {
		d.since = now
	}
	if now.Sub(d.since) < d.after {
		return 0
	}
	d.since = time.Time{}
	return most
}

// react follows the slots the live nodes have for job j until it ends,
// rescaling it up, damped, never past its key groups (moveOff takes it
// off a node that drains).
func (n *nodeServer) react(j *nodeJob, after time.Duration) {
	d := damper{after: after}
	tick := time.NewTicker(reactPoll)
	defer tick.Stop()
	for {
		select {
		case <-j.done:
			return
		case <-tick.C:
		}
		j.inv.mu.Lock()
		x, busy := j.inv.job, j.inv.rescaleTo != 0 || j.inv.signal != nil
		j.inv.mu.Unlock()
		if x == nil || busy {
			d.since = time.Time{}
			continue
		}
		phys := x.Plan()
		have, free := n.slotsFor(j.ID)
		cur := jobParallelism(phys)
		to := d.step(time.Now(), cur, min(have+free, phys.MaxParallelism))
		if to == 0 {
			continue
		}
		if _, err := n.rescale(j, to, false); err != nil {
			j.inv.warnf("reactive: job %s stays at parallelism %d: %v", j.ID, cur, err)
			continue
		}
		j.inv.warnf("reactive: job %s goes from parallelism %d to %d: the live nodes have had the slots for %v", j.ID, cur, to, after)
	}
}
