package actors

import (
	"math"
	"time"

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
	// records).
	Side []int64
	// DroppedLate and DroppedClosed count the records a windowed stage
	// dropped: behind the allowed lateness, and for windows whose trigger
	// had finished.
	DroppedLate, DroppedClosed int64
	// Total is what a source will read in all, or -1 when unknown (or the
	// stage is not a source).
	Total int64
}

// VertexStats describes one physical operator, summed over its instances.
type VertexStats struct {
	ID          int
	Name        string
	Parallelism int
	RecordsIn   int64
	// InputRecords holds the records each instance received on each
	// input: [input][instance].
	InputRecords [][]int64
	// Note is the plan's note on the vertex (a join's strategy, skew).
	Note string
	// Watermark is the least output watermark over the instances (unix
	// ns), and Lag how far it trails the clock; HasWatermark is false
	// before any event time has reached the vertex and after its end.
	Watermark    int64
	Lag          time.Duration
	HasWatermark bool
	// Busy is the time spent processing; Blocked the time an instance had
	// output waiting for credit (for a source: the time it could not read).
	Busy, Blocked time.Duration
	Restarts      int64
	// PeakInFlight is the most records ever in flight on one of its output
	// channels, and LedgerChecks the number of invariant checks made.
	PeakInFlight int64
	LedgerChecks int64
	Finished     int // instances finished
}

// Result describes a job, while it runs or once it has ended.
type Result struct {
	Job      string
	Plan     *plan.Physical
	Elapsed  time.Duration
	Stages   []StageStats
	Vertices []VertexStats
}

// Snapshot returns the job's statistics now. It is safe to call at any time.
func (x *Execution) Snapshot() *Result {
	r := &Result{Job: x.phys.Job, Plan: x.phys, Elapsed: x.cfg.Clock.Now().Sub(x.start)}
	for vi, v := range x.phys.Vertices {
		vs := VertexStats{ID: v.ID, Name: v.Name(), Parallelism: v.Parallelism, Note: v.Note,
			InputRecords: make([][]int64, len(v.In))}
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
		var late, closed = make([]int64, len(v.Chain)), make([]int64, len(v.Chain))
		for _, h := range x.hosts[vi] {
			for i := range recs {
				late[i] += h.dropped[i][0].Load()
				closed[i] += h.dropped[i][1].Load()
				recs[i] += h.nodeRecords[i].Load()
				for p := range side[i] {
					side[i][p] += h.sideRecords[i][p].Load()
				}
			}
			vs.RecordsIn += h.recordsIn.Load()
			vs.Busy += time.Duration(h.busy.Load())
			vs.Blocked += time.Duration(h.blocked.Load())
			vs.Restarts += h.restarts.Load()
			vs.PeakInFlight = max(vs.PeakInFlight, h.peak.Load())
			vs.LedgerChecks += h.checks.Load()
			if h.done.Load() {
				vs.Finished++
			}
		}
		vs.Watermark = math.MaxInt64
		for _, h := range x.hosts[vi] {
			vs.Watermark = min(vs.Watermark, h.watermark.Load())
		}
		if vs.Watermark != math.MinInt64 && vs.Watermark != math.MaxInt64 {
			vs.HasWatermark = true
			vs.Lag = x.cfg.Clock.Now().Sub(time.Unix(0, vs.Watermark))
		}
		r.Vertices = append(r.Vertices, vs)
		for i, n := range v.Chain {
			total := int64(-1)
			if n.Kind == plan.KindSource {
				total = v.Records()
			}
			r.Stages = append(r.Stages, StageStats{Vertex: v.ID, Name: n.String(), Loc: n.Loc, Parallelism: v.Parallelism, Records: recs[i], Side: side[i], Total: total,
				DroppedLate: late[i], DroppedClosed: closed[i]})
		}
	}
	return r
}
