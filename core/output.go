package core

import "github.com/sluice-data/sluice/plan"

// output cuts the batches of one outgoing edge into per-channel batches of the
// configured size.
type output struct {
	e     *plan.Edge
	t     *plan.Type
	self  int
	limit int           // records per batch
	bufs  []*plan.Batch // partly filled batch per channel
	route []int32       // key group → channel, for hash edges
	rr    int
	salt  uint64  // round-robin counter for hot keys
	pt    int64   // the operator's processing time, set before each add
	bufPT []int64 // processing time of the first record in each buffer
}

func newOutput(e *plan.Edge, self int, cfg Config) *output {
	n := e.To.Parallelism
	limit := cfg.BatchRecords
	if sz := int64(e.Type.Size); sz > 0 && cfg.BatchBytes/sz < int64(limit) {
		limit = max(1, int(cfg.BatchBytes/sz))
	}
	// Round-robin starts at the sender's own index, so that many senders
	// with little data do not all start on channel 0.
	o := &output{e: e, t: e.Type, self: self, limit: limit, bufs: make([]*plan.Batch, n), rr: self, bufPT: make([]int64, n)}
	for i := range o.bufs {
		o.bufs[i] = &plan.Batch{}
	}
	if e.Kind == plan.Hash {
		o.route = plan.Route(cfg.MaxParallelism, n)
	}
	return o
}

func (o *output) add(edge int, b *plan.Batch, sends []Msg) []Msg {
	if o.t.Count(b) == 0 {
		return sends
	}
	switch o.e.Kind {
	case plan.Forward:
		return o.addTo(edge, o.self, b, sends)
	case plan.Rebalance:
		c := o.rr % len(o.bufs)
		o.rr++
		return o.addTo(edge, c, b, sends)
	case plan.Broadcast:
		// One buffer for all channels, so every receiver gets the same
		// batch: receivers in one process may share what they build from it.
		k := len(sends)
		sends = o.addTo(edge, 0, b, sends)
		return o.copyToAll(sends, k)
	case plan.Hash:
		// Empty buffers start with room for their share of b and more, so
		// that partitioning does not grow them from nothing append by
		// append (W3 allocated 850 MB that way for 10 M records).
		room := min(o.limit, max(64, 2*o.t.Count(b)/len(o.bufs)))
		for c, buf := range o.bufs {
			if o.t.Count(buf) == 0 {
				o.bufPT[c] = o.pt
				if buf.Data == nil {
					buf.Data = o.t.New(room)
					if b.Times != nil && buf.Times == nil {
						buf.Times = make([]int64, 0, room)
					}
				}
			}
		}
		o.e.Key.Partition(b, o.route, o.bufs, o.e.Hot, &o.salt)
		for c, buf := range o.bufs {
			if o.t.Count(buf) >= o.limit {
				sends = o.cut(edge, c, sends, false)
			}
		}
		return sends
	}
	panic("core: unknown edge kind " + o.e.Kind.String())
}

// addTo adds b to channel c: a batch of a good size goes as it is, a small
// one is gathered with others.
func (o *output) addTo(edge, c int, b *plan.Batch, sends []Msg) []Msg {
	n := o.t.Count(b)
	buf := o.bufs[c]
	if o.t.Count(buf) == 0 && n >= o.limit/2 && n <= o.limit {
		return append(sends, Msg{Kind: Data, Edge: edge, Channel: c, Batch: b, Records: n, Bytes: int64(n) * int64(o.t.Size), Time: o.pt})
	}
	if o.t.Count(buf) == 0 {
		o.bufPT[c] = o.pt
	}
	if buf.Data == nil {
		buf.Data = o.t.New(max(n, o.limit))
	}
	if b.Times != nil || buf.Times != nil {
		buf.Times = appendTimes(buf.Times, o.t.Count(buf), b.Times, n)
	}
	buf.Data = o.t.Append(buf.Data, b.Data, 0, n)
	if o.t.Count(buf) >= o.limit {
		return o.cut(edge, c, sends, false)
	}
	return sends
}

// appendTimes appends n times to dst (which covers have records), filling in
// zeros for whichever side has none.
func appendTimes(dst []int64, have int, src []int64, n int) []int64 {
	for len(dst) < have {
		dst = append(dst, 0)
	}
	if src == nil {
		return append(dst, make([]int64, n)...)
	}
	return append(dst, src[:n]...)
}

// cut sends channel c's buffer as batches of at most limit records, keeping
// a partial remainder unless all is set.
func (o *output) cut(edge, c int, sends []Msg, all bool) []Msg {
	buf := o.bufs[c]
	n := o.t.Count(buf)
	i := 0
	for ; n-i >= o.limit || (all && i < n); i += o.limit {
		j := min(i+o.limit, n)
		b := &plan.Batch{Data: o.t.Slice(buf.Data, i, j)}
		if buf.Times != nil {
			b.Times = buf.Times[i:j]
		}
		sends = append(sends, Msg{Kind: Data, Edge: edge, Channel: c, Batch: b, Records: j - i, Bytes: int64(j-i) * int64(o.t.Size), Time: o.bufPT[c]})
	}
	rest := &plan.Batch{}
	if i < n {
		rest.Data = o.t.Append(o.t.New(o.limit), buf.Data, i, n)
		if buf.Times != nil {
			rest.Times = append(make([]int64, 0, o.limit), buf.Times[i:n]...)
		}
	}
	o.bufs[c] = rest
	return sends
}

// copyToAll repeats the sends from index k on, made for channel 0, for every
// other channel.
func (o *output) copyToAll(sends []Msg, k int) []Msg {
	made := len(sends)
	for i := k; i < made; i++ {
		for c := 1; c < len(o.bufs); c++ {
			s := sends[i]
			s.Channel = c
			sends = append(sends, s)
		}
	}
	return sends
}

func (o *output) flush(edge int, sends []Msg) []Msg {
	if o.e.Kind == plan.Broadcast {
		if o.t.Count(o.bufs[0]) == 0 {
			return sends
		}
		k := len(sends)
		sends = o.cut(edge, 0, sends, true)
		return o.copyToAll(sends, k)
	}
	for c := range o.bufs {
		if o.t.Count(o.bufs[c]) > 0 {
			sends = o.cut(edge, c, sends, true)
		}
	}
	return sends
}

func (o *output) end(edge int, sends []Msg) []Msg {
	for c := range o.bufs {
		sends = append(sends, Msg{Kind: EndOfInput, Edge: edge, Channel: c})
	}
	return sends
}

func (o *output) buffered() bool {
	for _, b := range o.bufs {
		if o.t.Count(b) > 0 {
			return true
		}
	}
	return false
}

// outputState is what add changes in an output, saved to undo it.
type outputState struct {
	o     *output
	rr    int
	salt  uint64
	bufs  []*plan.Batch
	lens  []int
	times []int
}

func (o *output) save() outputState {
	st := outputState{o: o, rr: o.rr, salt: o.salt, bufs: append([]*plan.Batch(nil), o.bufs...),
		lens: make([]int, len(o.bufs)), times: make([]int, len(o.bufs))}
	for c, b := range o.bufs {
		st.lens[c] = o.t.Count(b)
		st.times[c] = len(b.Times)
	}
	return st
}

func (st outputState) restore() {
	o := st.o
	o.rr, o.salt = st.rr, st.salt
	for c, b := range st.bufs {
		if b.Data != nil {
			b.Data = o.t.Slice(b.Data, 0, st.lens[c])
		}
		if b.Times != nil {
			b.Times = b.Times[:st.times[c]]
		}
		o.bufs[c] = b
	}
}
