package core_test

import (
	"testing"
	"time"

	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
)

// stepSends steps op with ev (and a tick after data, to flush the batch)
// and returns the sends it made ready.
func stepSends(t *testing.T, op *core.Operator, ev core.Msg) []core.Msg {
	t.Helper()
	if err := op.Step(ev); err != nil {
		t.Fatal(err)
	}
	if ev.Kind == core.Data {
		if err := op.Step(core.Msg{Kind: core.Tick}); err != nil {
			t.Fatal(err)
		}
	}
	s := append([]core.Msg(nil), op.Ready().Sends...)
	op.Advance()
	return s
}

func hasIdle(ss []core.Msg) bool {
	for _, s := range ss {
		if s.Kind == core.Idle {
			return true
		}
	}
	return false
}

// TestIdleAgainAfterLateData: a source instance that goes idle, sends a
// batch whose times do not move its watermark (the batch makes the
// downstream channel active again) and goes quiet again sends its second
// idleness downstream too; otherwise the downstream watermark stays held by
// this channel's old watermark for good.
func TestIdleAgainAfterLateData(t *testing.T) {
	p := stages.NewPipeline("idle-again")
	ev := stages.EventTime(source(p), func(x int64) time.Time { return time.Unix(0, x) }, stages.IdleAfter(time.Second))
	stages.Collect(stages.GroupByKey(stages.KeyBy(ev, ident), stages.Parallelism(2)))
	phys := buildPlan(t, p, 1, 8)
	v := phys.Vertices[0]
	op := core.New(v, instance(phys, v, 0), core.Config{BatchRecords: 16, BatchBytes: 1 << 20, MaxParallelism: 8})
	batch := func(xs ...int64) *plan.Batch { return &plan.Batch{Data: xs} }

	stepSends(t, op, core.Msg{Kind: core.Data, Batch: batch(100), Time: 1})
	if !hasIdle(stepSends(t, op, core.Msg{Kind: core.Idle})) {
		t.Fatal("first idleness not sent")
	}
	data := stepSends(t, op, core.Msg{Kind: core.Data, Batch: batch(50), Time: 2}) // behind the watermark
	if len(data) == 0 {
		t.Fatal("the late record was not sent")
	}
	if !hasIdle(stepSends(t, op, core.Msg{Kind: core.Idle})) {
		t.Fatal("idleness after the channel was made active again by data was not sent: downstream waits on this channel forever")
	}
}
