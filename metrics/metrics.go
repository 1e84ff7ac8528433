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
// Families (the labels job, run and job_id on each, and the job's own
// labels, Job.Labels; stage and vertex where they apply):
//
//	sluice_stage_records_total            records a stage emitted (a source: read; a sink: wrote)
//	sluice_stage_set_aside_records_total  records sent to a side output (output: the side's type)
//	sluice_stage_dropped_records_total    records a window dropped (reason: late, closed)
//	sluice_stage_late_records_total       records a window added behind the watermark (late panes)
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
//	sluice_job_duration_seconds           how long an ended job ran (a node's: Collector.End)
//	sluice_job_slow                       1 when an ended job took more than twice the median
//	                                      of its earlier runs (a node's: Collector.End), else 0
//
// A job's labels (sluice run --label team=search) are constant labels of
// its series, so the collector is unchecked: it describes no series
// beforehand, since the label names of the jobs to come are not known when
// it is registered.
package metrics

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

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
	// Labels are the job's own labels (sluice run --label), constant
	// labels of each of its series; nil takes its statistics' (its
	// Result.Labels). CheckLabels says which are valid.
	Labels map[string]string
}

// Collector is a prometheus.Collector of the jobs it is given. It is
// unchecked (see the package doc).
type Collector struct {
	mu   sync.Mutex
	jobs []*entry
}

// entry is a job and its series' descriptions, made at its first
// collection, when its labels are known.
type entry struct {
	j     Job
	once  sync.Once
	descs *descs
	// ended: End was called, with how long the job took and whether
	// that was slow (under the collector's lock).
	ended bool
	took  time.Duration
	slow  bool
}

// Add adds a job; it is described until the process ends or Remove
// removes it.
func (c *Collector) Add(j Job) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.jobs {
		if j.ID != "" && e.j.ID == j.ID { // the next execution of a rescaled job
			e.j = j
			return
		}
	}
	c.jobs = append(c.jobs, &entry{j: j})
}

// End records that the job of ID id ended after took, and whether that
// was slow (a node's job history: more than twice the median of the same
// job's earlier runs): the families sluice_job_duration_seconds and
// sluice_job_slow.
func (c *Collector) End(id string, took time.Duration, slow bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.jobs {
		if e.j.ID == id {
			e.ended, e.took, e.slow = true, took, slow
		}
	}
}

// Remove stops describing the jobs of ID id.
func (c *Collector) Remove(id string) {
	c.mu.Lock()
	c.jobs = slices.DeleteFunc(c.jobs, func(e *entry) bool { return e.j.ID == id })
	c.mu.Unlock()
}

var (
	jobLabels    = []string{"job", "run", "job_id"}
	stageLabels  = append(jobLabels[:len(jobLabels):len(jobLabels)], "stage", "vertex")
	vertexLabels = append(jobLabels[:len(jobLabels):len(jobLabels)], "vertex", "chain")
)

// reserved are the label names the families use themselves, which a job's
// labels cannot take.
var reserved = []string{"job", "run", "job_id", "stage", "vertex", "chain", "output", "reason", "result"}

// ErrLabel is wrapped by the errors of CheckLabels.
var ErrLabel = errors.New("metrics: invalid label")

// CheckLabels reports every label of labels whose name is not a
// Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__")
// or is one of the families' own (job, run, job_id, stage, vertex, chain,
// output, reason, result), or whose value is not UTF-8, naming each.
func CheckLabels(labels map[string]string) error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		switch {
		case !validName(k):
			errs = append(errs, fmt.Errorf("%w %q: a label's name is letters, digits and underscores, not starting with a digit", ErrLabel, k))
		case len(k) >= 2 && k[:2] == "__":
			errs = append(errs, fmt.Errorf("%w %q: names starting with __ are Prometheus's own", ErrLabel, k))
		case slices.Contains(reserved, k):
			errs = append(errs, fmt.Errorf("%w %q: sluice's metrics use that name themselves (%v)", ErrLabel, k, reserved))
		case !utf8.ValidString(labels[k]):
			errs = append(errs, fmt.Errorf("%w %q: its value is not UTF-8", ErrLabel, k))
		}
	}
	return errors.Join(errs...)
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// descs are the descriptions of one job's series: its labels are constant
// labels of each.
type descs struct {
	stageRecords, stageSide, stageDropped, stageLate                          *prometheus.Desc
	vertexIn, vertexBusy, vertexBlocked, vertexRestarts, vertexPar, vertexLag *prometheus.Desc
	checkpoints, ckptDuration, ckptSize, recoveries, elapsed, running         *prometheus.Desc
	duration, slow                                                            *prometheus.Desc
}

func newDescs(labels map[string]string) *descs {
	c := prometheus.Labels(labels)
	d := func(name, help string, variable []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, variable, c)
	}
	return &descs{
		stageRecords: d("sluice_stage_records_total",
			"Records a stage emitted (a source: read; a sink: wrote).", stageLabels),
		stageSide: d("sluice_stage_set_aside_records_total",
			"Records a stage sent to a side output (dead letters, late records).", append(stageLabels, "output")),
		stageDropped: d("sluice_stage_dropped_records_total",
			"Records a windowed stage dropped: behind the allowed lateness (late) or for a finished window (closed).",
			append(stageLabels, "reason")),
		stageLate: d("sluice_stage_late_records_total",
			"Records a windowed stage added to windows the watermark had passed, within the allowed lateness (late panes).", stageLabels),
		vertexIn: d("sluice_vertex_records_in_total",
			"Records a vertex received on its inputs.", vertexLabels),
		vertexBusy: d("sluice_vertex_busy_seconds_total",
			"Time a vertex's instances spent working, reads and writes included.", vertexLabels),
		vertexBlocked: d("sluice_vertex_blocked_seconds_total",
			"Time a vertex's instances had output waiting for credit: backpressure from downstream.", vertexLabels),
		vertexRestarts: d("sluice_vertex_restarts_total",
			"Restarts of a vertex's instances after a panic.", vertexLabels),
		vertexPar: d("sluice_vertex_parallelism",
			"A vertex's instances.", vertexLabels),
		vertexLag: d("sluice_vertex_watermark_lag_seconds",
			"How far a vertex's watermark trails the greatest event time the job's sources have seen (absent before its first watermark).",
			vertexLabels),
		checkpoints: d("sluice_checkpoints_total",
			"Checkpoints that ended, by result.", append(jobLabels, "result")),
		ckptDuration: d("sluice_checkpoint_last_duration_seconds",
			"The duration of the last completed checkpoint.", jobLabels),
		ckptSize: d("sluice_checkpoint_last_size_bytes",
			"The bytes the last completed checkpoint wrote.", jobLabels),
		recoveries: d("sluice_recoveries_total",
			"Recoveries of the job: from a checkpoint, or from the start.", jobLabels),
		elapsed: d("sluice_job_elapsed_seconds",
			"How long the job has run, or ran.", jobLabels),
		running: d("sluice_job_running",
			"1 while the job runs, 0 once it has ended.", jobLabels),
		duration: d("sluice_job_duration_seconds",
			"How long an ended job ran (a node's jobs).", jobLabels),
		slow: d("sluice_job_slow",
			"1 when an ended job took more than twice the median of the same job's earlier runs on the node (3 at least), else 0.",
			jobLabels),
	}
}

// Describe implements prometheus.Collector: it describes nothing, which
// makes the collector unchecked (see the package doc).
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	jobs := slices.Clone(c.jobs)
	js := make([]Job, len(jobs)) // copied under the lock: Add replaces a rescaled job's
	ends := make([]ended, len(jobs))
	for i, e := range jobs {
		js[i] = e.j
		ends[i] = ended{e.ended, e.took, e.slow}
	}
	c.mu.Unlock()
	for i, e := range jobs {
		collect(ch, e, js[i], ends[i])
	}
}

// ended is what End recorded of a job.
type ended struct {
	ended bool
	took  time.Duration
	slow  bool
}

func collect(ch chan<- prometheus.Metric, e *entry, j Job, end ended) {
	res := j.Snapshot()
	if res == nil {
		return
	}
	e.once.Do(func() {
		labels := j.Labels
		if labels == nil {
			labels = res.Labels
		}
		if CheckLabels(labels) != nil {
			labels = nil // the command line refuses them; a program's mistake
		}
		e.descs = newDescs(labels)
	})
	d := e.descs
	jl := []string{res.Job, res.Run, j.ID}
	with := func(extra ...string) []string { return append(append([]string(nil), jl...), extra...) }
	counter := func(desc *prometheus.Desc, v float64, labels []string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels []string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	for _, s := range res.Stages {
		l := with(s.Name, vertexName(s.Vertex))
		counter(d.stageRecords, float64(s.Records), l)
		for i, n := range s.Side {
			name := ""
			if i < len(s.SideNames) {
				name = s.SideNames[i]
			}
			counter(d.stageSide, float64(n), append(l[:len(l):len(l)], name))
		}
		if s.DroppedLate > 0 || s.DroppedClosed > 0 {
			counter(d.stageDropped, float64(s.DroppedLate), append(l[:len(l):len(l)], "late"))
			counter(d.stageDropped, float64(s.DroppedClosed), append(l[:len(l):len(l)], "closed"))
		}
		if s.Late > 0 {
			counter(d.stageLate, float64(s.Late), l)
		}
	}
	for _, v := range res.Vertices {
		l := with(vertexName(v.ID), v.Name)
		counter(d.vertexIn, float64(v.RecordsIn), l)
		counter(d.vertexBusy, v.Busy.Seconds(), l)
		counter(d.vertexBlocked, v.Blocked.Seconds(), l)
		counter(d.vertexRestarts, float64(v.Restarts), l)
		gauge(d.vertexPar, float64(v.Parallelism), l)
		if v.HasWatermark {
			gauge(d.vertexLag, v.Lag.Seconds(), l)
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
		gauge(d.ckptDuration, time.Duration(ck.End-ck.Start).Seconds(), jl)
		gauge(d.ckptSize, float64(ck.Bytes), jl)
	}
	counter(d.checkpoints, done, with("completed"))
	counter(d.checkpoints, abandoned, with("abandoned"))
	counter(d.recoveries, float64(len(res.Recoveries)), jl)
	gauge(d.elapsed, res.Elapsed.Seconds(), jl)
	run := 0.0
	if j.Running() {
		run = 1
	}
	gauge(d.running, run, jl)
	if end.ended {
		gauge(d.duration, end.took.Seconds(), jl)
		slow := 0.0
		if end.slow {
			slow = 1
		}
		gauge(d.slow, slow, jl)
	}
}

func vertexName(id int) string { return "v" + strconv.Itoa(id) }

// Registry returns a registry of c and of the Go runtime's and the
// process's collectors.
func Registry(c *Collector) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}
