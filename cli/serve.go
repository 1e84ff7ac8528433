package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/metrics"
)

// jobView is a job's statistics as the JSON API gives them: the summary's
// numbers, per stage and vertex.
type jobView struct {
	ID          string                `json:"id,omitempty"`
	Job         string                `json:"job"`
	Run         string                `json:"run"`
	Running     bool                  `json:"running"`
	Elapsed     time.Duration         `json:"elapsed_ns"`
	Stages      []actors.StageStats   `json:"stages"`
	Vertices    []actors.VertexStats  `json:"vertices"`
	Checkpoints []core.CheckpointStat `json:"checkpoints,omitempty"`
	Recoveries  []actors.RecoveryStat `json:"recoveries,omitempty"`
	Kills       []actors.Kill         `json:"kills,omitempty"`
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
	return jobView{ID: id, Job: res.Job, Run: res.Run, Running: running(x), Elapsed: res.Elapsed, Stages: res.Stages,
		Vertices: res.Vertices, Checkpoints: res.Checkpoints, Recoveries: res.Recoveries, Kills: res.Kills}
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

// serveJob serves run's job on ln (--http): /v1/job, /metrics and
// /debug/pprof/, until the returned function is called.
func (c *invocation) serveJob(ln net.Listener, x *actors.Execution) func() {
	col := &metrics.Collector{}
	col.Add(metrics.Job{Snapshot: x.Snapshot, Running: func() bool { return running(x) }})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/job", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, viewOf("", x)) })
	observe(mux, col)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, apiError{fmt.Sprintf("no endpoint %s %s: GET /v1/job, /metrics, /debug/pprof/", r.Method, r.URL.Path)})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.warnf("--http %s: %v", ln.Addr(), err)
		}
	}()
	fmt.Fprintf(c.stderr, "serving the job on http://%s (/v1/job, /metrics)\n", ln.Addr())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
}
