package actors_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/stages"
)

// Two joins over the same two sources in opposite roles: each join's probe
// and build share no upstream stage, but source A feeds J1's probe and J2's
// build, and B the reverse. Holding both probes deadlocked (A waits on J1's
// held probe edge, so J2's build never ends, and B the same for J1): the
// planner holds a probe only when its side feeds nothing else (found by a
// review).
func TestCrossJoinsDoNotDeadlock(t *testing.T) {
	const n = 200_000
	p := stages.NewPipeline("cross")
	a := stages.Sequence(p, 0, n, stages.Parallelism(1))
	b := stages.Sequence(p, 0, n, stages.Parallelism(1))
	ka := stages.KeyBy(a, func(x int64) int64 { return x })
	kb := stages.KeyBy(b, func(x int64) int64 { return x })
	j1 := stages.Collect(stages.Map(stages.Join(ka, kb, stages.Inner), func(j stages.Joined[int64, int64, int64]) int64 { return j.Key }))
	j2 := stages.Collect(stages.Map(stages.Join(kb, ka, stages.Inner), func(j stages.Joined[int64, int64, int64]) int64 { return j.Key }))
	// The job takes under a second (under -race) when it does not hang.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := sluice.Run(ctx, p, sluice.Options{Parallelism: 1})
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		t.Fatalf("the job deadlocked: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(j1.Values()) != n || len(j2.Values()) != n {
		t.Fatalf("joined %d and %d rows, want %d each", len(j1.Values()), len(j2.Values()), n)
	}
}
