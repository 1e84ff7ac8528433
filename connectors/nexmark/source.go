package nexmark

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/sluice-data/sluice/stages"
)

// Source returns the source of cfg's events: splits are contiguous ranges
// of Event.N with exact counts, and a reader's position is the N of its
// next event, so a split opens anywhere at once (stages.Seeker). An
// invalid cfg is reported when the runtime lists the splits, with every
// problem at once. The records carry no event time: Read adds it.
func Source(cfg Config) stages.Source[Event] {
	return &source{cfg: cfg, invalid: cfg.Validate()}
}

// Read adds a source stage of cfg's events to p, named "nexmark" unless
// opts name it, followed by a stages.EventTime fused with it: each
// event's time is Event.Time, and the watermark trails the greatest time
// an instance has seen by Generator.Disorder, so that no event is late. An
// invalid cfg fails sluice.Plan and sluice.Run with an error naming the
// stage and wrapping ErrConfig.
//
// The events are the same whatever the number of splits and instances; an
// instance reads its splits in event order. With parallelism 1 (and
// Splits 1, or any) they come out in Beam's generation order.
func Read(p *stages.Pipeline, cfg Config, opts ...stages.SourceOption) stages.Stream[Event] {
	src := stages.Read(p, Source(cfg), append([]stages.SourceOption{stages.Name("nexmark")}, opts...)...)
	var disorder stages.EventTimeOption
	if g, err := New(cfg); err == nil {
		disorder = stages.MaxDelay(g.Disorder())
	} else {
		disorder = stages.MaxDelay(0) // the source's Splits reports the error
	}
	return stages.EventTime(src, Event.EventTime, disorder, stages.Name("nexmark event time"))
}

type source struct {
	cfg     Config
	invalid error // from Validate; immutable

	once sync.Once
	gen  *Generator
	err  error
}

func (s *source) generator() (*Generator, error) {
	if s.invalid != nil {
		return nil, s.invalid
	}
	s.once.Do(func() { s.gen, s.err = New(s.cfg) })
	return s.gen, s.err
}

// eventRange is a split's events: N in [lo, hi).
type eventRange struct{ lo, hi int64 }

// Splits implements stages.Source.
func (s *source) Splits(context.Context) ([]stages.Split, error) {
	g, err := s.generator()
	if err != nil {
		return nil, err
	}
	events := g.Events()
	n := s.cfg.splitCount()
	out := make([]stages.Split, n)
	for i := range n {
		lo, hi := splitRange(events, n, i)
		out[i] = stages.Split{Index: int(i), Records: hi - lo, Bytes: s.cfg.estimatedBytes(hi - lo),
			Desc: fmt.Sprintf("nexmark events [%d, %d)", lo, hi), Data: eventRange{lo, hi}}
	}
	return out, nil
}

// estimatedBytes is Beam's estimatedBytesForEvents.
func (c Config) estimatedBytes(events int64) int64 {
	d := c.totalProportion()
	return (events*int64(c.PersonProportion))/d*int64(c.AvgPersonByteSize) +
		(events*int64(c.AuctionProportion))/d*int64(c.AvgAuctionByteSize) +
		(events*int64(c.BidProportion))/d*int64(c.AvgBidByteSize)
}

func (s *source) open(sp stages.Split) (*Generator, eventRange, error) {
	g, err := s.generator()
	if err != nil {
		return nil, eventRange{}, err
	}
	r, ok := sp.Data.(eventRange)
	if !ok || r.lo < 0 || r.lo > r.hi || r.hi > g.Events() {
		return nil, eventRange{}, fmt.Errorf("nexmark: split %q is not one of this source's", sp.Desc)
	}
	return g, r, nil
}

// Open implements stages.Source.
func (s *source) Open(_ context.Context, _ stages.Instance, sp stages.Split) (stages.Reader[Event], error) {
	g, r, err := s.open(sp)
	if err != nil {
		return nil, err
	}
	return &reader{g: g, next: r.lo, end: r.hi}, nil
}

// OpenAt implements stages.Seeker: pos is the N of the next event, within
// the split.
func (s *source) OpenAt(_ context.Context, _ stages.Instance, sp stages.Split, pos []byte) (stages.Reader[Event], error) {
	g, r, err := s.open(sp)
	if err != nil {
		return nil, err
	}
	next, err := strconv.ParseInt(string(pos), 10, 64)
	if err != nil || next < r.lo || next > r.hi {
		return nil, fmt.Errorf("nexmark: position %q is not in split %q (events %d..%d)", pos, sp.Desc, r.lo, r.hi)
	}
	return &reader{g: g, next: next, end: r.hi}, nil
}

type reader struct {
	g         *Generator
	next, end int64
}

func (r *reader) Read(buf []Event) (int, error) {
	n := int(min(int64(len(buf)), r.end-r.next))
	r.g.Fill(buf[:n], r.next)
	r.next += int64(n)
	if r.next == r.end {
		return n, io.EOF
	}
	return n, nil
}

func (r *reader) Close() error { return nil }

// Position implements stages.Positioner: the N of the next event.
func (r *reader) Position() ([]byte, error) { return strconv.AppendInt(nil, r.next, 10), nil }
