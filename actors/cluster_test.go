package actors_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/transport"
)

// loopNet joins Executions of one process as the nodes of a cluster: what
// one sends another goes through the transport's frame encoding (the
// batches through their edges' wire codecs) and arrives in order on a
// queue per direction, as over a connection.
type loopNet struct {
	mu     sync.Mutex
	nodes  map[string]*actors.Execution
	links  map[[2]string]*link
	codecs *transport.CodecTable
	down   map[string]bool
	// refuse: nodes that answer an attempt with actors.RefusePart.
	refuse map[string]error
	// jitter, if set, makes each link's delay before a delivery (its
	// goroutine runs it): messages of different links interleave anew.
	jitter func(from, to string) func()
}

type link struct {
	mu   sync.Mutex
	cond *sync.Cond
	q    []func()
}

func newLoopNet() *loopNet {
	return &loopNet{nodes: map[string]*actors.Execution{}, links: map[[2]string]*link{}, codecs: &transport.CodecTable{},
		down: map[string]bool{}}
}

func (n *loopNet) setCodecs(phys *plan.Physical) {
	for _, e := range phys.Edges {
		c, err := e.Type.Wire()
		if err != nil {
			panic(err)
		}
		n.codecs.Set(transport.EdgeKey{Vertex: slices.Index(phys.Vertices, e.To), Input: e.Input}, c)
	}
}

// endpoint is the Net of node self.
type endpoint struct {
	n    *loopNet
	self string
}

func (n *loopNet) link(from, to string) *link {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := [2]string{from, to}
	l := n.links[k]
	if l == nil {
		l = &link{}
		l.cond = sync.NewCond(&l.mu)
		n.links[k] = l
		var delay func()
		if n.jitter != nil {
			delay = n.jitter(from, to)
		}
		go func() {
			for {
				l.mu.Lock()
				for len(l.q) == 0 {
					l.cond.Wait()
				}
				f := l.q[0]
				l.q = l.q[1:]
				l.mu.Unlock()
				if delay != nil {
					delay()
				}
				f()
			}
		}()
	}
	return l
}

func (n *loopNet) push(from, to string, f func()) error {
	n.mu.Lock()
	down := n.down[to] || n.down[from]
	n.mu.Unlock()
	if down {
		return fmt.Errorf("node %s is down", to)
	}
	l := n.link(from, to)
	l.mu.Lock()
	l.q = append(l.q, f)
	l.mu.Unlock()
	l.cond.Signal()
	return nil
}

func (n *loopNet) node(name string) *actors.Execution {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[name]
}

func (e endpoint) Send(node string, epoch uint64, to core.Addr, m core.Msg) error {
	frame, err := transport.AppendFrame(nil, transport.Envelope{Epoch: epoch, To: to, Msg: m}, e.n.codecs)
	if err != nil {
		return err
	}
	return e.n.push(e.self, node, func() {
		env, err := transport.DecodeFrame(frame, e.n.codecs)
		if err != nil {
			panic(err)
		}
		if x := e.n.node(node); x != nil {
			x.Receive(env.Epoch, env.To, env.Msg)
		}
	})
}

func (e endpoint) Control(node string, payload []byte) error {
	p := slices.Clone(payload)
	if err := e.n.refuse[node]; err != nil {
		if reply, ok := actors.RefusePart(p, err); ok {
			return e.n.push(node, e.self, func() {
				if x := e.n.node(e.self); x != nil {
					_ = x.ReceiveControl(node, reply)
				}
			})
		}
		return nil
	}
	return e.n.push(e.self, node, func() {
		if x := e.n.node(node); x != nil {
			if err := x.ReceiveControl(e.self, p); err != nil {
				panic(err)
			}
		}
	})
}

// waitEnd waits for x's end, a minute at most: a job on the loopback
// cluster that has not ended by then is stuck, and the goroutines say
// where.
func waitEnd(t *testing.T, x *actors.Execution) (*actors.Result, error) {
	t.Helper()
	select {
	case <-x.Done():
	case <-time.After(time.Minute):
		buf := make([]byte, 1<<20)
		t.Fatalf("the job has not ended within a minute:\n%s", buf[:runtime.Stack(buf, true)])
	}
	return x.Wait()
}

// slowDouble doubles x, taking a millisecond every 500 records: the
// slow user function that makes a job last past a few checkpoints.
func slowDouble(x int64) int64 {
	if x%500 == 0 {
		time.Sleep(time.Millisecond)
	}
	return 2 * x
}

// waitCheckpoint waits, 20 s at most, until x has completed a checkpoint.
func waitCheckpoint(t *testing.T, x *actors.Execution) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for !slices.ContainsFunc(x.Snapshot().Checkpoints, func(c core.CheckpointStat) bool { return c.Completed }) {
		select {
		case <-tick.C:
		case <-x.Done():
			t.Fatalf("the job ended before a checkpoint completed: %+v", x.Snapshot().Checkpoints)
		case <-deadline:
			t.Fatalf("no checkpoint completed within 20 s: %+v", x.Snapshot().Checkpoints)
		}
	}
}

// roundRobin places instance i of each vertex on nodes[i % len(nodes)],
// and the sinks' on the first, the coordinator.
func roundRobin(nodes ...string) func(*plan.Physical, []string) ([][]string, error) {
	return func(phys *plan.Physical, _ []string) ([][]string, error) {
		out := make([][]string, len(phys.Vertices))
		for vi, v := range phys.Vertices {
			for i := range v.Parallelism {
				n := nodes[i%len(nodes)]
				if v.Tail().Kind == plan.KindSink {
					n = nodes[0]
				}
				out[vi] = append(out[vi], n)
			}
		}
		return out, nil
	}
}

// startCluster starts build's job on nodes (the first coordinates), each
// node with a pipeline of its own, and returns the coordinator's Execution,
// the workers' and every node's collection.
func startCluster[T any](t *testing.T, net *loopNet, nodes []string, place func(*plan.Physical, []string) ([][]string, error), opts sluice.Options,
	build func() (*stages.Pipeline, *stages.Collection[T])) (*actors.Execution, []*actors.Execution, []*stages.Collection[T]) {
	t.Helper()
	xs, outs := startNodes(t, net, nodes, place, opts, nil, func(string) (*stages.Pipeline, *stages.Collection[T]) { return build() })
	return xs[0], xs[1:], outs
}

func TestClusterRunsAcrossNodes(t *testing.T) {
	const n = 100_000
	double := func(x int64) int64 { return 2 * x }
	var panicked atomic.Bool
	panicOnce := func(x int64) int64 {
		if x == 77_777 && panicked.CompareAndSwap(false, true) { // once, on whichever node reads it
			panic("transient")
		}
		return 2 * x
	}
	p, clean := sumPipeline(n, 1000, double)
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 4, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	net := newLoopNet()
	nodes := []string{"a", "b", "c"}
	coord, workers, outs := startCluster(t, net, nodes, roundRobin(nodes...), sluice.Options{Parallelism: 4, Seed: 7},
		func() (*stages.Pipeline, *stages.Collection[stages.KV[int64, int64]]) {
			return sumPipeline(n, 1000, panicOnce)
		})
	res, err := waitEnd(t, coord)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range workers {
		if _, err := waitEnd(t, w); err != nil {
			t.Fatal(err)
		}
	}
	got := outs[0].Values()
	if want := sorted(clean.Values()); !slices.Equal(sorted(got), want) {
		t.Fatalf("the cluster's output differs from one process's: %d vs %d keys", len(got), len(want))
	}
	var read int64
	for _, s := range res.Stages {
		if s.Name == `source "numbers"` {
			read = s.Records
		}
	}
	if read != n {
		t.Errorf("the coordinator counted %d records read, want %d", read, n)
	}
	// The failure is in the coordinator's history, with the node it was on.
	if len(res.Exceptions) != 1 || !strings.Contains(res.Exceptions[0].Error, "77777") {
		t.Fatalf("exceptions %+v, want the one panic", res.Exceptions)
	}
	if e := res.Exceptions[0]; e.Node != res.Vertices[0].Nodes[e.Instance] && res.Vertices[0].ID == e.Vertex {
		t.Errorf("the exception says node %q, the instance ran on %q", e.Node, res.Vertices[0].Nodes[e.Instance])
	}
	ran := map[string]int{}
	for _, v := range res.Vertices {
		if len(v.Nodes) != v.Parallelism {
			t.Errorf("vertex %d: nodes %v for %d instances", v.ID, v.Nodes, v.Parallelism)
		}
		for _, n := range v.Nodes {
			ran[n]++
		}
	}
	for _, n := range nodes {
		if ran[n] == 0 {
			t.Errorf("node %s ran no instance: %v", n, ran)
		}
	}
	// A placement that puts a sink on a worker is refused.
	p, _ = sumPipeline(10, 10, double)
	_, err = sluice.Start(context.Background(), p, sluice.Options{Parallelism: 2, Cluster: &actors.Cluster{Self: "a", Coordinator: "a",
		Net: endpoint{net, "a"}, Place: func(phys *plan.Physical, _ []string) ([][]string, error) {
			out := make([][]string, len(phys.Vertices))
			for vi, v := range phys.Vertices {
				out[vi] = slices.Repeat([]string{"b"}, v.Parallelism)
			}
			return out, nil
		}}})
	if err == nil || !strings.Contains(err.Error(), "a sink's instances run on the coordinator") {
		t.Errorf("a sink placed on a worker: %v", err)
	}
}

// A node lost mid-job: the coordinator recovers from the last checkpoint
// on the nodes left, and the output is the clean run's; its counts stay
// monotone as instances move between nodes.
func TestClusterRecoversFromALostNode(t *testing.T) {
	const n = 400_000
	p, clean := sumPipeline(n, 1000, slowDouble)
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 4, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	net := newLoopNet()
	var mu sync.Mutex
	live := []string{"a", "b", "c"}
	place := func(phys *plan.Physical, lost []string) ([][]string, error) {
		mu.Lock()
		defer mu.Unlock()
		return roundRobin(live...)(phys, lost)
	}
	store := checkpoints.NewLocal(t.TempDir())
	rt := actors.DefaultConfig()
	rt.Checkpoints = &actors.CheckpointConfig{Store: store, Every: 10 * time.Millisecond, Timeout: time.Minute,
		Recovery: actors.RestartPolicy{MaxRestarts: 3, Window: time.Minute, Backoff: time.Millisecond, MaxBackoff: time.Millisecond}}
	coord, workers, outs := startCluster(t, net, []string{"a", "b", "c"}, place, sluice.Options{Parallelism: 4, Seed: 9, Runtime: &rt},
		func() (*stages.Pipeline, *stages.Collection[stages.KV[int64, int64]]) {
			return sumPipeline(n, 1000, slowDouble)
		})
	// Lose b once a checkpoint has completed.
	waitCheckpoint(t, coord)
	net.mu.Lock()
	net.down["b"] = true
	net.mu.Unlock()
	mu.Lock()
	live = []string{"a", "c"} // b's instance moves to c, c's to a, a's to c
	mu.Unlock()
	workers[0].NodeLost("a", "was found dead") // b sees itself cut off
	coord.NodeLost("b", "was found dead")
	// The coordinator's counts stay monotone as instances move from b to a.
	var back []string
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		prev := map[string]int64{}
		for {
			select {
			case <-coord.Done():
				return
			case <-time.After(time.Millisecond):
			}
			for _, st := range coord.Snapshot().Stages {
				if st.Records < prev[st.Name] {
					back = append(back, fmt.Sprintf("%s: %d after %d", st.Name, st.Records, prev[st.Name]))
				}
				prev[st.Name] = st.Records
			}
		}
	}()
	res, err := waitEnd(t, coord)
	<-watched
	if len(back) > 0 {
		t.Errorf("counts went back: %v", back)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Recoveries) != 1 {
		t.Fatalf("recoveries %+v, want 1", res.Recoveries)
	}
	if c := res.Recoveries[0].Cause; c != "node b was found dead" && !strings.HasPrefix(c, "node b is unreachable") {
		t.Errorf("recovery cause %q", res.Recoveries[0].Cause)
	}
	if want := sorted(clean.Values()); !slices.Equal(sorted(outs[0].Values()), want) {
		t.Fatalf("after losing a node the output differs from the clean run's: %d vs %d keys", len(outs[0].Values()), len(want))
	}
	if len(outs[1].Values()) != 0 {
		t.Errorf("the lost node's collection holds %d values: its writes were not fenced", len(outs[1].Values()))
	}
}

// A node that cannot build its part refuses the attempt: the job fails at
// once with its error (it is not retried), and the output is not committed.
func TestClusterPartThatCannotBuild(t *testing.T) {
	net := newLoopNet()
	refuse := errors.New("its arguments do not build here")
	net.refuse = map[string]error{"b": refuse}
	p, out := sumPipeline(10_000, 10, func(x int64) int64 { return x })
	x, err := sluice.Start(context.Background(), p, sluice.Options{Parallelism: 2, Cluster: &actors.Cluster{Self: "a", Coordinator: "a",
		Net: endpoint{net, "a"}, Place: roundRobin("a", "b")}})
	if err != nil {
		t.Fatal(err)
	}
	net.mu.Lock()
	net.nodes["a"] = x
	net.mu.Unlock()
	_, err = waitEnd(t, x)
	if err == nil || !strings.Contains(err.Error(), "node b: its arguments do not build here") || !errors.Is(err, plan.ErrConfig) {
		t.Fatalf("Wait: %v, want the refusal as a configuration error", err)
	}
	if res := x.Snapshot(); len(res.Recoveries) != 0 {
		t.Errorf("recovered %d times from a part that cannot build", len(res.Recoveries))
	}
	if len(out.Values()) != 0 {
		t.Errorf("%d values committed", len(out.Values()))
	}
}
