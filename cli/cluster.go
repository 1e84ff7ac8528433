package cli

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	bin "encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/membership"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/transport"
)

// A node's data plane: the connections that carry its jobs' messages to
// the instances placed on other nodes (package transport), and the jobs'
// control between their coordinator and workers, in order with the data.
// Each node sends on the connections it dials, one per peer, and takes
// what arrives on those it accepts: each direction between two nodes is
// one connection, so that everything one node sends another arrives in
// the order sent.
//
// A control frame's payload is a byte that says what it is, then its
// body: 'S' the job's spec (the coordinator sends it to a node before
// anything else of the job), 'A' a message of package actors' cluster
// protocol.

const (
	ctlSpec   = 'S'
	ctlActors = 'A'
)

// jobSpec is what a worker builds a job's part from: the run's arguments,
// with the seed and parallelism the coordinator chose, so that both plan
// the same graph and route keys alike.
type jobSpec struct {
	ID          string   `json:"id"` // the coordinator's job ID
	Args        []string `json:"args"`
	Seed        uint64   `json:"seed"`
	Parallelism int      `json:"parallelism"`
	// Restart is the store the coordinator gave a job without checkpoints
	// (on one machine, a path every node sees; a worker's part only needs
	// checkpoints on, to run as the coordinator's instances do).
	Restart string `json:"restart,omitempty"`
}

// neverEvery is the checkpoint interval of a job on a cluster that was
// given no checkpoints: it recovers from the start, and never checkpoints.
const neverEvery = 100000 * time.Hour

// earlyCap bounds the messages a job's part holds before it is built.
const earlyCap = 1 << 16

type dataPlane struct {
	n      *nodeServer
	ln     *transport.Listener
	codecs transport.CodecTable
	logger *slog.Logger
	ctx    context.Context
	tls    *tls.Config // mutual TLS of the connections; nil: plaintext

	mu    sync.Mutex
	conns map[string]*transport.Conn // dialled, by peer
	jobs  map[uint64]*clusterJob
	// pending counts the jobs of jobs known only by early messages.
	pending int
	ended   map[uint64]bool // jobs dropped: what comes for them is answered (control) or dropped
	told    map[string]bool // node/job: told its part has ended
}

// clusterJob is one job's side of the data plane on this node.
type clusterJob struct {
	dp          *dataPlane
	id          uint64
	coordinator bool

	mu    sync.Mutex
	x     *actors.Execution
	early []transport.Envelope
	queue []ctlItem // control to take, in order
	busy  bool
	told  map[string]bool // coordinator: the nodes sent the spec
	slots map[string]int  // coordinator: the slots its placement takes, by node
	spec  jobSpec
	ended bool
	// failed: this node could not build its part; the attempts the
	// coordinator starts are refused with it. pending: known only by what
	// came before its spec (dataPlane.mu).
	failed  error
	pending bool
}

type ctlItem struct {
	from    string
	payload []byte
}

// startDataPlane listens for data connections on addr; tc, if set, makes
// them mutual TLS (transport.Config.TLS), those it dials too.
func startDataPlane(ctx context.Context, n *nodeServer, addr, build string, logger *slog.Logger, tc *tls.Config) (*dataPlane, error) {
	dp := &dataPlane{n: n, logger: logger, ctx: ctx, tls: tc, conns: map[string]*transport.Conn{}, jobs: map[uint64]*clusterJob{},
		ended: map[uint64]bool{}, told: map[string]bool{}}
	ln, err := transport.Listen(addr, dp.config(n.m.Name(), build))
	if err != nil {
		return nil, fmt.Errorf("the data address: %w", err)
	}
	dp.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, transport.ErrClosed) || ctx.Err() != nil {
					return
				}
				var terr *transport.Error
				if errors.As(err, &terr) || errors.Is(err, transport.ErrHandshake) || errors.Is(err, transport.ErrBuildMismatch) {
					logger.Warn("refused a data connection", "err", err)
					continue
				}
				return // the listener is closed
			}
			_ = c // it delivers by itself until it ends
		}
	}()
	return dp, nil
}

func (dp *dataPlane) config(self, build string) transport.Config {
	return transport.Config{Node: self, Build: build, Codecs: &dp.codecs, Deliver: dp.deliver, Control: dp.control, TLS: dp.tls}
}

func (dp *dataPlane) close() {
	dp.ln.Close()
	dp.mu.Lock()
	defer dp.mu.Unlock()
	for _, c := range dp.conns {
		_ = c.Close()
	}
}

// job returns job id's side here, made if new; nil for a job that has
// ended here.
func (dp *dataPlane) job(id uint64) *clusterJob { return dp.lookup(id, true) }

// maxPending bounds the jobs known here only by what came for them before
// their spec (a worker's data may precede the coordinator's spec): junk
// cannot make them without bound.
const maxPending = 256

// lookup returns job id's side here; nil for a job that has ended here,
// or one not known yet that make says not to make (or past maxPending).
func (dp *dataPlane) lookup(id uint64, make bool) *clusterJob {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	if dp.ended[id] {
		return nil
	}
	j := dp.jobs[id]
	if j == nil {
		if !make || dp.pending >= maxPending {
			return nil
		}
		j = &clusterJob{dp: dp, id: id, told: map[string]bool{}, pending: true}
		dp.pending++
		dp.jobs[id] = j
	}
	return j
}

// known marks j as more than pending: its spec came, or this node
// coordinates it.
func (dp *dataPlane) known(j *clusterJob) {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	if j.pending {
		j.pending = false
		dp.pending--
	}
}

func (dp *dataPlane) drop(j *clusterJob) {
	dp.mu.Lock()
	if dp.jobs[j.id] == j {
		delete(dp.jobs, j.id)
		if j.pending {
			dp.pending--
		}
	}
	dp.ended[j.id] = true
	dp.mu.Unlock()
	dp.codecs.DropJob(j.id)
}

func (dp *dataPlane) deliver(_ *transport.Conn, e transport.Envelope) {
	j := dp.job(e.Job)
	if j == nil {
		return
	}
	j.mu.Lock()
	x := j.x
	if x == nil && !j.ended {
		if len(j.early) < earlyCap {
			j.early = append(j.early, e)
		}
		j.mu.Unlock()
		return
	}
	j.mu.Unlock()
	if x != nil {
		x.Receive(e.Epoch, e.To, e.Msg)
	}
}

func (dp *dataPlane) control(c *transport.Conn, job uint64, payload []byte) {
	if len(payload) == 0 {
		return
	}
	j := dp.lookup(job, payload[0] == ctlSpec)
	if j == nil {
		dp.mu.Lock()
		ended := dp.ended[job]
		dp.mu.Unlock()
		if ended && payload[0] == ctlActors { // so has the sender's part (a node given up for lost, woken)
			go dp.endPart(c.Peer(), job)
		}
		return // else a job never heard of: junk
	}
	if payload[0] == ctlSpec {
		dp.known(j)
	}
	j.mu.Lock()
	j.queue = append(j.queue, ctlItem{from: c.Peer(), payload: slices.Clone(payload)})
	start := !j.busy
	j.busy = true
	j.mu.Unlock()
	if start {
		go j.takeControl()
	}
}

// takeControl takes the job's control messages in order, off the
// connection's reader: building a job's part or stopping an attempt
// takes a while.
func (j *clusterJob) takeControl() {
	for {
		j.mu.Lock()
		if len(j.queue) == 0 {
			j.busy = false
			j.mu.Unlock()
			return
		}
		it := j.queue[0]
		x := j.x
		if failed := j.failed; x == nil && it.payload[0] == ctlActors && failed != nil {
			j.queue = j.queue[1:]
			j.mu.Unlock()
			if reply, ok := actors.RefusePart(it.payload[1:], failed); ok {
				if c, err := j.dp.conn(it.from); err == nil {
					_ = c.SendControl(j.id, append([]byte{ctlActors}, reply...))
				}
			}
			continue
		}
		if x == nil && it.payload[0] == ctlActors && !j.ended {
			j.busy = false // taken once the job has started here
			j.mu.Unlock()
			return
		}
		j.queue = j.queue[1:]
		j.mu.Unlock()
		switch it.payload[0] {
		case ctlSpec:
			if x != nil {
				continue
			}
			var spec jobSpec
			if err := json.Unmarshal(it.payload[1:], &spec); err != nil {
				j.dp.logger.Warn("a job's spec from node "+it.from, "err", err)
				continue
			}
			j.dp.n.runPart(j, spec, it.from)
		case ctlActors:
			if x == nil {
				j.dp.logger.Warn("a control message for a job this node does not run", "from", it.from, "job", j.id)
				continue
			}
			if err := x.ReceiveControl(it.from, it.payload[1:]); err != nil {
				j.dp.logger.Warn("a job's control message", "err", err)
			}
		}
	}
}

// endPart tells node that job has ended here without its part, once it
// can (a node woken from a freeze is alive again only once the others
// hear it refute its death: until then its next message tries again).
func (dp *dataPlane) endPart(node string, job uint64) {
	dp.mu.Lock()
	key := fmt.Sprintf("%s/%d", node, job)
	if dp.told[key] {
		dp.mu.Unlock()
		return
	}
	dp.told[key] = true // one try at a time
	dp.mu.Unlock()
	c, err := dp.conn(node)
	if err == nil {
		err = c.SendControl(job, append([]byte{ctlActors}, actors.EndPart()...))
	}
	if err != nil {
		dp.mu.Lock()
		delete(dp.told, key)
		dp.mu.Unlock()
	}
}

// started hands the job's Execution the messages that came before it.
func (j *clusterJob) started(x *actors.Execution) {
	j.mu.Lock()
	j.x = x
	early := j.early
	j.early = nil
	start := !j.busy && len(j.queue) > 0
	j.busy = j.busy || start
	j.mu.Unlock()
	for _, e := range early {
		x.Receive(e.Epoch, e.To, e.Msg)
	}
	if start {
		go j.takeControl()
	}
}

// slotsUsed returns the slots the jobs this node coordinates take on each
// node, but job j's.
func (dp *dataPlane) slotsUsed(j *clusterJob) map[string]int {
	dp.mu.Lock()
	jobs := make([]*clusterJob, 0, len(dp.jobs))
	for _, o := range dp.jobs {
		if o != j && o.coordinator {
			jobs = append(jobs, o)
		}
	}
	dp.mu.Unlock()
	used := map[string]int{}
	for _, o := range jobs {
		o.mu.Lock()
		for n, k := range o.slots {
			used[n] += k
		}
		o.mu.Unlock()
	}
	return used
}

func (dp *dataPlane) setSlots(j *clusterJob, slots map[string]int) {
	j.mu.Lock()
	j.slots = slots
	j.mu.Unlock()
}

// conn returns the connection to node, dialling it if need be.
func (dp *dataPlane) conn(node string) (*transport.Conn, error) {
	dp.mu.Lock()
	c := dp.conns[node]
	dp.mu.Unlock()
	if c != nil {
		select {
		case <-c.Done():
		default:
			return c, nil
		}
	}
	var addr string
	for _, m := range dp.n.m.Members() {
		if m.Name == node && m.State == membership.Alive {
			addr = m.Meta.Data
		}
	}
	if addr == "" {
		return nil, fmt.Errorf("node %s is not a live member with a data address", node)
	}
	ctx, cancel := context.WithTimeout(dp.ctx, 10*time.Second)
	defer cancel()
	nc, err := transport.Dial(ctx, addr, dp.config(dp.n.m.Name(), dp.n.build))
	if err != nil {
		return nil, err
	}
	dp.mu.Lock()
	defer dp.mu.Unlock()
	if old := dp.conns[node]; old != nil && old != c {
		select {
		case <-old.Done():
		default: // another goroutine dialled first: use its
			nc.Abort()
			return old, nil
		}
	}
	dp.conns[node] = nc
	return nc, nil
}

// nodeLost tells every job here that node is gone.
func (dp *dataPlane) nodeLost(node, reason string) {
	dp.mu.Lock()
	var xs []*actors.Execution
	for _, j := range dp.jobs {
		j.mu.Lock()
		if j.x != nil {
			xs = append(xs, j.x)
		}
		j.mu.Unlock()
	}
	if c := dp.conns[node]; c != nil {
		c.Abort()
		delete(dp.conns, node)
	}
	dp.mu.Unlock()
	for _, x := range xs {
		x.NodeLost(node, reason)
	}
}

// jobNet is a job's actors.Net on this node.
type jobNet struct{ j *clusterJob }

func (n jobNet) Send(node string, epoch uint64, to core.Addr, m core.Msg) error {
	c, err := n.j.dp.conn(node)
	if err != nil {
		return err
	}
	return c.Send(transport.Envelope{Job: n.j.id, Epoch: epoch, To: to, Msg: m})
}

func (n jobNet) Control(node string, payload []byte) error {
	c, err := n.j.dp.conn(node)
	if err != nil {
		return err
	}
	j := n.j
	if j.coordinator {
		j.mu.Lock()
		tell := !j.told[node]
		j.told[node] = true
		spec := j.spec
		j.mu.Unlock()
		if tell {
			b, err := json.Marshal(spec)
			if err != nil {
				return err
			}
			if err := c.SendControl(j.id, append([]byte{ctlSpec}, b...)); err != nil {
				return err
			}
		}
	}
	return c.SendControl(j.id, append([]byte{ctlActors}, payload...))
}

// setCodecs makes the wire codecs of phys's edges job id's.
func (dp *dataPlane) setCodecs(id uint64, phys *plan.Physical) error {
	for _, e := range phys.Edges {
		c, err := e.Type.Wire()
		if err != nil {
			return fmt.Errorf("the records from %s to %s cannot cross nodes: %w", e.From.Name(), e.To.Name(), err)
		}
		dp.codecs.Set(transport.EdgeKey{Job: id, Vertex: slices.Index(phys.Vertices, e.To), Input: e.Input}, c)
	}
	return nil
}

// spread makes a job's options run it across the cluster's live nodes,
// when there are others: this node coordinates. It returns the options
// unchanged on a node alone, and a function to call when the job ends.
func (n *nodeServer) spread(ctx context.Context, jobID string, args []string, opts sluice.Options, say func(string)) (sluice.Options, func(*actors.Execution), func(), error) {
	if n.data == nil || len(n.livePeers()) == 0 {
		return opts, func(*actors.Execution) {}, func() {}, nil
	}
	self := n.m.Name()
	for opts.Seed == 0 { // chosen here: every node routes keys by it
		var b [8]byte
		_, _ = rand.Read(b[:])
		opts.Seed = bin.LittleEndian.Uint64(b[:])
	}
	if opts.Parallelism == 0 {
		most := opts.MaxParallelism
		if most == 0 {
			most = sluice.DefaultMaxParallelism
		}
		opts.Parallelism = max(1, min(runtime.GOMAXPROCS(0), most))
	}
	// A job without checkpoints still recovers from a node's loss: from
	// the start, through a checkpoint store of its own that no checkpoint
	// is ever taken into (the interval is longer than any run), removed
	// when the job ends.
	restartDir := ""
	if opts.Checkpoints == "" && opts.Runtime == nil {
		dir, err := os.MkdirTemp("", "sluice-restart-")
		if err != nil {
			return opts, nil, nil, fmt.Errorf("a store for the job's restart from the start: %w", err)
		}
		restartDir = dir
		opts.Checkpoints, opts.CheckpointEvery = dir, neverEvery
	}
	h := fnv.New64a()
	var salt [8]byte
	_, _ = rand.Read(salt[:])
	fmt.Fprintf(h, "%s/%s/%x", self, jobID, salt)
	j := n.data.job(h.Sum64())
	n.data.known(j)
	j.coordinator = true
	j.spec = jobSpec{ID: jobID, Args: args, Seed: opts.Seed, Parallelism: opts.Parallelism, Restart: restartDir}
	opts.Cluster = &actors.Cluster{Self: self, Coordinator: self, Net: jobNet{j}, Place: func(phys *plan.Physical, lost []string) ([][]string, error) {
		if err := n.data.setCodecs(j.id, phys); err != nil {
			return nil, err
		}
		return n.place(ctx, j, phys, lost, say)
	}}
	return opts, j.started, func() {
		j.mu.Lock()
		j.ended = true
		j.mu.Unlock()
		n.data.drop(j)
		if restartDir != "" {
			_ = os.RemoveAll(restartDir)
		}
	}, nil
}

// Slots are Flink's, shared: a slot holds one instance of each of a job's
// vertices, so a job of parallelism P needs P slots, and instance i of
// every vertex runs in its slot i (the instances a forward edge joins stay
// on one node). A sink's instances run on the coordinator, outside the
// slots. A node's free slots are its --slots less those of the jobs this
// node coordinates.

// slotWait is how long a job waits for the slots it needs.
const slotWait = 2 * time.Minute

// place places phys's instances for job j: its slots on the live nodes
// not lost, one at a time on the node with the largest share of its slots
// free (ties by name). When the live nodes have fewer slots free than
// the job needs, it waits (saying so once through say) until they have,
// up to slotWait, or ctx ends.
func (n *nodeServer) place(ctx context.Context, j *clusterJob, phys *plan.Physical, lost []string, say func(string)) ([][]string, error) {
	need := 0
	for _, v := range phys.Vertices {
		if v.Tail().Kind != plan.KindSink {
			need = max(need, v.Parallelism)
		}
	}
	self := n.m.Name()
	deadline := time.Now().Add(slotWait)
	said := false
	for {
		nodes, total := n.slotsFree(j, lost)
		if total >= need {
			slot := make([]string, need)
			taken := map[string]int{}
			for i := range slot {
				var best *slotNode
				for _, c := range nodes {
					// the share free, (free-taken)/slots, compared without division
					if c.free > taken[c.name] && (best == nil || (c.free-taken[c.name])*best.slots > (best.free-taken[best.name])*c.slots) {
						best = c
					}
				}
				taken[best.name]++
				slot[i] = best.name
			}
			owner := make([][]string, len(phys.Vertices))
			for vi, v := range phys.Vertices {
				for i := range v.Parallelism {
					if v.Tail().Kind == plan.KindSink {
						owner[vi] = append(owner[vi], self)
					} else {
						owner[vi] = append(owner[vi], slot[i])
					}
				}
			}
			n.data.setSlots(j, taken)
			if said {
				say(fmt.Sprintf("%d slots free now: the job goes on", total))
			}
			return owner, nil
		}
		if !said {
			say(fmt.Sprintf("waiting for %d task slots: the live nodes have %d free (up to %v)", need, total, slotWait))
			said = true
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the job needs %d task slots; the live nodes had %d free for %v (start nodes, or lower --parallelism)", need, total, slotWait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// slotNode is a node's task slots, as placement sees them.
type slotNode struct {
	name        string
	slots, free int
}

// slotsFree returns the nodes that job j may take slots on, by name: the
// live ones not leaving or draining, with a data address, none of lost,
// and this node always; with their slots free (less those of the other
// jobs this node coordinates) and the total free.
func (n *nodeServer) slotsFree(j *clusterJob, lost []string) ([]*slotNode, int) {
	self := n.m.Name()
	used := n.data.slotsUsed(j)
	var nodes []*slotNode
	total := 0
	for _, m := range n.m.Members() { // sorted by name
		if m.State == membership.Alive && !m.Meta.Leaving && !m.Meta.Draining && m.Meta.Data != "" && !slices.Contains(lost, m.Name) || m.Name == self {
			free := max(m.Meta.Slots, 1) - used[m.Name]
			if free > 0 {
				nodes = append(nodes, &slotNode{name: m.Name, slots: max(m.Meta.Slots, 1), free: free})
				total += free
			}
		}
	}
	return nodes, total
}

// runPart builds and runs this node's part of a job that node from
// coordinates.
func (n *nodeServer) runPart(j *clusterJob, spec jobSpec, from string) {
	inv := &invocation{name: n.c.name, stdout: n.c.stdout, stderr: n.c.stderr}
	fs, f := inv.runFlags()
	fs.SetOutput(discard{})
	fail := func(err error) {
		err = fmt.Errorf("node %s cannot build its part of job %s: %w", n.m.Name(), spec.ID, err)
		n.c.warnf("%v", err)
		j.mu.Lock()
		j.failed = err
		j.mu.Unlock()
	}
	var errs strings.Builder
	inv.stderr = &errs
	p, code := inv.pipeline(fs, f, spec.Args)
	if code >= 0 {
		fail(fmt.Errorf("its arguments %q: %s", spec.Args, strings.TrimSpace(errs.String())))
		return
	}
	opts, err := f.runOptions(n.ctx)
	if err != nil {
		fail(err)
		return
	}
	opts.Seed, opts.Parallelism, opts.Restore, opts.Chaos = spec.Seed, spec.Parallelism, "", nil
	if spec.Restart != "" { // the coordinator's store of a job that restarts from the start
		opts.Checkpoints, opts.CheckpointEvery = spec.Restart, neverEvery
	}
	opts.Cluster = &actors.Cluster{Self: n.m.Name(), Coordinator: from, Net: jobNet{j}}
	x, err := startPart(n.ctx, p, opts, func(phys *plan.Physical) error { return n.data.setCodecs(j.id, phys) })
	if err != nil {
		fail(err)
		return
	}
	j.started(x)
	go func() {
		_, err := x.Wait()
		if err != nil {
			n.c.warnf("node: the part of job %s from node %s: %v", spec.ID, from, err)
		}
		n.data.drop(j)
	}()
}

// startPart starts a worker's part of p, its codecs set (setCodecs)
// before any of its instances runs.
func startPart(ctx context.Context, p *stages.Pipeline, opts sluice.Options, setCodecs func(*plan.Physical) error) (*actors.Execution, error) {
	x, err := sluice.Start(ctx, p, opts)
	if err != nil {
		return nil, err
	}
	// A worker's instances start at the coordinator's first attempt
	// message, which this node takes only after startPart returns.
	if err := setCodecs(x.Plan()); err != nil {
		x.NodeLost(opts.Cluster.Coordinator, "sent a job whose records cannot cross nodes")
		return nil, err
	}
	return x, nil
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// writeNodes writes, for a job that ran on a cluster, which node ran each
// vertex's instances.
func writeNodes(w io.Writer, res *sluice.Result) {
	var lines []string
	for _, v := range res.Vertices {
		if len(v.Nodes) == 0 {
			continue
		}
		count := map[string]int{}
		var names []string
		for _, n := range v.Nodes {
			if count[n] == 0 {
				names = append(names, n)
			}
			count[n]++
		}
		slices.Sort(names)
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = fmt.Sprintf("%s ×%d", n, count[n])
		}
		lines = append(lines, fmt.Sprintf("  v%d on %s", v.ID, strings.Join(parts, ", ")))
	}
	if len(lines) > 0 {
		fmt.Fprintf(w, "\nnodes:\n%s\n", strings.Join(lines, "\n"))
	}
}
