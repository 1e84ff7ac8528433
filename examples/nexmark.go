package examples

import (
	"time"

	"github.com/sluice-data/sluice/connectors/jsonl"
	"github.com/sluice-data/sluice/connectors/nexmark"
	"github.com/sluice-data/sluice/stages"
)

// NexmarkGen writes Nexmark events, as Beam's Java generator makes them,
// as JSON lines under out: one object per event in generation order, in
// the format of Beam's generator vectors (n, event_id, event_ts,
// watermark, wallclock_offset_ms, type, then the person's, auction's or
// bid's fields under Beam's names; see nexmark.Event.MarshalJSON). One
// instance reads and writes them, so that the one part file holds them in
// order. Its arguments, Beam's configuration's (the rest are Beam's
// defaults):
//
//	out           the directory to write into, replaced (required)
//	events        the number of events (100000)
//	generators    numEventGenerators: each event's delay is multiplied by it (100)
//	first-rate    firstEventRate, events per second (10000)
//	next-rate     nextEventRate, events per second (10000)
//	rate-shape    sine or square (sine)
//	rate-period   ratePeriodSec, the period of the rate's shape, a duration in whole seconds (10m)
//	out-of-order  outOfOrderGroupSize: events are permuted in groups of this many (1)
//	base-time     the time of event 0 in unix milliseconds (1436918400000, 2015-07-15)
//
//	sluice run nexmark-gen --arg out=/data/nexmark --arg events=1000000
var NexmarkGen = stages.Register("nexmark-gen", func(p *stages.Pipeline, args stages.Args) {
	out := args.String("out", "")
	if out == "" {
		args.Fail("out", "nexmark-gen needs out=DIR")
	}
	cfg := nexmarkConfig(p, args)
	jsonl.Write(nexmark.Read(p, cfg, stages.Parallelism(1)), out, stages.Parallelism(1))
}).Describe("writes Beam's Nexmark events as JSON lines under out=DIR, in order (events=100000 generators=100 first-rate=10000 next-rate=10000 rate-shape=sine rate-period=10m out-of-order=1)")

// nexmarkConfig reads the generator's arguments (nexmark-gen's, which the
// queries take too) into Beam's configuration.
func nexmarkConfig(p *stages.Pipeline, args stages.Args) nexmark.Config {
	d := nexmark.DefaultConfig()
	cfg := d
	cfg.NumEvents = int64(args.Int("events", int(d.NumEvents)))
	cfg.NumEventGenerators = args.Int("generators", d.NumEventGenerators)
	cfg.FirstEventRate = args.Int("first-rate", d.FirstEventRate)
	cfg.NextEventRate = args.Int("next-rate", d.NextEventRate)
	shape, err := nexmark.ParseRateShape(args.String("rate-shape", d.RateShape.String()))
	if err != nil {
		args.Fail("rate-shape", "want sine or square")
	}
	cfg.RateShape = shape
	period := args.Duration("rate-period", time.Duration(d.RatePeriodSec)*time.Second)
	if period < time.Second || period%time.Second != 0 {
		args.Fail("rate-period", "want a duration of whole seconds, 1s or more")
		period = time.Second
	}
	cfg.RatePeriodSec = int(period / time.Second)
	cfg.OutOfOrderGroupSize = int64(args.Int("out-of-order", int(d.OutOfOrderGroupSize)))
	cfg.BaseTime = int64(args.Int("base-time", int(d.BaseTime)))
	if cfg.NumEvents < 1 {
		// 0 would be Beam's "unbounded" maximum, some 10^14 events.
		args.Fail("events", "must be at least 1")
		cfg.NumEvents = 1
	}
	if err := cfg.Validate(); err != nil {
		p.Errorf("nexmark: %v", err)
	}
	return cfg
}
