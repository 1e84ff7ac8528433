package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/sluice-data/sluice/plan"
)

// Prepare plans graph g for a run under rt: it lists every source's
// splits (the facts the planner sizes by), plans, and samples the left side
// of each shuffle join for hot keys — a short job of its own on rt's
// executor — planning again with them when it finds any.
func Prepare(ctx context.Context, g *plan.Graph, cfg plan.Config, rt Config) (*plan.Physical, error) {
	facts := plan.Facts{Splits: map[int][]plan.Split{}}
	for _, n := range g.Nodes {
		if n.Kind != plan.KindSource {
			continue
		}
		splits, err := n.Source.Discover(ctx)
		if err != nil {
			return nil, fmt.Errorf("job %q: %s (%s): listing splits: %w", g.Name, n, n.Loc, err)
		}
		facts.Splits[n.ID] = splits
	}
	phys, err := plan.Build(g, facts, cfg)
	if err != nil {
		return nil, err
	}
	facts.HotKeys, err = sampleSkew(ctx, g, phys, facts, cfg, rt)
	if err != nil {
		return nil, fmt.Errorf("job %q: %w", g.Name, err)
	}
	if len(facts.HotKeys) == 0 {
		return phys, nil
	}
	return plan.Build(g, facts, cfg)
}

// SampleRecords is how many records of a shuffle join's left side are
// sampled before the job starts, to find hot keys.
const SampleRecords = 100_000

// sampleSkew samples the left side of every shuffle join whose skew
// handling is on and returns the hot keys found, by join node ID. A join
// whose left side has a stateful stage upstream is not sampled: its keys
// are only known once all its input has been read.
func sampleSkew(ctx context.Context, g *plan.Graph, phys *plan.Physical, facts plan.Facts, cfg plan.Config, rt Config) (map[int][]plan.HotKey, error) {
	hot := map[int][]plan.HotKey{}
	for _, v := range phys.Vertices {
		n := v.Head()
		if n.Join == nil || n.Join.Skew.Off || len(v.In) != 2 || v.In[0].Kind != plan.Hash {
			continue
		}
		counts, keys, ok, err := sampleKeys(ctx, g, n.Inputs[0], facts, cfg, rt)
		if err != nil {
			return nil, fmt.Errorf("%s (%s): sampling keys for skew: %w", n, n.Loc, err)
		}
		if ok {
			hot[n.ID] = plan.FindHot(counts, keys, cfg.MaxParallelism, v.Parallelism, n.Join.Skew.Factor, n.Join.Skew.MinShare)
		}
	}
	return hot, nil
}

// sampleKeys runs the stateless graph upstream of in on the first records of
// each split and counts the key hashes that reach in.
func sampleKeys(ctx context.Context, g *plan.Graph, in plan.Input, facts plan.Facts, cfg plan.Config, rt Config) (map[uint64]int64, map[uint64]string, bool, error) {
	// Copy the upstream nodes, sources limited to a prefix of each split.
	copies := map[*plan.Node]*plan.Node{}
	sub := &plan.Graph{Name: g.Name + "/skew-sample"}
	var visit func(n *plan.Node) bool
	visit = func(n *plan.Node) bool {
		if _, ok := copies[n]; ok {
			return true
		}
		// Stateful stages know their keys only at the end of input; a test
		// stream's script moves the job's clock: neither can be sampled.
		if n.Kind == plan.KindStateful || n.Kind == plan.KindSink || n.Op == "teststream" {
			return false
		}
		c := *n
		c.Inputs = nil
		if len(n.Side) > 0 { // keep the main output only: side ports need no readers here
			tee := n.Tee
			c.Side, c.Tee = nil, nil
			c.Transform = func(b *plan.Batch) *plan.Batch { out, _ := tee(b); return out }
		}
		for _, i := range n.Inputs {
			if !visit(i.From) {
				return false
			}
			i.From = copies[i.From]
			c.Inputs = append(c.Inputs, i)
		}
		if n.Kind == plan.KindSource {
			per := int64(SampleRecords / max(1, len(facts.Splits[n.ID])))
			c.Source = limitSource(n.Source, max(per, 1000), n.Out)
		}
		copies[n] = &c
		sub.Nodes = append(sub.Nodes, &c)
		return true
	}
	if in.Port != 0 || !visit(in.From) {
		return nil, nil, false, nil
	}
	var mu sync.Mutex
	counts := map[uint64]int64{}
	keys := map[uint64]string{}
	sink := &plan.Node{ID: -1, Kind: plan.KindSink, Op: "sample", Name: "sample", Out: in.From.Out,
		Inputs: []plan.Input{{From: copies[in.From], Edge: plan.Forward}},
		Sink: &plan.SinkSpec{Open: func(context.Context, plan.Instance) (plan.SinkWriter, error) {
			return sampleWriter(func(b *plan.Batch) {
				hs := in.Key.Hashes(b, nil)
				mu.Lock()
				defer mu.Unlock()
				for i, h := range hs {
					if counts[h]++; counts[h] == 1 {
						keys[h] = in.Key.Format(b, i)
					}
				}
			}), nil
		}}}
	sub.Nodes = append(sub.Nodes, sink)
	phys, err := plan.Build(sub, facts, cfg)
	if err != nil {
		return nil, nil, false, err
	}
	// The sample is not the job: it neither checkpoints into the job's
	// store nor is killed by the job's chaos (its sink cannot roll back).
	rt.Checkpoints, rt.Chaos = nil, nil
	x, err := Start(ctx, phys, rt)
	if err != nil {
		return nil, nil, false, err
	}
	if _, err := x.Wait(); err != nil {
		return nil, nil, false, err
	}
	return counts, keys, true, nil
}

// limitSource reads at most limit records of each split.
func limitSource(s *plan.SourceSpec, limit int64, t *plan.Type) *plan.SourceSpec {
	return &plan.SourceSpec{Discover: s.Discover, Open: func(ctx context.Context, inst plan.Instance, sp plan.Split) (plan.Reader, error) {
		r, err := s.Open(ctx, inst, sp)
		if err != nil {
			return nil, err
		}
		return &limitReader{r: r, left: limit, t: t}, nil
	}}
}

type limitReader struct {
	r    plan.Reader
	left int64
	t    *plan.Type
}

func (l *limitReader) Read(n int) (*plan.Batch, error) {
	if l.left <= 0 {
		return nil, io.EOF
	}
	b, err := l.r.Read(int(min(int64(n), l.left)))
	l.left -= int64(l.t.Count(b))
	if errors.Is(err, plan.ErrNoData) { // an unbounded source: sample what is there
		l.left, err = 0, nil
		if b == nil {
			return nil, io.EOF
		}
	}
	return b, err
}

func (l *limitReader) Close() error { return l.r.Close() }

type sampleWriter func(*plan.Batch)

func (w sampleWriter) Write(b *plan.Batch) error { w(b); return nil }
func (sampleWriter) Prepare() error              { return nil }
func (sampleWriter) Commit() error               { return nil }
func (sampleWriter) Abort() error                { return nil }
