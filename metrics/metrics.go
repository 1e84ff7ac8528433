// Package metrics exports running and finished jobs' statistics as
// Prometheus metrics (github.com/prometheus/client_golang).
//
// Nothing is counted for the metrics: a scrape reads each job's statistics
// (actors.Execution.Snapshot, the same numbers as the job's summary) and
// turns them into samples, so the metrics cost the job nothing between
// scrapes. Series are per job, stage and vertex, never per instance: an
// instance's numbers are in the job's JSON (and the summary), so the
// series of a job number its stages and vertices, whatever its
// parallelism.
//
// Families (the labels job, run and job_id on each; stage and vertex where
// they apply):
//
//	sluice_stage_records_total            records a stage emitted (a source: read; a sink: wrote)
//	sluice_stage_set_aside_records_total  records sent to a side output (output: the side's type)
//	sluice_stage_dropped_records_total    records a window dropped (reason: late, closed)
//	sluice_vertex_records_in_total        records a vertex received
//	sluice_vertex_busy_seconds_total      time its instances worked
//	sluice_vertex_blocked_seconds_total   time its instances waited for credit (backpressure)
//	sluice_vertex_restarts_total          restarts of its instances
//	sluice_vertex_parallelism             its instances
//	sluice_vertex_watermark_lag_seconds   how far its watermark trails the greatest event time seen
//	sluice_checkpoints_total              checkpoints ended (result: completed, abandoned)
//	sluice_checkpoint_last_duration_seconds, sluice_checkpoint_last_size_bytes
//	sluice_recoveries_total               recoveries from checkpoints (or from the start)
//	sluice_job_elapsed_seconds            how long the job has run, or ran
//	sluice_job_running                    1 while it runs, 0 after
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sluice-data/sluice/actors"
)

// Job is a job the metrics describe.
type Job struct {
	// ID tells the job from others of the same name in the process (a
	// node's job ID; "" for sluice run's one job).
	ID string
	// Snapshot returns the job's statistics now.
	Snapshot func() *actors.Result
	// Running reports whether it still runs.
	Running func() bool
}

// Collector is a prometheus.Collector of the jobs it is given.
type Collector struct {
	mu   sync.Mutex
	jobs []Job
}

// Add adds a job; it is described until the process ends.
func (c *Collector) Add(j Job) {
	c.mu.Lock()
	c.jobs = append(c.jobs, j)
	c.mu.Unlock()
}

var (
	jobLabels    = []string{"job", "run", "job_id"}
	stageLabels  = append(jobLabels[:len(jobLabels):len(jobLabels)], "stage", "vertex")
	vertexLabels = append(jobLabels[:len(jobLabels):len(jobLabels)], "vertex", "chain")

	stageRecords = prometheus.NewDesc("sluice_stage_records_total",
		"Records a stage emitted (a source: read; a sink: wrote).", stageLabels, nil)
	stageSide = prometheus.NewDesc("sluice_stage_set_aside_records_total",
		"Records a stage sent to a side output (dead letters, late records).", append(stageLabels, "output"), nil)
	stageDropped = prometheus.NewDesc("sluice_stage_dropped_records_total",
		"Records a windowed stage dropped: behind the allowed lateness (late) or for a finished window (closed).",
		append(stageLabels, "reason"), nil)
	vertexIn = prometheus.NewDesc("sluice_vertex_records_in_total",
		"Records a vertex received on its inputs.", vertexLabels, nil)
	vertexBusy = prometheus.NewDesc("sluice_vertex_busy_seconds_total",
		"Time a vertex's instances spent working, reads and writes included.", vertexLabels, nil)
	vertexBlocked = prometheus.NewDesc("sluice_vertex_blocked_seconds_total",
		"Time a vertex's instances had output waiting for credit: backpressure from downstream.", vertexLabels, nil)
	vertexRestarts = prometheus.NewDesc("sluice_vertex_restarts_total",
		"Restarts of a vertex's instances after a panic.", vertexLabels, nil)
	vertexParallelism = prometheus.NewDesc("sluice_vertex_parallelism",
		"A vertex's instances.", vertexLabels, nil)
	vertexLag = prometheus.NewDesc("sluice_vertex_watermark_lag_seconds",
		"How far a vertex's watermark trails the greatest event time the job's sources have seen (absent before its first watermark).",
		vertexLabels, nil)
	checkpoints = prometheus.NewDesc("sluice_checkpoints_total",
		"Checkpoints that ended, by result.", append(jobLabels, "result"), nil)
	ckptDuration = prometheus.NewDesc("sluice_checkpoint_last_duration_seconds",
		"The duration of the last completed checkpoint.", jobLabels, nil)
	ckptSize = prometheus.NewDesc("sluice_checkpoint_last_size_bytes",
		"The bytes the last completed checkpoint wrote.", jobLabels, nil)
	recoveries = prometheus.NewDesc("sluice_recoveries_total",
		"Recoveries of the job: from a checkpoint, or from the start.", jobLabels, nil)
	elapsed = prometheus.NewDesc("sluice_job_elapsed_seconds",
		"How long the job has run, or ran.", jobLabels, nil)
	running = prometheus.NewDesc("sluice_job_running",
		"1 while the job runs, 0 once it has ended.", jobLabels, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{stageRecords, stageSide, stageDropped, vertexIn, vertexBusy, vertexBlocked,
		vertexRestarts, vertexParallelism, vertexLag, checkpoints, ckptDuration, ckptSize, recoveries, elapsed, running} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	jobs := append([]Job(nil), c.jobs...)
	c.mu.Unlock()
	for _, j := range jobs {
		collect(ch, j)
	}
}

func collect(ch chan<- prometheus.Metric, j Job) {
	res := j.Snapshot()
	if res == nil {
		return
	}
	jl := []string{res.Job, res.Run, j.ID}
	with := func(extra ...string) []string { return append(append([]string(nil), jl...), extra...) }
	counter := func(d *prometheus.Desc, v float64, labels []string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels []string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, s := range res.Stages {
		l := with(s.Name, vertexName(s.Vertex))
		counter(stageRecords, float64(s.Records), l)
		for i, n := range s.Side {
			name := ""
			if i < len(s.SideNames) {
				name = s.SideNames[i]
			}
			counter(stageSide, float64(n), append(l[:len(l):len(l)], name))
		}
		if s.DroppedLate > 0 || s.DroppedClosed > 0 {
			counter(stageDropped, float64(s.DroppedLate), append(l[:len(l):len(l)], "late"))
			counter(stageDropped, float64(s.DroppedClosed), append(l[:len(l):len(l)], "closed"))
		}
	}
	for _, v := range res.Vertices {
		l := with(vertexName(v.ID), v.Name)
		counter(vertexIn, float64(v.RecordsIn), l)
		counter(vertexBusy, v.Busy.Seconds(), l)
		counter(vertexBlocked, v.Blocked.Seconds(), l)
		counter(vertexRestarts, float64(v.Restarts), l)
		gauge(vertexParallelism, float64(v.Parallelism), l)
		if v.HasWatermark {
			gauge(vertexLag, v.Lag.Seconds(), l)
		}
	}
	var done, abandoned float64
	lastDone := -1
	for i, ck := range res.Checkpoints {
		if ck.Completed {
			done, lastDone = done+1, i
		} else {
			abandoned++
		}
	}
	if lastDone >= 0 {
		ck := res.Checkpoints[lastDone]
		gauge(ckptDuration, time.Duration(ck.End-ck.Start).Seconds(), jl)
		gauge(ckptSize, float64(ck.Bytes), jl)
	}
	counter(checkpoints, done, with("completed"))
	counter(checkpoints, abandoned, with("abandoned"))
	counter(recoveries, float64(len(res.Recoveries)), jl)
	gauge(elapsed, res.Elapsed.Seconds(), jl)
	run := 0.0
	if j.Running() {
		run = 1
	}
	gauge(running, run, jl)
}

func vertexName(id int) string { return "v" + strconv.Itoa(id) }

// Registry returns a registry of c and of the Go runtime's and the
// process's collectors.
func Registry(c *Collector) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}
