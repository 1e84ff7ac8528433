package window

import (
	"fmt"
	"time"
)

// This file runs Trigger values as state machines. A trigger tree is
// compiled once into a flat program of nodes; every window keeps one small
// tstate per node. The semantics are Beam's (see the window package): a
// trigger's readiness (shouldFire) is a function of its state, the window,
// the input watermark and the processing time; the driver asks it at its
// evaluation points and calls onFire when it says yes. Every node carries a
// finished bit; a finished node takes no more records and never fires.

type tkind uint8

const (
	tDefault   tkind = iota // Repeatedly(AfterWatermark()), optimised
	tWatermark              // AfterWatermark, optional early and late children
	tCount                  // AfterCount(n)
	tProcTime               // AfterProcessingTime(delay), optionally aligned
	tRepeat                 // Repeatedly(child)
	tEach                   // AfterEach(children...)
	tAny                    // AfterAny / OrFinally(children...)
	tAll                    // AfterAll(children...)
	tNever                  // Never
)

type tnode struct {
	kind        tkind
	subs        []int32 // children of tRepeat (one), tEach, tAny, tAll
	early, late int32   // tWatermark children (tRepeat nodes), -1 if none
	n           int64   // tCount
	delay       time.Duration
	period      time.Duration // tProcTime alignment; 0 for none
	offset      time.Duration
}

const (
	fFinished uint8 = 1 << iota
	fLate           // tWatermark: the watermark has passed the end; late phase
	fDeadline       // tProcTime: deadline is set
)

// tstate is one node's state in one window.
type tstate struct {
	count    int64 // tCount: records in the pane
	deadline Time  // tProcTime: when to fire, if fDeadline
	flags    uint8
}

// program is a compiled trigger; node 0 is the root.
type program struct {
	nodes []tnode
	// onTime reports whether the trigger guarantees an ON_TIME pane
	// (Beam's has_ontime_pane): then an early pane keeps the window's
	// watermark hold for the ON_TIME pane.
	onTime bool
}

func compileTrigger(t Trigger) (*program, error) {
	p := &program{}
	if _, err := p.add(t); err != nil {
		return nil, err
	}
	p.onTime = hasOnTimePane(t)
	return p, nil
}

func (p *program) add(t Trigger) (int32, error) {
	i := int32(len(p.nodes))
	p.nodes = append(p.nodes, tnode{early: -1, late: -1})
	n := tnode{early: -1, late: -1}
	var subs []Trigger
	switch t := t.(type) {
	case DefaultTrigger:
		n.kind = tDefault
	case NeverTrigger:
		n.kind = tNever
	case AfterWatermarkTrigger:
		n.kind = tWatermark
		for _, x := range []struct {
			t   Trigger
			dst *int32
		}{{t.EarlyFirings(), &n.early}, {t.LateFirings(), &n.late}} {
			if x.t == nil {
				continue
			}
			j, err := p.add(Repeatedly(x.t))
			if err != nil {
				return 0, err
			}
			*x.dst = j
		}
	case AfterCountTrigger:
		n.kind, n.n = tCount, t.Count()
	case AfterProcessingTimeTrigger:
		n.kind, n.delay = tProcTime, t.Delay()
		n.period, n.offset = t.Alignment()
	case RepeatedlyTrigger:
		n.kind, subs = tRepeat, []Trigger{t.Subtrigger()}
	case AfterEachTrigger:
		n.kind, subs = tEach, t.Subtriggers()
	case AfterAnyTrigger:
		n.kind, subs = tAny, t.Subtriggers()
	case OrFinallyTrigger:
		n.kind, subs = tAny, []Trigger{t.Main(), t.Until()}
	case AfterAllTrigger:
		n.kind, subs = tAll, t.Subtriggers()
	default:
		return 0, fmt.Errorf("core: unsupported trigger %v (%T)", t, t)
	}
	for _, s := range subs {
		j, err := p.add(s)
		if err != nil {
			return 0, err
		}
		n.subs = append(n.subs, j)
	}
	p.nodes[i] = n
	return i, nil
}

func hasOnTimePane(t Trigger) bool {
	switch t := t.(type) {
	case DefaultTrigger, AfterWatermarkTrigger:
		return true
	case RepeatedlyTrigger:
		return hasOnTimePane(t.Subtrigger())
	case AfterEachTrigger:
		return anyOnTime(t.Subtriggers())
	case AfterAnyTrigger:
		return anyOnTime(t.Subtriggers())
	case AfterAllTrigger:
		return anyOnTime(t.Subtriggers())
	case OrFinallyTrigger:
		return anyOnTime([]Trigger{t.Main(), t.Until()})
	}
	return false
}

func anyOnTime(ts []Trigger) bool {
	for _, t := range ts {
		if hasOnTimePane(t) {
			return true
		}
	}
	return false
}

// tctx is what a trigger sees of its window and the clocks.
type tctx struct {
	win    Interval
	wm, pt Time
	st     []tstate
}

func (c *tctx) finished(i int32) bool { return c.st[i].flags&fFinished != 0 }

// endReached reports whether the watermark has passed the end of the window.
func (c *tctx) endReached() bool { return c.wm >= c.win.End }

func (p *program) onElement(i int32, c *tctx) {
	if c.finished(i) {
		return
	}
	n := &p.nodes[i]
	s := &c.st[i]
	switch n.kind {
	case tWatermark:
		if s.flags&fLate != 0 {
			if n.late >= 0 {
				p.onElement(n.late, c)
			}
		} else if n.early >= 0 {
			p.onElement(n.early, c)
		}
	case tCount:
		s.count++
	case tProcTime:
		if s.flags&fDeadline == 0 {
			s.deadline = alignUp(c.pt.Add(n.delay), n.period, n.offset)
			s.flags |= fDeadline
		}
	case tRepeat, tAny, tAll:
		for _, j := range n.subs {
			p.onElement(j, c)
		}
	case tEach:
		if j := p.current(n, c); j >= 0 {
			p.onElement(j, c)
		}
	}
}

// current returns AfterEach's first unfinished subtrigger, or -1.
func (p *program) current(n *tnode, c *tctx) int32 {
	for _, j := range n.subs {
		if !c.finished(j) {
			return j
		}
	}
	return -1
}

func (p *program) shouldFire(i int32, c *tctx) bool {
	if c.finished(i) {
		return false
	}
	n := &p.nodes[i]
	s := &c.st[i]
	switch n.kind {
	case tDefault:
		return c.endReached()
	case tWatermark:
		if s.flags&fLate != 0 {
			return n.late >= 0 && p.shouldFire(n.late, c)
		}
		return c.endReached() || (n.early >= 0 && p.shouldFire(n.early, c))
	case tCount:
		return s.count >= n.n
	case tProcTime:
		return s.flags&fDeadline != 0 && c.pt >= s.deadline
	case tRepeat:
		return p.shouldFire(n.subs[0], c)
	case tEach:
		j := p.current(n, c)
		return j >= 0 && p.shouldFire(j, c)
	case tAny:
		for _, j := range n.subs {
			if p.shouldFire(j, c) {
				return true
			}
		}
		return false
	case tAll:
		ready := false
		for _, j := range n.subs {
			if c.finished(j) {
				continue
			}
			if !p.shouldFire(j, c) {
				return false
			}
			ready = true
		}
		return ready
	}
	return false // tNever
}

// onFire runs the firing of node i, which shouldFire has just approved.
func (p *program) onFire(i int32, c *tctx) {
	n := &p.nodes[i]
	s := &c.st[i]
	switch n.kind {
	case tWatermark:
		switch {
		case s.flags&fLate != 0:
			p.onFire(n.late, c) // a Repeatedly: never finishes
		case c.endReached():
			// The ON_TIME firing: move to the late phase.
			s.flags |= fLate
			if n.early >= 0 {
				p.clear(n.early, c.st)
			}
			if n.late < 0 {
				s.flags |= fFinished
			}
		default:
			p.onFire(n.early, c)
		}
	case tCount, tProcTime:
		s.flags |= fFinished
	case tRepeat:
		j := n.subs[0]
		p.onFire(j, c)
		if c.finished(j) {
			p.clear(j, c.st)
		}
	case tEach:
		j := p.current(n, c)
		p.onFire(j, c)
		if p.current(n, c) < 0 {
			s.flags |= fFinished
		}
	case tAny, tAll:
		// Subtrees are independent, so asking and firing one at a time is
		// the same as asking all first.
		anyDone, allDone := false, true
		for _, j := range n.subs {
			if p.shouldFire(j, c) {
				p.onFire(j, c)
			}
			if c.finished(j) {
				anyDone = true
			} else {
				allDone = false
			}
		}
		if (n.kind == tAny && anyDone) || (n.kind == tAll && allDone) {
			s.flags |= fFinished
		}
	}
}

// clear resets node i and its subtree.
func (p *program) clear(i int32, st []tstate) {
	st[i] = tstate{}
	n := &p.nodes[i]
	for _, j := range n.subs {
		p.clear(j, st)
	}
	if n.early >= 0 {
		p.clear(n.early, st)
	}
	if n.late >= 0 {
		p.clear(n.late, st)
	}
}

// merge folds the trigger state of a window merged away into dst (Beam's
// Python semantics): counts add up, a finished or late bit set in either
// stays set, and the earlier deadline wins.
func (p *program) merge(dst, src []tstate) {
	for i := range dst {
		d, s := &dst[i], &src[i]
		d.count += s.count
		if s.flags&fDeadline != 0 && (d.flags&fDeadline == 0 || s.deadline < d.deadline) {
			d.deadline = s.deadline
		}
		d.flags |= s.flags
	}
}

// nextDeadline returns the earliest processing-time deadline after pt of
// an unfinished node.
func nextDeadline(st []tstate, pt Time) (Time, bool) {
	best, ok := MaxTime, false
	for i := range st {
		s := &st[i]
		if s.flags&(fDeadline|fFinished) == fDeadline && s.deadline > pt && s.deadline <= best {
			best, ok = s.deadline, true
		}
	}
	return best, ok
}

// alignUp rounds t up to the next time offset past a multiple of period.
func alignUp(t Time, period, offset time.Duration) Time {
	if period <= 0 {
		return t
	}
	p := Time(period)
	rem := floorMod(t, p) - floorMod(Time(offset), p)
	if rem < 0 {
		rem += p
	}
	if rem == 0 {
		return t
	}
	return t.Add(time.Duration(p - rem))
}
