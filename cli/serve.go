package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/dashboard"
	"github.com/sluice-data/sluice/metrics"
	"github.com/sluice-data/sluice/plan"
)

// jobView is a job's statistics as the JSON API gives them (GET /v1/job of
// 'sluice run --http', GET /v1/jobs/ID/stats of a node): the summary's
// numbers, per stage and vertex, and the physical plan's edges. The job
// page (package dashboard) reads only this. Its fields:
//
//	id, job, run     the node's job ID (empty for 'sluice run'), the job's
//	                 name and the run's ID
//	labels           the job's labels (run --label), when it has any
//	running          false once the job has ended
//	elapsed_ns       time since the job started; the page's rates are the
//	                 differences of two polls over the difference of this
//	event_time_ns    the greatest event time the sources have seen (unix
//	                 ns), when has_event_time
//	stages           actors.StageStats, one per logical stage in plan
//	                 order, under its Go field names: Vertex (the vertex it
//	                 is fused into), Name, Loc, Parallelism, Records, Side,
//	                 SideNames, DroppedLate, DroppedClosed, Late,
//	                 DeadLetters, Asides (explain-why: plan.Aside, up to
//	                 plan.MaxAsides examples per reason, Reason named
//	                 late, too late, window closed or dead letter), Total
//	                 (a source's records in all, -1 unknown or not a
//	                 source)
//	stage_kinds      what each of stages is, in the same order: source,
//	                 transform, stateful or sink
//	vertices         actors.VertexStats, one per physical vertex: ID, Name,
//	                 Parallelism, RecordsIn, InputRecords ([input][instance]),
//	                 Note, Watermark (unix ns, when HasWatermark), Lag,
//	                 Busy, Blocked (ns, summed over instances), Restarts,
//	                 Retries, PeakInFlight, LedgerChecks, Finished, Nodes
//	                 (the node of each instance, on a cluster)
//	edges            edgeView, one per physical edge (see there)
//	checkpoints      core.CheckpointStat: ID, Start, End (unix ns),
//	                 Completed, Reason, Bytes, ByStage, Alignment (ns)
//	recoveries       actors.RecoveryStat: Attempt, Cause, Checkpoint,
//	                 Skipped, Failed (RFC 3339), Restored (ns), Replayed
//	kills            actors.Kill: what --chaos killed
//	exceptions       actors.Exception: the instances' failures, oldest
//	                 first: At, Vertex, Instance, Stage, Node, Error (the
//	                 error names the stage, instance and, for a user
//	                 function, the record), Restarted
//	vertices[].Instances  actors.InstanceStats per instance: Node,
//	                 RecordsIn, RecordsOut, BytesIn, BytesOut (estimated),
//	                 Busy, Blocked (ns), Restarts, Watermark, HasWatermark,
//	                 Done; vertices[].BytesIn, BytesOut their sums
type jobView struct {
	ID           string                `json:"id,omitempty"`
	Job          string                `json:"job"`
	Run          string                `json:"run"`
	Labels       map[string]string     `json:"labels,omitempty"`
	Running      bool                  `json:"running"`
	Elapsed      time.Duration         `json:"elapsed_ns"`
	EventTime    int64                 `json:"event_time_ns,omitempty"`
	HasEventTime bool                  `json:"has_event_time"`
	Stages       []actors.StageStats   `json:"stages"`
	StageKinds   []string              `json:"stage_kinds"`
	Vertices     []actors.VertexStats  `json:"vertices"`
	Edges        []edgeView            `json:"edges"`
	Checkpoints  []core.CheckpointStat `json:"checkpoints,omitempty"`
	Recoveries   []actors.RecoveryStat `json:"recoveries,omitempty"`
	Kills        []actors.Kill         `json:"kills,omitempty"`
	Exceptions   []actors.Exception    `json:"exceptions,omitempty"`
}

// edgeView is one edge of the physical plan, as jobView has it.
type edgeView struct {
	ID int `json:"id"`
	// From and To are vertex IDs; Input is the edge's index among To's
	// inputs (VertexStats.InputRecords[Input]).
	From  int `json:"from"`
	To    int `json:"to"`
	Input int `json:"input"`
	// Kind is forward, hash, broadcast or rebalance.
	Kind string `json:"kind"`
	// Stage names the stage of From whose output the edge carries; Port is
	// 0 for its main output, n for its side output n, whose record type
	// Side names.
	Stage string `json:"stage"`
	Port  int    `json:"port"`
	Side  string `json:"side,omitempty"`
	// HotKeys counts the skewed keys a hash edge routes apart.
	HotKeys int `json:"hot_keys,omitempty"`
}

// edgesOf returns p's edges as jobView has them.
func edgesOf(p *plan.Physical) []edgeView {
	out := make([]edgeView, 0, len(p.Edges))
	for _, e := range p.Edges {
		ev := edgeView{ID: e.ID, From: e.From.ID, To: e.To.ID, Input: e.Input, Kind: e.Kind.String(), Port: e.Port}
		if e.FromNode >= 0 && e.FromNode < len(e.From.Chain) {
			n := e.From.Chain[e.FromNode]
			ev.Stage = n.String()
			if e.Port > 0 && e.Port <= len(n.Side) {
				ev.Side = n.Side[e.Port-1].Name
			}
		}
		if e.Hot != nil {
			ev.HotKeys = len(e.Hot.Channels)
		}
		out = append(out, ev)
	}
	return out
}

// kindNames name plan.Kind values as stage_kinds has them.
var kindNames = map[plan.Kind]string{plan.KindSource: "source", plan.KindTransform: "transform", plan.KindStateful: "stateful", plan.KindSink: "sink"}

// stageKinds returns the kinds of p's stages in the order of
// Result.Stages: by vertex, then along each chain.
func stageKinds(p *plan.Physical) []string {
	var out []string
	for _, v := range p.Vertices {
		for _, n := range v.Chain {
			out = append(out, kindNames[n.Kind])
		}
	}
	return out
}

// running reports whether x has not ended.
func running(x *actors.Execution) bool {
	select {
	case <-x.Done():
		return false
	default:
		return true
	}
}

func viewOf(id string, x *actors.Execution) jobView {
	res := x.Snapshot()
	v := jobView{ID: id, Job: res.Job, Run: res.Run, Labels: res.Labels, Running: running(x), Elapsed: res.Elapsed, HasEventTime: res.HasEventTime,
		Stages: res.Stages, StageKinds: stageKinds(res.Plan), Vertices: res.Vertices, Edges: edgesOf(res.Plan), Checkpoints: res.Checkpoints,
		Recoveries: res.Recoveries, Kills: res.Kills, Exceptions: res.Exceptions}
	if res.HasEventTime {
		v.EventTime = res.EventTime
	}
	return v
}

// observe adds the endpoints every process that runs jobs serves to mux:
// /metrics (Prometheus) and /debug/pprof/.
func observe(mux *http.ServeMux, c *metrics.Collector) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.Registry(c), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// page adds the job's web page (package dashboard) to mux: GET / exactly,
// and its assets under /assets/. The page polls the JSON API; on a node it
// takes its job's URL from ?job= (/?job=/v1/jobs/ID/stats).
func page(mux *http.ServeMux) {
	h := dashboard.Handler()
	mux.Handle("GET /{$}", h)
	mux.Handle("GET /assets/", h)
}

// wellFormed answers 400 for a request whose path is not clean (dot
// segments, empty segments, control characters) instead of letting the mux
// redirect it elsewhere, and passes the others to h.
func wellFormed(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; !cleanPath(p) {
			writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("malformed path %q: give a clean absolute path (GET /, /v1/job, /metrics, /debug/pprof/)", p)})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// cleanPath reports whether p is an absolute path without empty, "." or
// ".." segments and without control characters; a trailing slash is
// allowed.
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\' {
			return false
		}
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return !strings.Contains(p, "//")
}

// jobHandler is what serveJob serves for x: its page at /, /v1/job,
// /metrics and /debug/pprof/. Unknown paths get a JSON 404 that lists what
// is served, malformed ones a 400.
func jobHandler(x *actors.Execution) http.Handler {
	col := &metrics.Collector{}
	col.Add(metrics.Job{Snapshot: x.Snapshot, Running: func() bool { return running(x) }})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/job", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, viewOf("", x)) })
	observe(mux, col)
	page(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{fmt.Sprintf("no endpoint %s %s: GET / (the job's page), /v1/job, /metrics, /debug/pprof/", r.Method, r.URL.Path)})
	})
	return wellFormed(mux)
}

// loopbackDefault returns addr, an --http address, with the loopback
// host 127.0.0.1 when it has none (":4040"): the job's page, /metrics and
// /debug/pprof/ stay local unless a host is given (0.0.0.0:4040 for
// every interface).
func loopbackDefault(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr // net.Listen says what is wrong with it
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// jobServer serves run's job on --http: jobHandler of the execution
// running now (a rescaled job's executions one after the other), 503
// between them.
type jobServer struct {
	srv *http.Server
	cur atomic.Pointer[http.Handler]
	// announce says where the job is served, once its first execution is
	// (what is printed can be asked at once).
	announce func()
	once     sync.Once
	ln       net.Listener
}

// serveJob serves on ln until stop: jobHandler of the execution set last,
// with headers over 64 KiB answered 431. It warns when ln is not on a
// loopback address.
func (c *invocation) serveJob(ln net.Listener) *jobServer {
	js := &jobServer{}
	js.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h := js.cur.Load(); h != nil {
				(*h).ServeHTTP(w, r)
				return
			}
			writeJSON(w, http.StatusServiceUnavailable, apiError{"the job is starting, or rescaling: its next execution has not started yet"})
		})}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		c.warnf("--http %s: the job's page, /metrics and /debug/pprof/ are open to every host that can reach this one (give 127.0.0.1:PORT to keep them local)", ln.Addr())
	}
	// It serves from the first execution on: till then a client waits in
	// the listen queue rather than get a 503 for a job not started yet.
	js.ln = ln
	js.announce = func() {
		go func() {
			if err := js.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				c.warnf("--http %s: %v", ln.Addr(), err)
			}
		}()
		fmt.Fprintf(c.stderr, "serving the job on http://%s/ (its page; /v1/job, /metrics)\n", ln.Addr())
	}
	return js
}

// set serves x from now on; nil: none (503).
func (js *jobServer) set(x *actors.Execution) {
	if x == nil {
		js.cur.Store(nil)
		return
	}
	h := jobHandler(x)
	js.cur.Store(&h)
	js.once.Do(js.announce)
}

// stop closes the server and its listener.
func (js *jobServer) stop() {
	served := true
	js.once.Do(func() { served = false })
	if !served {
		_ = js.ln.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = js.srv.Shutdown(ctx)
}
