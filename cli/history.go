package cli

import (
	"slices"
	"strconv"
	"time"

	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/plan"
)

// A node's job history: the jobs it ran stay in its list (GET /v1/jobs)
// with their duration, rows in and out and result, the last
// maxEndedJobs of them to end; a run that succeeded in more than
// slowFactor times the median of the same job's earlier successful runs on
// the node (at least minRunsForSlow of them, among those it keeps) is
// flagged slow, and exported as sluice_job_slow for alerting. Runs that
// failed count neither way: a failure says more than its duration.

const (
	// maxEndedJobs is how many ended jobs a node keeps, the last to end.
	maxEndedJobs = 100
	// slowFactor and minRunsForSlow decide a slow run.
	slowFactor     = 2
	minRunsForSlow = 3
)

// ended records job j's history as it ends, with the node's lock held:
// its name, duration and result, whether it was slow; it tells the
// metrics, and keeps the node's ended jobs to maxEndedJobs.
func (n *nodeServer) ended(j *nodeJob) {
	j.Name = n.c.jobName(j.Args)
	j.Duration = j.Ended.Sub(j.Started)
	j.Result = resultOf(j.Exit)
	var earlier []time.Duration
	for _, o := range n.jobs {
		if o != j && o.Ended != nil && o.Name == j.Name && o.Exit == exitOK {
			earlier = append(earlier, o.Duration)
		}
	}
	j.Slow = j.Exit == exitOK && slow(j.Duration, earlier)
	n.metrics.End(j.ID, j.Duration, j.Slow)
	n.bound()
}

// slow reports whether a run of duration d is slow beside earlier runs:
// more than slowFactor times their median, with minRunsForSlow of them at
// least.
func slow(d time.Duration, earlier []time.Duration) bool {
	if len(earlier) < minRunsForSlow {
		return false
	}
	return d > slowFactor*median(earlier)
}

// median returns the median of ds (the mean of the middle two of an even
// count); it sorts ds.
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	m := len(ds) / 2
	if len(ds)%2 == 1 {
		return ds[m]
	}
	return (ds[m-1] + ds[m]) / 2
}

// bound forgets the ended jobs past the last maxEndedJobs to end, and
// their metrics; the node's lock is held.
func (n *nodeServer) bound() {
	var ended []*nodeJob
	for _, j := range n.jobs {
		if j.Ended != nil {
			ended = append(ended, j)
		}
	}
	if len(ended) <= maxEndedJobs {
		return
	}
	slices.SortFunc(ended, func(a, b *nodeJob) int {
		if c := a.Ended.Compare(*b.Ended); c != 0 {
			return c
		}
		return a.Started.Compare(b.Started)
	})
	for _, j := range ended[:len(ended)-maxEndedJobs] {
		delete(n.jobs, j.ID)
		n.metrics.Remove(j.ID)
	}
}

// resultOf names an exit status of run as the job history has it.
func resultOf(code int) string {
	switch code {
	case exitOK:
		return "succeeded"
	case exitFailed:
		return "failed"
	case exitUsage:
		return "usage error"
	case exitStopped:
		return "stopped at a checkpoint"
	case 130, 143:
		return "interrupted"
	}
	return "exit " + strconv.Itoa(code)
}

// rowsOut sums what res's sinks wrote.
func rowsOut(res *actors.Result) int64 {
	var out int64
	kinds := stageKinds(res.Plan)
	for i, s := range res.Stages {
		if i < len(kinds) && kinds[i] == kindNames[plan.KindSink] {
			out += s.Records
		}
	}
	return out
}
