package actors

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
)

// A job on several nodes. The node that accepted the job (the
// coordinator) runs its Execution as in one process, with every instance's
// host, and all of the job layer: the checkpoint coordinator, the sinks'
// commit, recovery. The instances placed on another node (a worker) run
// there, in an Execution of the same plan started with the worker's
// Cluster, which steps its own instances and reports to the coordinator:
// what each task's Ready tells the job layer (done, checkpoints passed with
// their snapshots, alignment), the instances' counters, and failures. The
// coordinator tells it back when an attempt starts (where every instance
// runs, and the checkpoint it restores), when it stops, and what the
// commit asks of its sinks' writers.
//
// Messages between instances on different nodes go through Net, stamped
// with their attempt's epoch: an instance takes only its own attempt's
// (one of an ended attempt is dropped, one of an attempt that has not
// started here yet waits for it), so a node that comes back from the dead
// cannot mix its late output into a newer attempt.

// Cluster places a job's instances on the nodes of a cluster.
type Cluster struct {
	// Self is this node's name; Coordinator the node that runs the job
	// layer. An Execution whose Self is not its Coordinator is a worker.
	Self, Coordinator string
	// Place returns the node of every instance ([vertex][instance]) for
	// the attempt about to start, from the nodes that are live now (a
	// recovery places again), none of lost: the nodes this job has given
	// up for lost, whose word it no longer takes. Called on the
	// coordinator only.
	Place func(phys *plan.Physical, lost []string) ([][]string, error)
	// Net carries messages to the other nodes.
	Net Net
	// StatsEvery is how often a worker reports its instances' counters
	// (0: 250 ms); StopTimeout how long the coordinator waits for the
	// workers to stop an attempt (0: 30 s).
	StatsEvery, StopTimeout time.Duration
}

// Net carries a job's messages to its other nodes. Its methods may block
// while the connection's queue is full (credit bounds what is in flight).
type Net interface {
	// Send sends m, from an instance of attempt epoch, to the instance at
	// to on node.
	Send(node string, epoch uint64, to core.Addr, m core.Msg) error
	// Control sends a control message of the job to node.
	Control(node string, payload []byte) error
}

// NodeLostError ends an attempt that had instances on a node that left
// the cluster or was found dead.
type NodeLostError struct {
	Node   string
	Reason string
}

func (e *NodeLostError) Error() string { return fmt.Sprintf("node %s %s", e.Node, e.Reason) }

// clusterState is an Execution's side of the cluster.
type clusterState struct {
	cfg Cluster
	// mu guards what follows. live is the epoch whose engine takes
	// messages (0: none); early holds the messages of later epochs.
	mu    sync.Mutex
	live  uint64
	early []netMsg
	// calls waiting for a worker's reply, by sequence number.
	seq   uint64
	calls map[uint64]*pendingCall
	// stops: the workers an attempt's stop waits for.
	stops map[string]chan error
	// lost: nodes lost; their calls fail at once. fenced: the lost nodes
	// that spoke again and were told their part has ended.
	lost   map[string]string
	fenced map[string]bool
	// worker only: ended when the coordinator ends the job.
	ended     bool
	statsStop chan struct{}
	// sent is the epoch whose failure this worker reported.
	failedEpoch uint64
	// runMu serializes a worker's attempts: their start, their stop and
	// the job's end here (control and a lost coordinator come from
	// different goroutines).
	runMu sync.Mutex
	// statsMu: a worker's reports of its counters, one at a time.
	statsMu sync.Mutex
	// placed: the nodes any attempt placed instances on (mu); endSent,
	// they were told the job ended.
	placed  map[string]bool
	endSent bool
}

type netMsg struct {
	epoch uint64
	to    core.Addr
	m     core.Msg
}

type pendingCall struct {
	node  string
	reply chan error
}

// control is a control message between a job's nodes, as JSON.
type control struct {
	Op    string `json:"op"`
	Epoch uint64 `json:"epoch,omitempty"`
	// attempt: where every instance runs, the checkpoint restored (0:
	// none), the run and the execution whose checkpoints these are, and
	// the plan's fingerprint, which the worker's must equal.
	Place       [][]string `json:"place,omitempty"`
	Restore     uint64     `json:"restore,omitempty"`
	Run         string     `json:"run,omitempty"`
	Resumed     bool       `json:"resumed,omitempty"`
	Fingerprint string     `json:"fingerprint,omitempty"`
	// report
	At      core.Addr      `json:"at"`
	Done    bool           `json:"done,omitempty"`
	Passed  []uint64       `json:"passed,omitempty"`
	Snaps   []wireSnap     `json:"snaps,omitempty"`
	Final   []wireSnap     `json:"final,omitempty"`
	Aligned []core.Aligned `json:"aligned,omitempty"`
	// stats
	Stats []wireStats `json:"stats,omitempty"`
	// fail, reply: the error; Config, that it wraps plan.ErrConfig
	Err    string `json:"err,omitempty"`
	Config bool   `json:"config,omitempty"`
	// call, reply
	Seq    uint64            `json:"seq,omitempty"`
	Action core.CommitAction `json:"action"`
	// end: the job committed; Abandoned, this worker was given up for
	// lost and its part ends
	Committed bool `json:"committed,omitempty"`
	Abandoned bool `json:"abandoned,omitempty"`
}

// Control ops.
const (
	opAttempt = "attempt" // coordinator → worker: start an attempt
	opStop    = "stop"    // coordinator → worker: stop the attempt; reply stopped
	opStopped = "stopped"
	opCall    = "call" // coordinator → worker: a commit action, or detach; reply
	opReply   = "reply"
	opEnd     = "end"    // coordinator → worker: the job has ended
	opReport  = "report" // worker → coordinator: a task's report
	opStats   = "stats"  // worker → coordinator: its instances' counters
	opFail    = "fail"   // worker → coordinator: the attempt failed here
)

// detachOp is the call that has a worker detach its writers (not a commit
// action's op).
const detachOp core.CommitOp = 255

type wireSnap struct {
	Checkpoint  uint64        `json:"checkpoint"`
	Kind        core.SnapKind `json:"kind"`
	Stage       string        `json:"stage"`
	Instance    int           `json:"instance"`
	Start       int           `json:"start"`
	End         int           `json:"end"`
	PerInstance bool          `json:"per_instance,omitempty"`
	Data        []byte        `json:"data"`
}

func toWire(snaps []core.Snapshot) []wireSnap {
	out := make([]wireSnap, len(snaps))
	for i, s := range snaps {
		out[i] = wireSnap{Checkpoint: s.Checkpoint, Kind: s.Kind, Stage: s.Stage, Instance: s.Instance, Start: s.Start, End: s.End,
			PerInstance: s.PerInstance, Data: s.Encode(nil)}
	}
	return out
}

func fromWire(ws []wireSnap) []core.Snapshot {
	out := make([]core.Snapshot, len(ws))
	for i, s := range ws {
		data := s.Data
		out[i] = core.Snapshot{Checkpoint: s.Checkpoint, Kind: s.Kind, Stage: s.Stage, Instance: s.Instance, Start: s.Start, End: s.End,
			PerInstance: s.PerInstance, Encode: func(dst []byte) []byte { return append(dst, data...) }}
	}
	return out
}

// wireStats are one instance's counters, as host.publish stores them.
type wireStats struct {
	At        core.Addr  `json:"at"`
	Nodes     []int64    `json:"nodes"`
	Side      [][]int64  `json:"side,omitempty"`
	In        int64      `json:"in"`
	Inputs    []int64    `json:"inputs,omitempty"`
	Busy      int64      `json:"busy"`
	Blocked   int64      `json:"blocked"`
	Restarts  int64      `json:"restarts,omitempty"`
	Retries   int64      `json:"retries,omitempty"`
	Peak      int64      `json:"peak"`
	Checks    int64      `json:"checks"`
	Done      bool       `json:"done,omitempty"`
	Watermark int64      `json:"watermark"`
	MaxEvent  int64      `json:"max_event"`
	Dropped   [][2]int64 `json:"dropped,omitempty"`
	BytesIn   int64      `json:"bytes_in,omitempty"`
	BytesOut  int64      `json:"bytes_out,omitempty"`
	// Exceptions are the instance's failures on that node.
	Exceptions []Exception `json:"exceptions,omitempty"`
	Writer     bool        `json:"writer,omitempty"`
	// Late and Asides: per chain node, the records added behind the
	// watermark and the examples of records set aside (explain-why).
	Late   []int64        `json:"late,omitempty"`
	Asides [][]plan.Aside `json:"asides,omitempty"`
}

func (h *host) wireStats() wireStats {
	s := wireStats{At: core.Addr{Vertex: h.vi, Instance: h.inst.Index}, In: h.recordsIn.Load(), Busy: h.busy.Load(),
		Blocked: h.blocked.Load(), Restarts: h.restarts.Load(), Retries: h.retries.Load(), Peak: h.peak.Load(), Checks: h.checks.Load(),
		Done: h.done.Load(), Watermark: h.watermark.Load(), MaxEvent: h.maxEvent.Load(), Writer: h.hasWriter.Load(),
		BytesIn: h.bytesIn.Load(), BytesOut: h.bytesOut.Load()}
	for i := range h.nodeRecords {
		s.Nodes = append(s.Nodes, h.nodeRecords[i].Load())
		side := make([]int64, len(h.sideRecords[i]))
		for p := range side {
			side[p] = h.sideRecords[i][p].Load()
		}
		s.Side = append(s.Side, side)
		s.Dropped = append(s.Dropped, [2]int64{h.dropped[i][0].Load(), h.dropped[i][1].Load()})
		s.Late = append(s.Late, h.late[i].Load())
	}
	h.asideMu.Lock()
	for i := range h.asides {
		s.Asides = append(s.Asides, slices.Clone(h.asides[i]))
	}
	s.Exceptions = slices.Clone(h.exceptions)
	h.asideMu.Unlock()
	for i := range h.inputs {
		s.Inputs = append(s.Inputs, h.inputs[i].Load())
	}
	return s
}

// setStats adds what a worker's counters of h say happened since its
// last report from that node: each node reports its own counts of the
// instance, which restart from nothing on a node the instance moves to
// (a recovery places again), so the coordinator's stay monotone and hold
// every node's. It returns how many more records h has read (a source's
// first node).
func (h *host) setStats(from string, s wireStats) int64 {
	if len(s.Nodes) != len(h.nodeRecords) || len(s.Inputs) != len(h.inputs) || len(s.Side) != len(h.sideRecords) ||
		len(s.Dropped) != len(h.dropped) || len(s.Late) != len(h.late) {
		return 0
	}
	h.remoteMu.Lock()
	defer h.remoteMu.Unlock()
	if h.remoteLast == nil {
		h.remoteLast = map[string]wireStats{}
	}
	last, seen := h.remoteLast[from]
	if !seen { // nothing yet from that node: its counts start from zero
		last = wireStats{Nodes: make([]int64, len(s.Nodes)), Inputs: make([]int64, len(s.Inputs)), Late: make([]int64, len(s.Late)),
			Dropped: make([][2]int64, len(s.Dropped))}
		for _, side := range s.Side {
			last.Side = append(last.Side, make([]int64, len(side)))
		}
	}
	add := func(a interface{ Add(int64) int64 }, now, before int64) {
		if d := now - before; d > 0 {
			a.Add(d)
		}
	}
	if seen && (s.Nodes[0] < last.Nodes[0] || s.In < last.In) { // older than the last (a node counts up only): nothing new
		return 0
	}
	read := max(s.Nodes[0]-last.Nodes[0], 0)
	for i := range h.nodeRecords {
		add(&h.nodeRecords[i], s.Nodes[i], last.Nodes[i])
		if len(s.Side[i]) == len(h.sideRecords[i]) && len(last.Side[i]) == len(s.Side[i]) {
			for p := range s.Side[i] {
				add(&h.sideRecords[i][p], s.Side[i][p], last.Side[i][p])
			}
		}
		add(&h.dropped[i][0], s.Dropped[i][0], last.Dropped[i][0])
		add(&h.dropped[i][1], s.Dropped[i][1], last.Dropped[i][1])
		add(&h.late[i], s.Late[i], last.Late[i])
	}
	if len(s.Asides) == len(h.asides) {
		h.asideMu.Lock()
		for i := range h.asides {
			h.asides[i] = appendAsides(h.asides[i], s.Asides[i][min(len(s.Asides[i]), asidesCount(last, i)):])
		}
		h.asideMu.Unlock()
	}
	for i := range h.inputs {
		add(&h.inputs[i], s.Inputs[i], last.Inputs[i])
	}
	add(&h.recordsIn, s.In, last.In)
	add(&h.busy, s.Busy, last.Busy)
	add(&h.blocked, s.Blocked, last.Blocked)
	add(&h.restarts, s.Restarts, last.Restarts)
	add(&h.retries, s.Retries, last.Retries)
	add(&h.checks, s.Checks, last.Checks)
	add(&h.bytesIn, s.BytesIn, last.BytesIn)
	add(&h.bytesOut, s.BytesOut, last.BytesOut)
	h.peak.Store(max(h.peak.Load(), s.Peak))
	h.maxEvent.Store(max(h.maxEvent.Load(), s.MaxEvent))
	h.done.Store(s.Done)
	h.watermark.Store(s.Watermark)
	h.remoteWriter.Store(s.Writer)
	h.remoteLast[from] = s
	return read
}

// asidesCount is how many examples report s held for chain node i.
func asidesCount(s wireStats, i int) int {
	if i < len(s.Asides) {
		return len(s.Asides[i])
	}
	return 0
}

func (c *Cluster) validate(cfg *Config) error {
	var errs []error
	if c.Self == "" || c.Coordinator == "" {
		errs = append(errs, errors.New("actors: Cluster.Self and Cluster.Coordinator must be set"))
	}
	if c.Net == nil {
		errs = append(errs, errors.New("actors: Cluster.Net is nil"))
	}
	if c.Self == c.Coordinator && c.Place == nil {
		errs = append(errs, errors.New("actors: Cluster.Place is nil on the coordinator"))
	}
	if _, ok := cfg.executor().(actorExecutor); !ok {
		errs = append(errs, fmt.Errorf("actors: a job on a cluster runs on the actors executor, not %s", cfg.executor().Name()))
	}
	if cfg.Chaos != nil {
		errs = append(errs, errors.New("actors: chaos kills are for jobs in one process (kill a node instead)"))
	}
	return errors.Join(errs...)
}

func (x *Execution) coordinator() bool { return x.cl != nil && x.cl.cfg.Self == x.cl.cfg.Coordinator }
func (x *Execution) worker() bool      { return x.cl != nil && x.cl.cfg.Self != x.cl.cfg.Coordinator }

// local reports whether instance a runs in this process in attempt at.
func (at *attempt) local(x *Execution, a core.Addr) bool {
	return x.cl == nil || at.owner != nil && at.owner[a.Vertex][a.Instance] == x.cl.cfg.Self
}

// nodes returns the other nodes with instances in attempt at, sorted.
func (at *attempt) nodes(self string) []string {
	var out []string
	for _, row := range at.owner {
		for _, n := range row {
			if n != self && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// sendControl sends m to node. A node that cannot be reached is lost to
// the job (NodeLost): the error is then a *NodeLostError.
func (x *Execution) sendControl(node string, m control) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("job %q: encoding %s for node %s: %w", x.phys.Job, m.Op, node, err)
	}
	if err := x.cl.cfg.Net.Control(node, b); err != nil {
		reason := "is unreachable: " + err.Error()
		x.NodeLost(node, reason)
		return &NodeLostError{Node: node, Reason: reason}
	}
	return nil
}

// sendRemote sends m, from an instance of attempt epoch, to instance a on
// its node. A node that cannot be reached is lost to the job: the attempt
// fails, and the next is placed without it (a transport error comes
// sooner than membership's verdict, and a node that cannot be sent to
// cannot take part).
func (x *Execution) sendRemote(at *attempt, a core.Addr, m core.Msg) {
	node := at.owner[a.Vertex][a.Instance]
	if err := x.cl.cfg.Net.Send(node, at.epoch, a, m); err != nil {
		x.NodeLost(node, fmt.Sprintf("is unreachable (sending to %s: %v)", x.hosts[a.Vertex][a.Instance].inst, err))
	}
}

// Receive takes a message that a task on another node sent to task to in
// attempt epoch. Safe to call from any goroutine, in the order the
// messages came.
func (x *Execution) Receive(epoch uint64, to core.Addr, m core.Msg) {
	cl := x.cl
	if cl == nil || to.Vertex < 0 || to.Vertex >= len(x.hosts) || to.Instance < 0 || to.Instance >= len(x.hosts[to.Vertex]) {
		return
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	switch {
	case epoch == 0 || cl.ended:
		// no attempt's, or the job has ended here
	case epoch == cl.live:
		// Only for an instance of this node: the engine would send one
		// of another's on, which may wait for credit under the lock.
		if x.attempt().local(x, to) {
			x.eng.deliver(to, m)
		}
	case epoch > cl.live && len(cl.early) < maxEarly:
		cl.early = append(cl.early, netMsg{epoch, to, m})
	}
	// An ended attempt's message is dropped.
}

// maxEarly bounds the messages held for attempts that have not started
// here: a sender's credit bounds a legitimate peer's far below it.
const maxEarly = 1 << 16

// goLive lets the messages of attempt at in, once its engine is started.
func (x *Execution) goLive(at *attempt) {
	cl := x.cl
	if cl == nil {
		return
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.live = at.epoch
	var later []netMsg
	for _, m := range cl.early {
		switch {
		case m.epoch == at.epoch:
			x.eng.deliver(m.to, m.m)
		case m.epoch > at.epoch:
			later = append(later, m)
		}
	}
	cl.early = later
}

// ReceiveControl takes a control message of the job from node from. Safe
// to call from any goroutine; messages from one node are taken in order.
func (x *Execution) ReceiveControl(from string, payload []byte) error {
	if x.cl == nil {
		return fmt.Errorf("job %q runs in one process: a control message from node %s", x.phys.Job, from)
	}
	var m control
	if err := json.Unmarshal(payload, &m); err != nil {
		return fmt.Errorf("job %q: a control message from node %s: %w", x.phys.Job, from, err)
	}
	if x.worker() {
		if from != x.cl.cfg.Coordinator {
			return fmt.Errorf("job %q: %s from node %s, not the job's coordinator %s", x.phys.Job, m.Op, from, x.cl.cfg.Coordinator)
		}
		x.workerControl(m)
		return nil
	}
	x.coordinatorControl(from, m)
	return nil
}

// NodeLost tells the job that node has left the cluster or was found
// dead: an attempt with instances there fails, and what waits for the
// node gives up. On a worker, the loss of the coordinator ends the job
// here: its instances stop and its writers let go of what they staged,
// for the job's resumption elsewhere.
func (x *Execution) NodeLost(node, reason string) {
	cl := x.cl
	if cl == nil {
		return
	}
	cl.mu.Lock()
	if _, known := cl.lost[node]; known {
		cl.mu.Unlock()
		return
	}
	if cl.lost == nil {
		cl.lost = map[string]string{}
	}
	cl.lost[node] = reason
	for seq, c := range cl.calls {
		if c.node == node {
			c.reply <- &NodeLostError{Node: node, Reason: reason}
			delete(cl.calls, seq)
		}
	}
	if ch := cl.stops[node]; ch != nil {
		ch <- nil // a lost node runs nothing of ours
		delete(cl.stops, node)
	}
	cl.mu.Unlock()
	if x.worker() {
		if node == cl.cfg.Coordinator {
			go x.endWorker(false, true) // not on an instance's goroutine, which the stop waits for
		}
		return
	}
	at := x.attempt()
	if slices.Contains(at.nodes(cl.cfg.Self), node) {
		x.fail(&NodeLostError{Node: node, Reason: reason})
	}
}

// coordinatorControl takes what a worker tells the coordinator.
func (x *Execution) coordinatorControl(from string, m control) {
	cl := x.cl
	cl.mu.Lock()
	_, lost := cl.lost[from]
	fence := lost && !cl.fenced[from]
	if fence {
		if cl.fenced == nil {
			cl.fenced = map[string]bool{}
		}
		cl.fenced[from] = true
	}
	cl.mu.Unlock()
	if lost { // a node given up for lost (frozen, cut off) is back: its part ends, its word counts for nothing
		if fence {
			b, _ := json.Marshal(control{Op: opEnd, Abandoned: true})
			if err := cl.cfg.Net.Control(from, b); err != nil { // not back for the others yet: its next word tries again
				cl.mu.Lock()
				delete(cl.fenced, from)
				cl.mu.Unlock()
			} else {
				x.cfg.Logger.Warn("a node given up for lost is back: ended its part of the job", "node", from, "job", x.phys.Job)
			}
		}
		return
	}
	at := x.attempt()
	switch m.Op {
	case opReport, opStats, opFail:
		if m.Epoch != at.epoch { // an ended attempt's
			return
		}
	}
	switch m.Op {
	case opStats:
		for _, s := range m.Stats {
			if s.At.Vertex < 0 || s.At.Vertex >= len(x.hosts) || s.At.Instance < 0 || s.At.Instance >= len(x.hosts[s.At.Vertex]) ||
				at.owner[s.At.Vertex][s.At.Instance] != from {
				continue
			}
			h := x.hosts[s.At.Vertex][s.At.Instance]
			if n := h.setStats(from, s); n > 0 && h.v.Head().Kind == plan.KindSource {
				x.progressed(n)
			}
		}
	case opReport:
		if m.At.Vertex < 0 || m.At.Vertex >= len(x.hosts) || m.At.Instance < 0 || m.At.Instance >= len(x.hosts[m.At.Vertex]) ||
			at.owner[m.At.Vertex][m.At.Instance] != from {
			return
		}
		if m.Done {
			x.hosts[m.At.Vertex][m.At.Instance].done.Store(true)
		}
		x.afterStepIn(at, m.At, taskReport{done: m.Done, passed: m.Passed, snaps: fromWire(m.Snaps), final: fromWire(m.Final), aligned: m.Aligned})
	case opFail:
		err := fmt.Errorf("node %s: %s", from, m.Err)
		if m.Config {
			err = fmt.Errorf("%w (%w)", err, plan.ErrConfig)
		}
		x.fail(err)
	case opStopped:
		x.cl.mu.Lock()
		if ch := x.cl.stops[from]; ch != nil && m.Epoch == at.epoch { // a late answer to an earlier stop is not this one's
			var err error
			if m.Err != "" {
				err = fmt.Errorf("node %s: %s", from, m.Err)
			}
			ch <- err
			delete(x.cl.stops, from)
		}
		x.cl.mu.Unlock()
	case opReply:
		x.cl.mu.Lock()
		c := x.cl.calls[m.Seq]
		delete(x.cl.calls, m.Seq)
		x.cl.mu.Unlock()
		if c != nil {
			var err error
			if m.Err != "" {
				err = fmt.Errorf("node %s: %s", from, m.Err)
			}
			c.reply <- err
		}
	}
}

// startRemote tells the workers of attempt at to start it, restoring
// checkpoint restore (0: none).
func (x *Execution) startRemote(at *attempt, restore uint64) error {
	for _, n := range at.nodes(x.cl.cfg.Self) {
		if err := x.sendControl(n, control{Op: opAttempt, Epoch: at.epoch, Place: at.owner, Restore: restore, Run: x.run,
			Resumed: x.hosts[0][0].inst.Resumed, Fingerprint: clusterFingerprint(x.phys)}); err != nil {
			return fmt.Errorf("starting attempt %d on node %s: %w", at.epoch, n, err)
		}
	}
	return nil
}

// stopRemote has the workers of attempt at stop it, and waits until they
// have (or are lost), at most StopTimeout.
func (x *Execution) stopRemote(at *attempt) error {
	cl := x.cl
	waits := map[string]chan error{}
	cl.mu.Lock()
	if cl.stops == nil {
		cl.stops = map[string]chan error{}
	}
	for _, n := range at.nodes(cl.cfg.Self) {
		if _, gone := cl.lost[n]; gone {
			continue
		}
		ch := make(chan error, 1)
		cl.stops[n], waits[n] = ch, ch
	}
	cl.mu.Unlock()
	var errs []error
	for n := range waits {
		if err := x.sendControl(n, control{Op: opStop, Epoch: at.epoch}); err != nil {
			cl.mu.Lock()
			delete(cl.stops, n)
			cl.mu.Unlock()
			delete(waits, n) // its connection is gone: so is what it ran for us, or membership will say
		}
	}
	wait := cl.cfg.StopTimeout
	if wait <= 0 {
		wait = 30 * time.Second
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	late := false
	for _, n := range slices.Sorted(maps.Keys(waits)) {
		if late { // the deadline has passed: what has not answered by now is late too
			select {
			case err := <-waits[n]:
				if err != nil {
					errs = append(errs, err)
				}
			default:
				errs = append(errs, fmt.Errorf("node %s did not stop attempt %d within %v", n, at.epoch, wait))
			}
			continue
		}
		select {
		case err := <-waits[n]:
			if err != nil {
				errs = append(errs, err)
			}
		case <-deadline.C:
			late = true
			errs = append(errs, fmt.Errorf("node %s did not stop attempt %d within %v", n, at.epoch, wait))
		}
	}
	return errors.Join(errs...)
}

// call asks the worker of instance at.At to carry out a, and waits for
// its reply.
func (x *Execution) call(node string, a core.CommitAction) error {
	cl := x.cl
	ch := make(chan error, 1)
	cl.mu.Lock()
	if reason, gone := cl.lost[node]; gone {
		cl.mu.Unlock()
		return &NodeLostError{Node: node, Reason: reason}
	}
	if cl.calls == nil {
		cl.calls = map[uint64]*pendingCall{}
	}
	cl.seq++
	seq := cl.seq
	cl.calls[seq] = &pendingCall{node: node, reply: ch}
	cl.mu.Unlock()
	if err := x.sendControl(node, control{Op: opCall, Seq: seq, Action: a}); err != nil {
		cl.mu.Lock()
		delete(cl.calls, seq)
		cl.mu.Unlock()
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Minute):
		cl.mu.Lock()
		delete(cl.calls, seq)
		cl.mu.Unlock()
		return fmt.Errorf("node %s did not answer %s within 5 minutes", node, a)
	}
}

// endRemote tells every node that ran a part of any attempt that the job
// has ended (a recovery may have placed it on fewer nodes), once.
func (x *Execution) endRemote(committed bool) {
	cl := x.cl
	cl.mu.Lock()
	if cl.endSent {
		cl.mu.Unlock()
		return
	}
	cl.endSent = true
	nodes := slices.Sorted(maps.Keys(cl.placed))
	cl.mu.Unlock()
	for _, n := range nodes {
		if n != cl.cfg.Self {
			_ = x.sendControl(n, control{Op: opEnd, Committed: committed})
		}
	}
}

// ownerOf returns the node of instance a in the last attempt.
func (x *Execution) ownerOf(a core.Addr) string {
	at := x.last
	if at == nil {
		at = x.attempt()
	}
	if x.cl == nil || at.owner == nil {
		return ""
	}
	return at.owner[a.Vertex][a.Instance]
}

// clusterFingerprint fingerprints what must agree between the nodes of a
// job: the stages, the edges and each vertex's parallelism.
func clusterFingerprint(phys *plan.Physical) string {
	fp := graphFingerprint(phys)
	for _, v := range phys.Vertices {
		fp += fmt.Sprintf("/%d", v.Parallelism)
	}
	return fp
}

// RefusePart returns what a node that could not build its part of a job
// answers the coordinator's control message payload with: an attempt's
// start fails with err, which ends the job (its coordinator does not
// retry what cannot be built); a stop is done (nothing runs); a call
// fails with err. Other messages need no answer.
func RefusePart(payload []byte, err error) ([]byte, bool) {
	var m control
	if json.Unmarshal(payload, &m) != nil {
		return nil, false
	}
	var reply control
	switch m.Op {
	case opAttempt:
		reply = control{Op: opFail, Epoch: m.Epoch, Err: err.Error(), Config: true}
	case opStop:
		reply = control{Op: opStopped, Epoch: m.Epoch}
	case opCall:
		reply = control{Op: opReply, Seq: m.Seq, Err: err.Error()}
	default:
		return nil, false
	}
	b, _ := json.Marshal(reply)
	return b, true
}

// EndPart is the control message a node sends back to one that speaks of
// a job it does not run (any more): the job has ended without that node's
// part, which ends (as when its coordinator is lost).
func EndPart() []byte {
	b, _ := json.Marshal(control{Op: opEnd, Abandoned: true})
	return b
}

// The worker's side.

// startWorker starts a worker's Execution: its hosts are made, and
// attempts start when the coordinator says.
func (x *Execution) startWorker() {
	cl := x.cl
	cl.statsStop = make(chan struct{})
	every := cl.cfg.StatsEvery
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				x.sendStats()
			case <-cl.statsStop:
				return
			}
		}
	}()
	go func() {
		select {
		case <-x.ctx.Done():
			x.endWorker(false, true)
		case <-x.ended:
		}
	}()
}

// sendStats reports the counters of the current attempt's instances here.
func (x *Execution) sendStats() {
	// One report at a time, read and queued in order: the coordinator
	// adds what each says since the one before, so an older one arriving
	// after a newer would be counted twice.
	x.cl.statsMu.Lock()
	defer x.cl.statsMu.Unlock()
	at := x.attempt()
	if at.owner == nil {
		return
	}
	var stats []wireStats
	for vi, hs := range x.hosts {
		for i, h := range hs {
			if at.local(x, core.Addr{Vertex: vi, Instance: i}) {
				stats = append(stats, h.wireStats())
			}
		}
	}
	_ = x.sendControl(x.cl.cfg.Coordinator, control{Op: opStats, Epoch: at.epoch, Stats: stats})
}

// workerControl carries out what the coordinator says, in order.
func (x *Execution) workerControl(m control) {
	cl := x.cl
	switch m.Op {
	case opAttempt:
		if err := x.workerAttempt(m); err != nil {
			x.reportFailure(m.Epoch, err)
		}
	case opStop:
		x.cl.runMu.Lock()
		err := x.stopWorkerAttempt()
		x.cl.runMu.Unlock()
		reply := control{Op: opStopped, Epoch: m.Epoch}
		if err != nil {
			reply.Err = err.Error()
		}
		_ = x.sendControl(cl.cfg.Coordinator, reply)
	case opCall:
		var err error
		switch a := m.Action; {
		case a.Op == detachOp:
			err = x.detachWriters()
		case a.Op != core.CommitWriterOp && a.Op != core.AbortWriterOp && a.Op != core.RevertWriterOp:
			err = fmt.Errorf("node %s: a call of %s: a worker carries out only its writers' commits and aborts", cl.cfg.Self, a)
		case a.At.Vertex < 0 || a.At.Vertex >= len(x.hosts) || a.At.Instance < 0 || a.At.Instance >= len(x.hosts[a.At.Vertex]) ||
			!x.attempt().local(x, a.At):
			err = fmt.Errorf("node %s: a call of %s: no such instance runs here", cl.cfg.Self, a)
		case x.hosts[a.At.Vertex][a.At.Instance].task.Writer() == nil:
			err = fmt.Errorf("node %s: a call of %s: the instance has no writer open", cl.cfg.Self, a)
		default:
			err = x.carryOut(a)
		}
		reply := control{Op: opReply, Seq: m.Seq}
		if err != nil {
			reply.Err = err.Error()
		}
		_ = x.sendControl(cl.cfg.Coordinator, reply)
	case opEnd:
		x.endWorker(m.Committed, m.Abandoned)
	}
}

// workerAttempt starts attempt m.Epoch here.
func (x *Execution) workerAttempt(m control) error {
	x.cl.runMu.Lock()
	defer x.cl.runMu.Unlock()
	if fp := clusterFingerprint(x.phys); fp != m.Fingerprint {
		return fmt.Errorf("node %s planned job %q as %s, the coordinator as %s: the nodes must run the same build with the same arguments (%w)",
			x.cl.cfg.Self, x.phys.Job, fp, m.Fingerprint, plan.ErrConfig)
	}
	if len(m.Place) != len(x.hosts) {
		return fmt.Errorf("attempt %d places %d vertices, the plan has %d (%w)", m.Epoch, len(m.Place), len(x.hosts), plan.ErrConfig)
	}
	for vi, row := range m.Place {
		if len(row) != len(x.hosts[vi]) {
			return fmt.Errorf("attempt %d places %d instances of vertex %d, the plan has %d (%w)", m.Epoch, len(row), vi, len(x.hosts[vi]), plan.ErrConfig)
		}
	}
	if err := x.stopWorkerAttempt(); err != nil {
		return err
	}
	x.cl.mu.Lock()
	ended := x.cl.ended
	x.cl.mu.Unlock()
	if ended {
		return nil
	}
	at := newAttempt(m.Epoch)
	at.owner = m.Place
	x.attMu.Lock()
	x.att = at
	x.run = m.Run
	x.attMu.Unlock()
	for vi, hs := range x.hosts {
		for i, h := range hs {
			h.inst.Run = m.Run
			h.inst.Resumed = m.Resumed
			if at.local(x, core.Addr{Vertex: vi, Instance: i}) {
				h.newTask()
			}
		}
	}
	if m.Restore != 0 {
		r, err := checkpoints.New(x.cfg.Checkpoints.Store).Read(x.ctx, m.Restore)
		if err != nil {
			return fmt.Errorf("node %s: restoring checkpoint %d: %w", x.cl.cfg.Self, m.Restore, err)
		}
		for vi, hs := range x.hosts {
			for i, h := range hs {
				if at.local(x, core.Addr{Vertex: vi, Instance: i}) {
					if err := h.task.Restore(restoredFor(r, h)); err != nil {
						return fmt.Errorf("node %s: restoring checkpoint %d: %w", x.cl.cfg.Self, r.ID, err)
					}
				}
			}
		}
	}
	eng, err := x.cfg.executor().start(x)
	if err != nil {
		return err
	}
	x.eng = eng
	if err := eng.launch(); err != nil {
		return err
	}
	x.goLive(at)
	return nil
}

// stopWorkerAttempt stops the attempt running here, if any; runMu is
// held.
func (x *Execution) stopWorkerAttempt() error {
	x.cl.mu.Lock()
	x.cl.live = 0
	x.cl.mu.Unlock()
	if x.eng == nil {
		return nil
	}
	err := x.eng.stop()
	x.eng = nil
	return err
}

// reportFailure tells the coordinator that attempt epoch failed here,
// once per attempt.
func (x *Execution) reportFailure(epoch uint64, err error) {
	cl := x.cl
	cl.mu.Lock()
	if cl.failedEpoch == epoch || cl.ended {
		cl.mu.Unlock()
		return
	}
	cl.failedEpoch = epoch
	cl.mu.Unlock()
	x.cfg.Logger.Warn("instance failed on this node", "job", x.phys.Job, "attempt", epoch, "err", err)
	_ = x.sendControl(cl.cfg.Coordinator, control{Op: opFail, Epoch: epoch, Err: err.Error(), Config: errors.Is(err, plan.ErrConfig)})
}

// report sends what task a reported to the coordinator; the counters go
// first, so that the coordinator's numbers are final when it hears a task
// finished.
func (x *Execution) report(a core.Addr, rep taskReport) {
	at := x.attempt()
	if rep.done {
		x.sendStats()
	}
	_ = x.sendControl(x.cl.cfg.Coordinator, control{Op: opReport, Epoch: at.epoch, At: a, Done: rep.done, Passed: rep.passed,
		Snaps: toWire(rep.snaps), Final: toWire(rep.final), Aligned: rep.aligned})
}

// endWorker ends the job here: the sources acknowledge what they read
// when it committed; on the coordinator's loss (or a cancel) the
// instances stop and the writers let go of what they staged.
func (x *Execution) endWorker(committed, abandoned bool) {
	cl := x.cl
	cl.mu.Lock()
	if cl.ended {
		cl.mu.Unlock()
		return
	}
	cl.ended = true
	close(cl.statsStop)
	cl.mu.Unlock()
	cl.runMu.Lock()
	defer cl.runMu.Unlock()
	serr := x.stopWorkerAttempt()
	at := x.attempt()
	if abandoned {
		if err := x.detachWriters(); err != nil {
			x.cfg.Logger.Warn("letting go of the sinks' writers", "err", err)
		}
		at.err = errors.Join(errors.New("the job's coordinator is gone, or gave this node up for lost"), serr)
	} else if committed && at.owner != nil {
		for vi, hs := range x.hosts {
			for i, h := range hs {
				if at.local(x, core.Addr{Vertex: vi, Instance: i}) {
					h.task.AcknowledgeAll()
				}
			}
		}
	}
	x.closeReaders()
	x.last, x.stopErr = at, serr
	close(x.ended)
}

// waitWorker is Wait on a worker: the job's result is the coordinator's;
// this returns this node's part of the statistics when the job has ended.
func (x *Execution) waitWorker() (*Result, error) {
	<-x.ended
	res := x.Snapshot()
	if err := x.last.err; err != nil {
		return res, fmt.Errorf("job %q on node %s: %w", x.phys.Job, x.cl.cfg.Self, err)
	}
	return res, nil
}
