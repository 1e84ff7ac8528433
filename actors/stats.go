package actors

import (
	"math"
	"slices"
	"time"

	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
)

// StageStats describes one logical stage.
type StageStats struct {
	Vertex      int    // the physical vertex it runs in
	Name        string // op and name, as in the plan
	Loc         string
	Parallelism int
	// Records counts the records the stage emitted (a sink: wrote; a
	// source: read).
	Records int64
	// Side counts the records sent to each side output (dead letters, late
	// records), and SideNames names the record type of each (a
	// stages.DeadLetter, a stages.Late).
	Side      []int64
	SideNames []string
	// DroppedLate and DroppedClosed count the records a windowed stage
	// dropped: behind the allowed lateness, and for windows whose trigger
	// had finished.
	DroppedLate, DroppedClosed int64
	// Late counts the records a windowed stage added to windows the
	// watermark had passed, within the allowed lateness (late panes).
	Late int64
	// DeadLetters counts the records a transform sent to its side outputs
	// (the sum of Side; zero for other stages, whose side output holds
	// the records DroppedLate and DroppedClosed count).
	DeadLetters int64
	// Asides are examples of the records the stage set aside, with the
	// rule that did (explain-why): its late and dropped records, its dead
	// letters; at most plan.MaxAsides of each reason, the first of each
	// instance in instance order, by reason.
	Asides []plan.Aside
	// Total is what a source will read in all, or -1 when unknown (or the
	// stage is not a source).
	Total int64
}

// VertexStats describes one physical operator, summed over its instances.
type VertexStats struct {
	ID          int
	Name        string
	Parallelism int
	// Nodes names the node each instance ran on, in a job on a cluster
	// (the last attempt's placement).
	Nodes     []string `json:",omitempty"`
	RecordsIn int64
	// BytesIn and BytesOut estimate the bytes its instances took from
	// their inputs and sent on their outputs; Instances holds each
	// instance's numbers.
	BytesIn, BytesOut int64
	Instances         []InstanceStats
	// InputRecords holds the records each instance received on each
	// input: [input][instance].
	InputRecords [][]int64
	// Note is the plan's note on the vertex (a join's strategy, skew).
	Note string
	// Watermark is the least output watermark over the instances (unix
	// ns); HasWatermark is false before any event time has reached the
	// vertex and after its end. Lag is how far the watermark trails the
	// greatest event time the job's sources have seen (Result.EventTime),
	// never the clock: a replay of last year's data lags by its disorder,
	// not by a year. It is zero while no source has seen an event time.
	Watermark    int64
	Lag          time.Duration
	HasWatermark bool
	// Busy is the time its instances spent working: handling messages,
	// a source's reads and a sink's writes included. Blocked is the time
	// an instance had output waiting for credit (for a source: the time it
	// could not read).
	Busy, Blocked time.Duration
	Restarts      int64
	// Retries counts a source's transient errors that were retried.
	Retries int64
	// PeakInFlight is the most records ever in flight on one of its output
	// channels, and LedgerChecks the number of invariant checks made.
	PeakInFlight int64
	LedgerChecks int64
	Finished     int // instances finished
}

// Result describes a job, while it runs or once it has ended.
type Result struct {
	Job string
	// Run is the run's ID, derived from Job and Seed; a run started again
	// with Config.Seed (sluice.Options.Seed) set to Seed has the same Run
	// and writes files of the same names.
	Run  string
	Seed uint64
	// Labels are Config.Labels, the user's labels of the job.
	Labels   map[string]string
	Plan     *plan.Physical
	Elapsed  time.Duration
	Stages   []StageStats
	Vertices []VertexStats
	// EventTime is the greatest event time (unix ns) that the vertices
	// reading or assigning event times have emitted, and HasEventTime
	// whether there has been one.
	EventTime    int64
	HasEventTime bool
	// Checkpoints are the checkpoints that ended, completed or abandoned,
	// in order (Config.Checkpoints).
	Checkpoints []core.CheckpointStat
	// Recoveries are the job's recoveries from checkpoints, in order;
	// Kills what chaos killed (Config.Chaos).
	Recoveries []RecoveryStat
	Kills      []Kill
	// Exceptions are the instances' failures, oldest first (the last few
	// of each instance): each restarted under the restart policy, or, past
	// it, the job's failure (which Recoveries then shows).
	Exceptions []Exception
}

// Exception is a failure of an instance: a panic or an error of a user
// function or a connector, the error naming the stage, the instance and,
// for a user function, the record.
type Exception struct {
	At       time.Time
	Vertex   int
	Instance int
	// Stage names the instance ("stage … instance i/n"); Node the node it
	// ran on, on a cluster.
	Stage string
	Node  string `json:",omitempty"`
	Error string
	// Restarted: the restart policy restarted the instance; false, it
	// had failed too often and the job failed.
	Restarted bool
}

// InstanceStats are one instance's numbers.
type InstanceStats struct {
	// Node is the node it ran on, on a cluster (the last attempt's).
	Node               string `json:",omitempty"`
	RecordsIn          int64
	RecordsOut         int64 // what its chain's last node emitted (a sink: wrote)
	BytesIn, BytesOut  int64 // estimated, as credit counts them
	Busy, Blocked      time.Duration
	Restarts           int64
	Watermark          int64 // unix ns, when HasWatermark
	HasWatermark, Done bool
}

// Call is an instance inside a call out of the runtime: into an operator
// step, which runs the user's functions of its chain, or into a source or
// sink connector.
type Call struct {
	Vertex   int
	Instance plan.Instance
	// What says what the call is: "in a user function", "reading split
	// S", "opening split S", "writing to its sink", "opening its sink".
	What string
	// Since is when it began on the job's clock, and For how long ago that
	// was.
	Since time.Time
	For   time.Duration
}

// Calls returns the instances that are inside a call now, longest first.
// It reads one atomic timestamp per instance; it is safe to call at any
// time.
func (x *Execution) Calls() []Call {
	now := x.cfg.Clock.Now()
	var out []Call
	for vi, v := range x.phys.Vertices {
		for _, h := range x.hosts[vi] {
			since := h.callSince.Load()
			if since == 0 {
				continue
			}
			c := Call{Vertex: v.ID, Instance: h.inst, Since: time.Unix(0, since)}
			c.For = max(0, now.Sub(c.Since))
			split := int(h.callSplit.Load())
			switch core.CallKind(h.callKind.Load()) {
			case core.CallStep:
				c.What = "in a user function"
			case core.CallRead:
				c.What = "reading split " + h.first.SplitDesc(split)
			case core.CallOpen:
				c.What = "opening split " + h.first.SplitDesc(split)
			case core.CallWrite:
				c.What = "writing to its sink"
			case core.CallOpenSink:
				c.What = "opening its sink"
			}
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b Call) int { return a.Since.Compare(b.Since) })
	return out
}

// Snapshot returns the job's statistics now. It is safe to call at any time.
func (x *Execution) Snapshot() *Result {
	r := &Result{Job: x.phys.Job, Run: x.run, Seed: x.cfg.Seed, Labels: x.cfg.Labels, Plan: x.phys, Elapsed: x.cfg.Clock.Now().Sub(x.start), EventTime: math.MinInt64}
	for _, hs := range x.hosts {
		for _, h := range hs {
			r.EventTime = max(r.EventTime, h.maxEvent.Load())
		}
	}
	r.HasEventTime = r.EventTime != math.MinInt64
	x.attMu.Lock()
	r.Checkpoints = slices.Clone(x.ckDone)
	if x.ck != nil {
		r.Checkpoints = append(r.Checkpoints, x.ck.stats()...)
	}
	x.attMu.Unlock()
	r.Recoveries, r.Kills = x.recoveries(), x.chaos.kills()
	for vi, v := range x.phys.Vertices {
		vs := VertexStats{ID: v.ID, Name: v.Name(), Parallelism: v.Parallelism, Note: v.Note,
			InputRecords: make([][]int64, len(v.In))}
		owner := x.attempt().owner
		if owner != nil {
			vs.Nodes = slices.Clone(owner[vi])
		}
		for i, h := range x.hosts[vi] {
			is := InstanceStats{RecordsIn: h.recordsIn.Load(), RecordsOut: h.nodeRecords[len(h.nodeRecords)-1].Load(),
				BytesIn: h.bytesIn.Load(), BytesOut: h.bytesOut.Load(), Busy: time.Duration(h.busy.Load()),
				Blocked: time.Duration(h.blocked.Load()), Restarts: h.restarts.Load(), Done: h.done.Load()}
			if wm := h.watermark.Load(); wm != math.MinInt64 && wm != math.MaxInt64 {
				is.Watermark, is.HasWatermark = wm, true
			}
			if owner != nil {
				is.Node = owner[vi][i]
			}
			vs.BytesIn += is.BytesIn
			vs.BytesOut += is.BytesOut
			vs.Instances = append(vs.Instances, is)
			r.Exceptions = append(r.Exceptions, h.exceptionsNow()...)
		}
		for i := range vs.InputRecords {
			vs.InputRecords[i] = make([]int64, v.Parallelism)
			for j, h := range x.hosts[vi] {
				vs.InputRecords[i][j] = h.inputs[i].Load()
			}
		}
		recs := make([]int64, len(v.Chain))
		side := make([][]int64, len(v.Chain))
		for i, n := range v.Chain {
			side[i] = make([]int64, len(n.Side))
		}
		var late, closed, added = make([]int64, len(v.Chain)), make([]int64, len(v.Chain)), make([]int64, len(v.Chain))
		asides := make([][]plan.Aside, len(v.Chain))
		for _, h := range x.hosts[vi] {
			h.asideMu.Lock()
			for i := range asides {
				asides[i] = appendAsides(asides[i], h.asides[i])
			}
			h.asideMu.Unlock()
			for i := range recs {
				late[i] += h.dropped[i][0].Load()
				closed[i] += h.dropped[i][1].Load()
				added[i] += h.late[i].Load()
				recs[i] += h.nodeRecords[i].Load()
				for p := range side[i] {
					side[i][p] += h.sideRecords[i][p].Load()
				}
			}
			vs.RecordsIn += h.recordsIn.Load()
			vs.Busy += time.Duration(h.busy.Load())
			vs.Blocked += time.Duration(h.blocked.Load())
			vs.Restarts += h.restarts.Load()
			vs.Retries += h.retries.Load()
			vs.PeakInFlight = max(vs.PeakInFlight, h.peak.Load())
			vs.LedgerChecks += h.checks.Load()
			if h.done.Load() {
				vs.Finished++
			}
		}
		for i := range asides {
			slices.SortStableFunc(asides[i], func(a, b plan.Aside) int { return int(a.Reason) - int(b.Reason) })
		}
		vs.Watermark = math.MaxInt64
		for _, h := range x.hosts[vi] {
			vs.Watermark = min(vs.Watermark, h.watermark.Load())
		}
		if vs.Watermark != math.MinInt64 && vs.Watermark != math.MaxInt64 {
			vs.HasWatermark = true
			if r.HasEventTime {
				vs.Lag = max(0, time.Duration(r.EventTime-vs.Watermark))
			}
		}
		r.Vertices = append(r.Vertices, vs)
		for i, n := range v.Chain {
			total := int64(-1)
			if n.Kind == plan.KindSource {
				total = v.Records()
			}
			names := make([]string, len(n.Side))
			for p, sd := range n.Side {
				names[p] = sd.Name
			}
			var dead int64
			if n.Kind == plan.KindTransform {
				for _, k := range side[i] {
					dead += k
				}
			}
			r.Stages = append(r.Stages, StageStats{DeadLetters: dead, Vertex: v.ID, Name: n.String(), Loc: n.Loc, Parallelism: v.Parallelism, Records: recs[i],
				Side: side[i], SideNames: names, Total: total, DroppedLate: late[i], DroppedClosed: closed[i],
				Late: added[i], Asides: asides[i]})
		}
	}
	slices.SortStableFunc(r.Exceptions, func(a, b Exception) int { return a.At.Compare(b.At) })
	return r
}

// exceptionsNow returns the instance's failures: its own, and on a
// cluster's coordinator those each node reported.
func (h *host) exceptionsNow() []Exception {
	h.asideMu.Lock()
	out := slices.Clone(h.exceptions)
	h.asideMu.Unlock()
	h.remoteMu.Lock()
	for _, s := range h.remoteLast {
		out = append(out, s.Exceptions...)
	}
	h.remoteMu.Unlock()
	return out
}
