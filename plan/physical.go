package plan

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Config holds the planner's settings.
type Config struct {
	// DefaultParallelism applies to stages that set none.
	DefaultParallelism int
	// MaxParallelism is the number of key groups: the most instances a keyed
	// stage can ever have, fixed for the life of a job so that state can be
	// redistributed. Flink's default is 128.
	MaxParallelism int
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.DefaultParallelism < 1 {
		errs = append(errs, fmt.Errorf("plan: DefaultParallelism %d must be at least 1", c.DefaultParallelism))
	}
	if c.MaxParallelism < 1 || c.MaxParallelism > 1<<15 {
		errs = append(errs, fmt.Errorf("plan: MaxParallelism %d must be in [1, 32768]", c.MaxParallelism))
	}
	return errors.Join(errs...)
}

// Facts are what the runtime learned about the sources before planning,
// keyed by node ID.
type Facts struct {
	Splits map[int][]Split
	// HotKeys are the skewed probe-side keys of shuffle joins, by join
	// node ID, found by sampling; with their sample shares.
	HotKeys map[int][]HotKey
}

// Vertex is one physical operator: a chain of fused nodes run by each of its
// instances.
type Vertex struct {
	ID          int
	Chain       []*Node
	Parallelism int
	In          []*Edge // indexed by input number
	Out         []*Edge
	// Splits are the source splits for a source vertex.
	Splits []Split
	// Note records planning decisions (a join's strategy) for String.
	Note string
}

// Head returns the first node of the chain.
func (v *Vertex) Head() *Node { return v.Chain[0] }

// Tail returns the last node of the chain.
func (v *Vertex) Tail() *Node { return v.Chain[len(v.Chain)-1] }

// Name names the vertex by its chain.
func (v *Vertex) Name() string {
	names := make([]string, len(v.Chain))
	for i, n := range v.Chain {
		names[i] = n.String()
	}
	return strings.Join(names, " → ")
}

// IsSink reports whether the vertex ends in a sink.
func (v *Vertex) IsSink() bool { return v.Tail().Kind == KindSink }

// orderSplits sorts splits by Order when a source set it (stably, keeping
// the source's order among equals); it returns splits as they are otherwise.
func orderSplits(splits []Split) []Split {
	if !slices.ContainsFunc(splits, func(s Split) bool { return s.Order != 0 }) {
		return splits
	}
	out := slices.Clone(splits)
	slices.SortStableFunc(out, func(a, b Split) int { return cmp.Compare(a.Order, b.Order) })
	return out
}

// SplitsOf returns the splits instance i reads: every p-th split. For a
// file in event-time order this keeps the instances side by side in time,
// so the least watermark moves smoothly (contiguous runs were tried: the
// instance with the earliest run held every window back, W3's p99 latency
// went from 0.1 s to 7.5 s). Files that each span the whole time range
// send an instance back in time at each new file unless the source orders
// its splits by their least event time (Split.Order).
func (v *Vertex) SplitsOf(i int) []Split {
	var out []Split
	for j := i; j < len(v.Splits); j += v.Parallelism {
		out = append(out, v.Splits[j])
	}
	return out
}

// Records returns the total records of a source vertex, or -1 if unknown.
func (v *Vertex) Records() int64 {
	var n int64
	for _, s := range v.Splits {
		if s.Records < 0 {
			return -1
		}
		n += s.Records
	}
	return n
}

// Edge connects two vertices.
type Edge struct {
	ID    int
	From  *Vertex
	To    *Vertex
	Input int // index into To.In
	// FromNode is the index in From.Chain of the node whose output Port
	// the edge carries.
	FromNode int
	Port     int
	Kind     EdgeKind
	Key      *KeySpec
	Type     *Type
	// Hot routes skewed keys of a hash edge, or is nil.
	Hot *Hot
}

// Physical is an executable plan.
type Physical struct {
	Job            string
	MaxParallelism int
	Vertices       []*Vertex
	Edges          []*Edge
}

// Build plans g. Forward edges between nodes of equal parallelism, where the
// upstream node has no other consumer, fuse the two nodes into one vertex; a
// forward edge between unequal parallelisms becomes a rebalance.
func Build(g *Graph, facts Facts, cfg Config) (*Physical, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var errs []error
	consumers := map[*Node]int{}  // readers of a node's main output
	sideUsed := map[[2]any]bool{} // side outputs read, by (node, port)
	par := map[*Node]int{}
	edges := map[*Node][]EdgeKind{} // effective input edge kinds
	notes := map[*Node]string{}
	records := estimateRecords(g, facts)
	readers := map[*Node][]*Node{} // every node reading a node, any port
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			readers[in.From] = append(readers[in.From], n)
		}
	}
	for _, n := range g.Nodes {
		kinds := make([]EdgeKind, len(n.Inputs))
		for i, in := range n.Inputs {
			if in.Port == 0 {
				consumers[in.From]++
			} else {
				sideUsed[[2]any{in.From, in.Port}] = true
			}
			kinds[i] = in.Edge
		}
		if n.Join != nil && len(n.Inputs) == 2 {
			notes[n] = decideJoin(n, records, kinds, readers)
		}
		edges[n] = kinds
		p := n.Parallelism
		if p == 0 {
			p = cfg.DefaultParallelism
			// A stage that sets none and has one forward input keeps its
			// input's parallelism, so that it can fuse with it; a broadcast
			// join keeps its probe side's.
			if (len(n.Inputs) == 1 || n.Join != nil) && kinds[0] == Forward {
				p = par[n.Inputs[0].From]
			}
		}
		if n.Kind == KindSource {
			if s, ok := facts.Splits[n.ID]; ok && len(s) < p {
				p = max(1, len(s))
			}
		}
		if p > cfg.MaxParallelism {
			errs = append(errs, fmt.Errorf("%w: %s: %s parallelism %d exceeds max parallelism %d", ErrInvalid, n.Loc, n, p, cfg.MaxParallelism))
		}
		par[n] = p
	}
	for _, n := range g.Nodes {
		if n.Kind == KindSource && len(n.Inputs) > 0 {
			errs = append(errs, fmt.Errorf("%w: %s: source %s has inputs", ErrInvalid, n.Loc, n))
		}
		if n.Kind != KindSource && len(n.Inputs) == 0 {
			errs = append(errs, fmt.Errorf("%w: %s: %s has no input", ErrInvalid, n.Loc, n))
		}
		if n.Kind != KindSink && consumers[n] == 0 {
			errs = append(errs, fmt.Errorf("%w: %s: the output of %s is never used (add a sink)", ErrInvalid, n.Loc, n))
		}
		for p := range n.Side {
			if !sideUsed[[2]any{n, p + 1}] {
				errs = append(errs, fmt.Errorf("%w: %s: side output %d (%s) of %s is never read: its records would be lost", ErrInvalid, n.Loc, p+1, n.Side[p].Name, n))
			}
		}
		for _, in := range n.Inputs {
			if in.Port < 0 || in.Port > len(in.From.Side) {
				errs = append(errs, fmt.Errorf("%w: %s: %s reads output %d of %s, which has %d side outputs", ErrInvalid, n.Loc, n, in.Port, in.From, len(in.From.Side)))
			}
			if in.Edge == Hash && in.Key == nil {
				errs = append(errs, fmt.Errorf("%w: %s: hash input of %s has no key", ErrInvalid, n.Loc, n))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	p := &Physical{Job: g.Name, MaxParallelism: cfg.MaxParallelism}
	vertexOf := map[*Node]*Vertex{}
	for _, n := range g.Nodes { // nodes are in creation order: inputs first
		if len(n.Inputs) == 1 {
			in := n.Inputs[0]
			from := vertexOf[in.From]
			if edges[n][0] == Forward && in.Port == 0 && par[in.From] == par[n] && consumers[in.From] == 1 &&
				in.From.Kind != KindSink && from.Tail() == in.From {
				from.Chain = append(from.Chain, n)
				vertexOf[n] = from
				continue
			}
		}
		v := &Vertex{ID: len(p.Vertices) + 1, Chain: []*Node{n}, Parallelism: par[n], Note: notes[n]}
		if n.Kind == KindSource {
			v.Splits = orderSplits(facts.Splits[n.ID])
		}
		p.Vertices = append(p.Vertices, v)
		vertexOf[n] = v
		for i, in := range n.Inputs {
			from := vertexOf[in.From]
			kind := edges[n][i]
			if kind == Forward && from.Parallelism != v.Parallelism {
				kind = Rebalance
			}
			typ := in.From.Out
			if in.Port > 0 {
				typ = in.From.Side[in.Port-1]
			}
			e := &Edge{ID: len(p.Edges) + 1, From: from, To: v, Input: len(v.In), Kind: kind, Key: in.Key, Type: typ,
				FromNode: slices.Index(from.Chain, in.From), Port: in.Port}
			if n.Join != nil && kind == Hash {
				hot := hotKeys(n, facts)
				if len(hot) > 0 {
					e.Hot = splitHot(hot, cfg.MaxParallelism, v.Parallelism, i == 1)
					if i == 0 {
						v.Note += "; skew: " + describeHot(hot)
					}
				}
			}
			v.In = append(v.In, e)
			from.Out = append(from.Out, e)
			p.Edges = append(p.Edges, e)
		}
	}
	return p, nil
}

// String renders the plan in a stable form for golden tests and for users.
func (p *Physical) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %q max-parallelism %d\n", p.Job, p.MaxParallelism)
	for _, v := range p.Vertices {
		fmt.Fprintf(&b, "v%d ×%d %s", v.ID, v.Parallelism, v.Name())
		if v.Note != "" {
			fmt.Fprintf(&b, " (%s)", v.Note)
		}
		if v.Head().Kind == KindSource {
			if r := v.Records(); r >= 0 {
				fmt.Fprintf(&b, " [%d splits, %d records]", len(v.Splits), r)
			} else {
				fmt.Fprintf(&b, " [%d splits]", len(v.Splits))
			}
		}
		b.WriteByte('\n')
		for _, e := range v.Out {
			if e.Port > 0 {
				fmt.Fprintf(&b, "  %s side %d → %s → v%d\n", v.Chain[e.FromNode], e.Port, e.Kind, e.To.ID)
				continue
			}
			fmt.Fprintf(&b, "  → %s → v%d\n", e.Kind, e.To.ID)
		}
	}
	return b.String()
}

// Route returns the key-group-to-instance table of a hash edge into n
// instances, as Flink assigns key groups: group g goes to g*n/maxParallelism.
func Route(maxParallelism, n int) []int32 {
	r := make([]int32, maxParallelism)
	for g := range r {
		r[g] = int32(g * n / maxParallelism)
	}
	return r
}

// estimateRecords estimates how many records each node emits: sources from
// their splits, stateless stages as their inputs (an upper bound for
// filters), declared counts where the user gave them; -1 when unknown.
func estimateRecords(g *Graph, facts Facts) map[*Node]int64 {
	est := map[*Node]int64{}
	for _, n := range g.Nodes {
		var e int64
		switch {
		case n.Records > 0:
			e = n.Records
		case n.Kind == KindSource:
			splits, ok := facts.Splits[n.ID]
			if !ok {
				e = -1
			}
			for _, s := range splits {
				if s.Records < 0 {
					e = -1
					break
				}
				e += s.Records
			}
		default:
			for _, in := range n.Inputs {
				if est[in.From] < 0 {
					e = -1
					break
				}
				e += est[in.From]
			}
		}
		est[n] = e
	}
	return est
}

// decideJoin picks a join's strategy and sets its input edges: the probe
// side (input 0) forward and the build side (input 1) broadcast, or both
// hashed. It returns the decision in words for the plan.
func decideJoin(n *Node, records map[*Node]int64, kinds []EdgeKind, readers map[*Node][]*Node) string {
	j := n.Join
	j.HoldProbe = canHoldProbe(n, readers)
	rows := records[n.Inputs[1].From]
	size := "unknown size"
	bytes := int64(-1)
	if rows >= 0 {
		bytes = rows * j.EntryBytes
		size = fmt.Sprintf("%d rows ≈ %s", rows, FormatBytes(bytes))
	}
	broadcast := false
	why := ""
	switch {
	case j.Strategy == JoinShuffle:
		why = "shuffle join: chosen"
	case !j.Broadcastable:
		why = "shuffle join: a full outer join cannot broadcast"
	case j.Strategy == JoinBroadcast:
		broadcast, why = true, "broadcast join: chosen"
	case bytes < 0:
		why = "shuffle join: build side of unknown size"
	case bytes <= j.Threshold:
		broadcast, why = true, fmt.Sprintf("broadcast join: build side under %s", FormatBytes(j.Threshold))
	default:
		why = fmt.Sprintf("shuffle join: build side over %s", FormatBytes(j.Threshold))
	}
	if broadcast {
		kinds[0], kinds[1] = Forward, Broadcast
	} else {
		kinds[0], kinds[1] = Hash, Hash
	}
	if j.HoldProbe {
		return fmt.Sprintf("%s, %s; probe waits for the build side", why, size)
	}
	return fmt.Sprintf("%s, %s", why, size)
}

// canHoldProbe reports whether join n may leave its probe input waiting
// until its build side ends. That is safe when the probe side is n's alone:
// no stage upstream of the probe feeds the build side, and none feeds
// anything but the probe side and n. Then the stages that wait on credit
// hold up nothing but n, which waits only on the build side. (Two joins
// over the same two sources in opposite roles would otherwise each hold
// the source that the other's build side needs: TestCrossJoinsDoNotDeadlock.)
func canHoldProbe(n *Node, readers map[*Node][]*Node) bool {
	probe := upstream(n.Inputs[0].From)
	if !disjoint(probe, upstream(n.Inputs[1].From)) {
		return false
	}
	for m := range probe {
		for _, r := range readers[m] {
			if r != n && !probe[r] {
				return false
			}
		}
	}
	return true
}

// upstream returns n and every node it reads from, directly or not.
func upstream(n *Node) map[*Node]bool {
	seen := map[*Node]bool{}
	var walk func(*Node)
	walk = func(n *Node) {
		if seen[n] {
			return
		}
		seen[n] = true
		for _, in := range n.Inputs {
			walk(in.From)
		}
	}
	walk(n)
	return seen
}

func disjoint(a, b map[*Node]bool) bool {
	for n := range a {
		if b[n] {
			return false
		}
	}
	return true
}

// FormatBytes renders a size in bytes for people: "93.8 KiB".
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// hotKeys returns the join's hot keys: declared ones and sampled ones.
func hotKeys(n *Node, facts Facts) []HotKey {
	if n.Join.Skew.Off {
		return nil
	}
	hot := append([]HotKey(nil), n.Join.Skew.Declared...)
	for _, h := range facts.HotKeys[n.ID] {
		if !slices.ContainsFunc(hot, func(d HotKey) bool { return d.Hash == h.Hash }) {
			hot = append(hot, h)
		}
	}
	return hot
}

// splitHot gives each hot key Ways consecutive channels from its home.
func splitHot(hot []HotKey, maxPar, n int, replicate bool) *Hot {
	route := Route(maxPar, n)
	h := &Hot{Channels: map[uint64][]int32{}, Replicate: replicate}
	for _, k := range hot {
		home := route[k.Hash%uint64(maxPar)]
		ways := min(max(k.Ways, 1), n)
		chs := make([]int32, ways)
		for i := range chs {
			chs[i] = (home + int32(i)) % int32(n)
		}
		h.Channels[k.Hash] = chs
	}
	return h
}

func describeHot(hot []HotKey) string {
	parts := make([]string, len(hot))
	for i, k := range hot {
		if k.Share > 0 {
			parts[i] = fmt.Sprintf("key %s (%.1f%% of sample) split %d ways", k.Key, 100*k.Share, k.Ways)
		} else {
			parts[i] = fmt.Sprintf("key %s split %d ways", k.Key, k.Ways)
		}
	}
	return strings.Join(parts, ", ")
}

// FindHot judges skew from a sample of a hash edge's keys (hash → count,
// hash → key) going to n instances over maxPar key groups: an instance is
// skewed when its share of the sample exceeds max(minShare, factor × the
// median share); its heaviest keys are split until it is not, each into
// pieces no larger than half the median instance's load.
func FindHot(counts map[uint64]int64, keys map[uint64]string, maxPar, n int, factor, minShare float64) []HotKey {
	var total int64
	for _, c := range counts {
		total += c
	}
	if total == 0 || n < 2 {
		return nil
	}
	route := Route(maxPar, n)
	load := make([]int64, n)
	byChannel := make([][]uint64, n)
	for h, c := range counts {
		ch := route[h%uint64(maxPar)]
		load[ch] += c
		byChannel[ch] = append(byChannel[ch], h)
	}
	sorted := slices.Clone(load)
	slices.Sort(sorted)
	median := float64(sorted[n/2])
	if n%2 == 0 {
		median = float64(sorted[n/2-1]+sorted[n/2]) / 2
	}
	limit := max(minShare*float64(total), factor*median)
	piece := max(median/2, float64(total)/float64(4*n), 1)
	var hot []HotKey
	for ch := range n {
		if float64(load[ch]) <= limit {
			continue
		}
		hs := byChannel[ch]
		slices.SortFunc(hs, func(a, b uint64) int {
			if c := cmp.Compare(counts[b], counts[a]); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		rest := float64(load[ch])
		for _, h := range hs {
			if rest <= limit || float64(counts[h]) <= piece {
				break
			}
			ways := min(n, int(math.Ceil(float64(counts[h])/piece)))
			hot = append(hot, HotKey{Hash: h, Key: keys[h], Share: float64(counts[h]) / float64(total), Ways: ways})
			rest -= float64(counts[h])
		}
	}
	slices.SortFunc(hot, func(a, b HotKey) int { return strings.Compare(a.Key, b.Key) })
	return hot
}
