package actors_test

import (
	"context"
	"encoding/json"
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
)

// startNodes starts build's job on nodes (the first coordinates), each
// node with a pipeline of its own (build gets the node's name) and a Net
// of its own (wrap, if set, wraps the loopback one), and returns each
// node's Execution and collection.
func startNodes[T any](t *testing.T, net *loopNet, nodes []string, place func(*plan.Physical, []string) ([][]string, error), opts sluice.Options,
	wrap func(self string, e endpoint) actors.Net, build func(node string) (*stages.Pipeline, *stages.Collection[T])) ([]*actors.Execution, []*stages.Collection[T]) {
	t.Helper()
	xs := make([]*actors.Execution, len(nodes))
	outs := make([]*stages.Collection[T], len(nodes))
	// Workers first: the coordinator's first messages find them.
	for i := len(nodes) - 1; i >= 0; i-- {
		p, out := build(nodes[i])
		o := opts
		var nt actors.Net = endpoint{net, nodes[i]}
		if wrap != nil {
			nt = wrap(nodes[i], endpoint{net, nodes[i]})
		}
		o.Cluster = &actors.Cluster{Self: nodes[i], Coordinator: nodes[0], Place: place, Net: nt, StatsEvery: 20 * time.Millisecond,
			StopTimeout: 3 * time.Second}
		phys, err := sluice.Plan(context.Background(), p, o)
		if err != nil {
			t.Fatal(err)
		}
		net.setCodecs(phys)
		x, err := sluice.Start(context.Background(), p, o)
		if err != nil {
			t.Fatalf("node %s: %v", nodes[i], err)
		}
		net.mu.Lock()
		net.nodes[nodes[i]] = x
		net.mu.Unlock()
		xs[i], outs[i] = x, out
	}
	return xs, outs
}

// startReview is startNodes without the collections.
func startReview[T any](t *testing.T, net *loopNet, nodes []string, place func(*plan.Physical, []string) ([][]string, error), opts sluice.Options,
	wrap func(self string, e endpoint) actors.Net, build func(node string) (*stages.Pipeline, *stages.Collection[T])) []*actors.Execution {
	t.Helper()
	xs, _ := startNodes(t, net, nodes, place, opts, wrap, build)
	return xs
}

func waitWithin(x *actors.Execution, d time.Duration) (error, bool) {
	type r struct{ err error }
	ch := make(chan r, 1)
	go func() { _, err := x.Wait(); ch <- r{err} }()
	select {
	case v := <-ch:
		return v.err, true
	case <-time.After(d):
		return nil, false
	}
}

// A recovery that places the job on fewer nodes (b lost, and c no longer
// chosen: its slots went elsewhere) still tells c, which ran part of
// attempt 1, that the job has ended (found by review: only the last
// attempt's nodes were told, and c's part never ended).
func TestClusterNodeDroppedByRecoveryIsToldTheEnd(t *testing.T) {
	const n = 400_000
	net := newLoopNet()
	var mu sync.Mutex
	live := []string{"a", "b", "c"}
	place := func(phys *plan.Physical, lost []string) ([][]string, error) {
		mu.Lock()
		defer mu.Unlock()
		return roundRobin(live...)(phys, lost)
	}
	rt := actors.DefaultConfig()
	rt.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewLocal(t.TempDir()), Every: 10 * time.Millisecond, Timeout: time.Minute,
		Recovery: actors.RestartPolicy{MaxRestarts: 3, Window: time.Minute, Backoff: time.Millisecond, MaxBackoff: time.Millisecond}}
	xs := startReview(t, net, []string{"a", "b", "c"}, place, sluice.Options{Parallelism: 4, Seed: 9, Runtime: &rt}, nil,
		func(string) (*stages.Pipeline, *stages.Collection[stages.KV[int64, int64]]) {
			return sumPipeline(n, 1000, slowDouble)
		})
	coord, b, c := xs[0], xs[1], xs[2]
	waitCheckpoint(t, coord)
	net.mu.Lock()
	net.down["b"] = true
	net.mu.Unlock()
	mu.Lock()
	live = []string{"a"} // the recovery runs on a alone
	mu.Unlock()
	b.NodeLost("a", "was found dead")
	coord.NodeLost("b", "was found dead")
	if err, ok := waitWithin(coord, 60*time.Second); !ok || err != nil {
		t.Fatalf("coordinator: ended %v, err %v", ok, err)
	}
	if err, ok := waitWithin(c, 5*time.Second); !ok {
		t.Fatalf("node c ran part of attempt 1 but its Wait has not returned 5 s after the job ended: it was never told the job ended")
	} else if err != nil {
		t.Logf("node c: %v", err)
	}
}

// When stopping an attempt fails (a user function blocked on the
// coordinator), Wait still tells the workers the job has ended (found by
// review: their parts ran on for ever).
func TestClusterStopErrorStillEndsWorkers(t *testing.T) {
	net := newLoopNet()
	release := make(chan struct{})
	defer close(release)
	rt := actors.DefaultConfig()
	rt.Restart = actors.RestartPolicy{MaxRestarts: 0, Window: time.Minute, Backoff: time.Millisecond, MaxBackoff: time.Millisecond}
	xs := startReview(t, net, []string{"a", "b"}, roundRobin("a", "b"), sluice.Options{Parallelism: 2, Seed: 3, Runtime: &rt}, nil,
		func(node string) (*stages.Pipeline, *stages.Collection[stages.KV[int64, int64]]) {
			return sumPipeline(1_000_000, 10, func(x int64) int64 {
				if node == "a" {
					<-release // blocked for good, as far as the job knows
				} else if x%1000 == 7 {
					panic("b fails")
				}
				return x
			})
		})
	coord, b := xs[0], xs[1]
	err, ok := waitWithin(coord, 40*time.Second)
	if !ok {
		t.Fatal("coordinator did not end within 40 s")
	}
	t.Logf("coordinator: %v", err)
	if _, ok := waitWithin(b, 5*time.Second); !ok {
		t.Fatalf("the coordinator's Wait returned, but worker b's has not 5 s later: it was never told the job ended")
	}
}

// dropStops is a Net of the coordinator whose stops to to never arrive (a
// node frozen, or its control queue stuck, before membership's verdict).
type dropStops struct {
	endpoint
	to map[string]bool
}

func (d dropStops) Control(node string, payload []byte) error {
	var m struct{ Op string }
	_ = json.Unmarshal(payload, &m)
	if m.Op == "stop" && d.to[node] {
		return nil
	}
	return d.endpoint.Control(node, payload)
}

// The wait for the workers to stop an attempt is bounded for all of them
// (found by review: one timer covered only the first silent node).
func TestClusterStopWaitsAtMostItsTimeout(t *testing.T) {
	net := newLoopNet()
	rt := actors.DefaultConfig()
	rt.Restart = actors.RestartPolicy{MaxRestarts: 0, Window: time.Minute, Backoff: time.Millisecond, MaxBackoff: time.Millisecond}
	var once atomic.Bool
	xs := startReview(t, net, []string{"a", "b", "c"}, roundRobin("a", "b", "c"), sluice.Options{Parallelism: 3, Seed: 3, Runtime: &rt},
		func(self string, e endpoint) actors.Net {
			if self == "a" {
				return dropStops{e, map[string]bool{"b": true, "c": true}}
			}
			return e
		},
		func(node string) (*stages.Pipeline, *stages.Collection[stages.KV[int64, int64]]) {
			return sumPipeline(1_000_000, 10, func(x int64) int64 {
				if node == "a" && x%1000 == 7 && once.CompareAndSwap(false, true) {
					panic("a fails") // the job fails: its stop goes to b and c, which never hear it
				}
				return x
			})
		})
	start := time.Now()
	err, ok := waitWithin(xs[0], 20*time.Second)
	if !ok {
		t.Fatalf("the coordinator's Wait has not returned %v after start, though stopRemote promises at most its StopTimeout (3 s)", time.Since(start).Round(time.Second))
	}
	t.Logf("coordinator after %v: %v", time.Since(start).Round(time.Second), err)
}

// statsDelay is a worker's Net that holds one stats report, computed
// early, until a later one (the one a finished task's report sends) has
// gone: two goroutines (the stats ticker, and an instance's report) call
// sendStats, unserialized, so their reports may reach the connection in
// either order.
type statsDelay struct {
	endpoint
	mu      sync.Mutex
	held    bool
	at      *core.Addr
	release chan struct{}
}

type reviewStats struct {
	Op    string
	At    struct{ Vertex, Instance int }
	Done  bool
	Stats []struct {
		At    struct{ Vertex, Instance int }
		Nodes []int64
		Done  bool
	}
}

func (d *statsDelay) Control(node string, payload []byte) error {
	var m reviewStats
	_ = json.Unmarshal(payload, &m)
	if m.Op == "report" && m.Done {
		d.mu.Lock()
		if d.at != nil && d.at.Vertex == m.At.Vertex && d.at.Instance == m.At.Instance && d.release != nil {
			close(d.release) // the finished task's stats went before this report
			d.release = nil
		}
		d.mu.Unlock()
	}
	if m.Op == "stats" {
		d.mu.Lock()
		hold := false
		for _, s := range m.Stats {
			a := core.Addr{Vertex: s.At.Vertex, Instance: s.At.Instance}
			switch {
			case !d.held && s.At.Vertex == 0 && len(s.Nodes) > 0 && s.Nodes[0] > 0 && !s.Done:
				d.held, d.at, hold = true, &a, true
			case d.at != nil && a == *d.at && s.Done && d.release != nil:
				err := d.endpoint.Control(node, payload) // the newer one goes first
				close(d.release)
				d.release = nil
				d.mu.Unlock()
				return err
			}
		}
		d.mu.Unlock()
		if hold { // at most 2 s: a worker whose reports are serialized waits for this one
			select {
			case <-d.release:
			case <-time.After(2 * time.Second):
			}
		}
	}
	return d.endpoint.Control(node, payload)
}

// A worker's reports of its counters reach the coordinator in order, each
// counted once (found by review: two read at once could arrive out of
// order, and the coordinator counted more records read than there were).
func TestClusterStatsOutOfOrderCountOnce(t *testing.T) {
	const n = 200_000
	net := newLoopNet()
	sd := &statsDelay{release: make(chan struct{})}
	xs := startReview(t, net, []string{"a", "b"}, roundRobin("a", "b"), sluice.Options{Parallelism: 2, Seed: 5},
		func(self string, e endpoint) actors.Net {
			if self == "b" {
				sd.endpoint = e
				return sd
			}
			return e
		},
		func(node string) (*stages.Pipeline, *stages.Collection[stages.KV[int64, int64]]) {
			return sumPipeline(n, 100, func(x int64) int64 {
				if node == "a" && x%200 == 0 || x%1000 == 0 {
					time.Sleep(time.Millisecond) // a's source takes longer than b's
				}
				return x
			})
		})
	if k := xs[0].Plan().Vertices[0].Head().Kind; k != plan.KindSource {
		t.Fatalf("vertex 0 is %v, not the source", k)
	}
	res, err := xs[0].Wait()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := waitWithin(xs[1], 10*time.Second); !ok {
		t.Fatal("b did not end")
	}
	sd.mu.Lock()
	held := sd.held && sd.release == nil
	sd.mu.Unlock()
	if !held {
		t.Skip("the interleaving did not happen")
	}
	for _, s := range res.Stages {
		if s.Name == `source "numbers"` && s.Records != n {
			t.Fatalf("the coordinator counted %d records read, want %d", s.Records, n)
		}
	}
}
