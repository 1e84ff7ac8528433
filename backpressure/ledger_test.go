package backpressure_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/backpressure"
)

var budget = backpressure.Budget{Credits: 3, BatchRecords: 10, Bytes: 100}

func TestBudgetValidate(t *testing.T) {
	tests := []struct {
		name string
		b    backpressure.Budget
		want []string // substrings, one per problem; none for a valid budget
	}{
		{name: "valid", b: budget},
		{name: "smallest", b: backpressure.Budget{Credits: 1, BatchRecords: 1, Bytes: 1}},
		{name: "no credits", b: backpressure.Budget{BatchRecords: 1, Bytes: 1}, want: []string{"Credits 0"}},
		{name: "negative records", b: backpressure.Budget{Credits: 1, BatchRecords: -1, Bytes: 1}, want: []string{"BatchRecords -1"}},
		{name: "all at once", b: backpressure.Budget{Credits: -2, BatchRecords: 0, Bytes: 0},
			want: []string{"Credits -2", "BatchRecords 0", "Bytes 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.b.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %d problems", len(tt.want))
			}
			if got := len(strings.Split(err.Error(), "\n")); got != len(tt.want) {
				t.Errorf("Validate() reported %d problems, want %d: %v", got, len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, missing %q", err, w)
				}
			}
		})
	}
}

func TestBudgetMaxRecords(t *testing.T) {
	tests := []struct {
		b    backpressure.Budget
		want int64
	}{
		{budget, 30},
		{backpressure.Budget{Credits: 1, BatchRecords: 1}, 1},
		{backpressure.Budget{Credits: 1 << 20, BatchRecords: 1 << 20}, 1 << 40}, // no int overflow
	}
	for _, tt := range tests {
		if got := tt.b.MaxRecords(); got != tt.want {
			t.Errorf("%+v.MaxRecords() = %d, want %d", tt.b, got, tt.want)
		}
	}
}

func TestCanSend(t *testing.T) {
	type send struct {
		records int
		bytes   int64
	}
	tests := []struct {
		name   string
		credit int    // granted before the sends
		sent   []send // already in flight
		bytes  int64
		want   bool
	}{
		{name: "closed channel", credit: 0, bytes: 1, want: false},
		{name: "credit and room", credit: 3, bytes: 100, want: true},
		{name: "oversized batch with nothing in flight", credit: 3, bytes: 1000, want: true},
		{name: "oversized batch behind another", credit: 3, sent: []send{{1, 1}}, bytes: 100, want: false},
		{name: "fills the byte bound exactly", credit: 3, sent: []send{{5, 40}}, bytes: 60, want: true},
		{name: "one byte over", credit: 3, sent: []send{{5, 40}}, bytes: 61, want: false},
		{name: "credit used up", credit: 2, sent: []send{{1, 1}, {1, 1}}, bytes: 1, want: false},
		{name: "empty batch", credit: 1, bytes: 0, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := backpressure.NewLedger(budget)
			l.Grant(backpressure.Grant{Credits: tt.credit})
			for _, s := range tt.sent {
				l.Send(s.records, s.bytes)
			}
			if got := l.CanSend(tt.bytes); got != tt.want {
				t.Errorf("CanSend(%d) = %v, want %v", tt.bytes, got, tt.want)
			}
		})
	}
}

// mustPanic runs f and returns the error it panicked with.
func mustPanic(t *testing.T, f func()) (err error) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("did not panic")
		}
		var ok bool
		if err, ok = r.(error); !ok {
			t.Fatalf("panicked with %T %v, want an error", r, r)
		}
	}()
	f()
	return nil
}

func TestSendViolationsPanic(t *testing.T) {
	tests := []struct {
		name string
		f    func(l *backpressure.Ledger)
		want string
	}{
		{name: "no credit yet", f: func(l *backpressure.Ledger) { l.Send(1, 1) }, want: "send without credit"},
		{name: "credit used up", f: func(l *backpressure.Ledger) {
			l.Grant(backpressure.Grant{Credits: 1})
			l.Send(1, 1)
			l.Send(1, 1)
		}, want: "send without credit"},
		{name: "over the byte bound", f: func(l *backpressure.Ledger) {
			l.Grant(backpressure.Grant{Credits: 3})
			l.Send(1, 90)
			l.Send(1, 11)
		}, want: "bytes in flight 90"},
		{name: "batch over BatchRecords", f: func(l *backpressure.Ledger) {
			l.Grant(backpressure.Grant{Credits: 3})
			l.Send(11, 1)
		}, want: "batch of 11 records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := backpressure.NewLedger(budget)
			err := mustPanic(t, func() { tt.f(l) })
			if !errors.Is(err, backpressure.ErrInvariant) {
				t.Errorf("panic %v does not wrap ErrInvariant", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("panic %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestLedgerAccounting walks a channel through open, sends and grants and
// checks the sender's view after every step.
func TestLedgerAccounting(t *testing.T) {
	l := backpressure.NewLedger(budget)
	r := backpressure.NewReceiver(budget)
	type view struct {
		credit                     int
		batches, records, bytes    int64
		peak                       int64
		canSendSmall, canSendLarge bool
	}
	look := func() view {
		b, rec, by := l.InFlight()
		return view{l.Credit(), b, rec, by, l.PeakRecords(), l.CanSend(1), l.CanSend(200)}
	}
	if g, ok := r.Take(); ok {
		t.Fatalf("Take before anything was consumed = %+v, true", g)
	}
	steps := []struct {
		name string
		do   func()
		want view
	}{
		{"new", func() {}, view{}},
		{"open", func() { l.Grant(r.Open()) }, view{credit: 3, canSendSmall: true, canSendLarge: true}},
		{"send 10r/40B", func() { l.Send(10, 40) }, view{2, 1, 10, 40, 10, true, false}},
		{"send 4r/30B", func() { l.Send(4, 30) }, view{1, 2, 14, 70, 14, true, false}},
		{"consume first", func() { r.Consumed(10, 40) }, view{1, 2, 14, 70, 14, true, false}},
		{"grant first", func() {
			g, ok := r.Take()
			if !ok || g != (backpressure.Grant{Credits: 1, Batches: 1, Records: 10, Bytes: 40}) {
				t.Errorf("Take() = %+v, %v", g, ok)
			}
			l.Grant(g)
		}, view{2, 1, 4, 30, 14, true, false}},
		{"send 9r/70B", func() { l.Send(9, 70) }, view{1, 2, 13, 100, 14, false, false}},
		{"consume both, grant once", func() {
			r.Consumed(4, 30)
			r.Consumed(9, 70)
			g, ok := r.Take()
			if !ok || g != (backpressure.Grant{Credits: 2, Batches: 2, Records: 13, Bytes: 100}) {
				t.Errorf("Take() = %+v, %v", g, ok)
			}
			l.Grant(g)
		}, view{3, 0, 0, 0, 14, true, true}},
		{"oversized batch alone", func() { l.Send(10, 500) }, view{2, 1, 10, 500, 14, false, false}},
	}
	for _, s := range steps {
		s.do()
		if got := look(); got != s.want {
			t.Fatalf("after %s: %+v, want %+v", s.name, got, s.want)
		}
	}
	if g, ok := r.Take(); ok {
		t.Errorf("second Take = %+v, true; want nothing pending", g)
	}
	if got := l.Checks(); got != 7 { // 4 sends and 3 grants
		t.Errorf("Checks() = %d, want 7: the invariant is checked on every Send and Grant", got)
	}
	if err := l.Check(); err != nil {
		t.Errorf("Check() = %v", err)
	}
	l.SetBacklog(7)
	if got := l.Backlog(); got != 7 {
		t.Errorf("Backlog() = %d, want 7", got)
	}
	if got := l.Budget(); got != budget {
		t.Errorf("Budget() = %+v, want %+v", got, budget)
	}
}

func TestPeakRecords(t *testing.T) {
	l := backpressure.NewLedger(budget)
	l.Grant(backpressure.Grant{Credits: 3})
	for _, step := range []struct {
		send, ack int
		want      int64
	}{
		{send: 5, want: 5},
		{send: 10, want: 15},
		{ack: 5, want: 15},
		{send: 1, want: 15},
		{send: 10, want: 21},
		{ack: 10, want: 21},
	} {
		if step.send > 0 {
			l.Send(step.send, 1)
		} else {
			l.Grant(backpressure.Grant{Credits: 1, Batches: 1, Records: int64(step.ack), Bytes: 1})
		}
		if got := l.PeakRecords(); got != step.want {
			t.Errorf("after send %d / ack %d: PeakRecords() = %d, want %d", step.send, step.ack, got, step.want)
		}
	}
}

// TestCheckCatchesBadReceivers: a receiver that acknowledges more than was
// sent, or grants more credit than the budget, breaks the invariant; Grant
// panics and Check keeps reporting it.
func TestCheckCatchesBadReceivers(t *testing.T) {
	tests := []struct {
		name  string
		grant backpressure.Grant
		want  string
	}{
		{"acks a batch never sent", backpressure.Grant{Credits: 1, Batches: 2, Records: 1, Bytes: 1}, "more consumed than sent"},
		{"acks records never sent", backpressure.Grant{Credits: 1, Batches: 1, Records: 6, Bytes: 1}, "more consumed than sent"},
		{"acks bytes never sent", backpressure.Grant{Credits: 1, Batches: 1, Records: 1, Bytes: 2}, "more consumed than sent"},
		{"opens twice", backpressure.Grant{Credits: 3}, "exceed 3 credits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := backpressure.NewLedger(budget)
			l.Grant(backpressure.Grant{Credits: 3})
			l.Send(5, 1)
			if err := l.Check(); err != nil {
				t.Fatalf("Check() before the bad grant = %v", err)
			}
			err := mustPanic(t, func() { l.Grant(tt.grant) })
			if !errors.Is(err, backpressure.ErrInvariant) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Grant panicked with %v, want ErrInvariant mentioning %q", err, tt.want)
			}
			if err := l.Check(); !errors.Is(err, backpressure.ErrInvariant) {
				t.Errorf("Check() after the bad grant = %v, want ErrInvariant", err)
			}
		})
	}
}

// TestRandomExchange runs a sender and a receiver through an in-memory
// channel under random interleavings: batches of random sizes (some larger
// than the byte bound), grants delayed and coalesced at random. Records in
// flight never exceed the budget and everything sent is consumed.
func TestRandomExchange(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			if err := exchange(seed); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
		})
	}
}

type batch struct {
	records int
	bytes   int64
}

func exchange(seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	b := backpressure.Budget{
		Credits:      1 + rng.IntN(5),
		BatchRecords: 1 + rng.IntN(50),
		Bytes:        1 + rng.Int64N(1000),
	}
	if err := b.Validate(); err != nil {
		return err
	}
	l := backpressure.NewLedger(b)
	r := backpressure.NewReceiver(b)

	var backlog []batch // at the sender, waiting for credit
	var total int64
	for range 200 + rng.IntN(300) {
		x := batch{records: 1 + rng.IntN(b.BatchRecords)}
		x.bytes = int64(x.records) * (1 + rng.Int64N(2*b.Bytes/int64(x.records)+1))
		backlog = append(backlog, x)
		total += int64(x.records)
	}
	var wire []batch                  // sent, not yet received
	var buffered []batch              // received, not yet consumed
	var grants []backpressure.Grant   // taken, not yet delivered
	grants = append(grants, r.Open()) // the opening grant travels too
	var consumed, trueInFlight int64  // records sent and not yet consumed
	var maxTrue int64

	check := func() error {
		bs, recs, bys := l.InFlight()
		switch {
		case recs > b.MaxRecords():
			return fmt.Errorf("%d records in flight, budget %d", recs, b.MaxRecords())
		case trueInFlight > recs:
			return fmt.Errorf("ledger sees %d records in flight, really %d", recs, trueInFlight)
		case bs > int64(b.Credits):
			return fmt.Errorf("%d batches in flight, %d credits", bs, b.Credits)
		case bys > b.Bytes && bs > 1:
			return fmt.Errorf("%d bytes in %d batches in flight, bound %d", bys, bs, b.Bytes)
		case len(wire)+len(buffered) > b.Credits:
			return fmt.Errorf("%d batches at the receiver, %d credits", len(wire)+len(buffered), b.Credits)
		}
		return l.Check()
	}

	for steps := 0; ; steps++ {
		if steps > 1_000_000 {
			return fmt.Errorf("no progress: backlog %d, wire %d, buffered %d, grants %d", len(backlog), len(wire), len(buffered), len(grants))
		}
		if len(backlog) == 0 && len(wire) == 0 && len(buffered) == 0 && len(grants) == 0 {
			break
		}
		switch rng.IntN(5) {
		case 0: // the sender sends what its credit allows
			for len(backlog) > 0 && l.CanSend(backlog[0].bytes) && rng.IntN(3) > 0 {
				x := backlog[0]
				backlog = backlog[1:]
				l.Send(x.records, x.bytes)
				wire = append(wire, x)
				trueInFlight += int64(x.records)
				maxTrue = max(maxTrue, trueInFlight)
			}
			l.SetBacklog(len(backlog))
		case 1: // the wire delivers some batches, in order
			n := rng.IntN(len(wire) + 1)
			buffered = append(buffered, wire[:n]...)
			wire = wire[n:]
		case 2: // the receiver consumes some
			for n := rng.IntN(len(buffered) + 1); n > 0; n-- {
				x := buffered[0]
				buffered = buffered[1:]
				r.Consumed(x.records, x.bytes)
				consumed += int64(x.records)
				trueInFlight -= int64(x.records)
			}
		case 3: // the receiver takes a grant
			if g, ok := r.Take(); ok {
				grants = append(grants, g)
			}
		case 4: // grants arrive, in order
			n := rng.IntN(len(grants) + 1)
			for _, g := range grants[:n] {
				l.Grant(g)
			}
			grants = grants[n:]
		}
		if err := check(); err != nil {
			return fmt.Errorf("step %d: %w", steps, err)
		}
	}
	if g, ok := r.Take(); ok { // consumed since the last grant
		l.Grant(g)
	}
	if consumed != total {
		return fmt.Errorf("consumed %d of %d records", consumed, total)
	}
	if bs, recs, bys := l.InFlight(); bs != 0 || recs != 0 || bys != 0 {
		return fmt.Errorf("at the end %d batches, %d records, %d bytes in flight", bs, recs, bys)
	}
	if l.Credit() != b.Credits {
		return fmt.Errorf("at the end credit %d, want %d", l.Credit(), b.Credits)
	}
	if l.PeakRecords() < maxTrue || l.PeakRecords() > b.MaxRecords() {
		return fmt.Errorf("PeakRecords %d, want in [%d, %d]", l.PeakRecords(), maxTrue, b.MaxRecords())
	}
	return nil
}
