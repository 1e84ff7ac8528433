// Package backpressure is the credit ledger of one channel of an edge (one
// sending instance to one receiving instance), after Flink's credit-based flow
// control: the receiver announces credit (batches it can take), the sender
// sends only while it holds credit and reports its backlog, and every grant
// returns what the receiver has consumed, so the sender always knows exactly
// what is in flight.
//
// Control events (watermarks, end of input, checkpoint barriers) travel in
// the same ordered channel behind the data but consume no credit; they are not
// the ledger's business.
//
// The ledger is pure: no goroutines, no clock. Its bindings (actor messages in
// one process, streams between processes) live in package actors.
package backpressure

import (
	"errors"
	"fmt"
)

// Budget bounds one channel.
type Budget struct {
	// Credits is the number of batches that may be in flight.
	Credits int
	// BatchRecords is the most records one batch may carry.
	BatchRecords int
	// Bytes bounds the estimated bytes in flight; one batch may always be
	// in flight, whatever its size, so that an oversized batch still moves.
	Bytes int64
}

// Validate reports every problem of b at once.
func (b Budget) Validate() error {
	var errs []error
	if b.Credits < 1 {
		errs = append(errs, fmt.Errorf("backpressure: Credits %d must be at least 1", b.Credits))
	}
	if b.BatchRecords < 1 {
		errs = append(errs, fmt.Errorf("backpressure: BatchRecords %d must be at least 1", b.BatchRecords))
	}
	if b.Bytes < 1 {
		errs = append(errs, fmt.Errorf("backpressure: Bytes %d must be at least 1", b.Bytes))
	}
	return errors.Join(errs...)
}

// MaxRecords is the most records the budget lets be in flight.
func (b Budget) MaxRecords() int64 { return int64(b.Credits) * int64(b.BatchRecords) }

// Grant is what a receiver sends back: new credit and what it consumed since
// its last grant.
type Grant struct {
	Credits int
	Batches int64
	Records int64
	Bytes   int64
}

// ErrInvariant is wrapped by every violation of the ledger's invariant.
var ErrInvariant = errors.New("backpressure: invariant violated")

// Ledger is the sender's side of a channel.
type Ledger struct {
	budget Budget
	credit int

	sentBatches, sentRecords, sentBytes int64
	ackBatches, ackRecords, ackBytes    int64

	backlog int
	checks  int64
	peak    int64 // most records ever in flight
}

// NewLedger returns a ledger with no credit: the receiver's first grant opens
// the channel.
func NewLedger(b Budget) *Ledger { return &Ledger{budget: b} }

// Budget returns the ledger's budget.
func (l *Ledger) Budget() Budget { return l.budget }

// CanSend reports whether a batch of the given estimated size may be sent now.
func (l *Ledger) CanSend(bytes int64) bool {
	if l.credit <= 0 {
		return false
	}
	inflight := l.sentBytes - l.ackBytes
	return inflight == 0 || inflight+bytes <= l.budget.Bytes
}

// Send records a batch sent. Sending without credit, or a batch over
// BatchRecords, is a programmer error and panics.
func (l *Ledger) Send(records int, bytes int64) {
	if !l.CanSend(bytes) {
		panic(fmt.Errorf("%w: send without credit (credit %d, bytes in flight %d, batch %d bytes)",
			ErrInvariant, l.credit, l.sentBytes-l.ackBytes, bytes))
	}
	if records > l.budget.BatchRecords {
		panic(fmt.Errorf("%w: batch of %d records over the limit of %d", ErrInvariant, records, l.budget.BatchRecords))
	}
	l.credit--
	l.sentBatches++
	l.sentRecords += int64(records)
	l.sentBytes += bytes
	l.mustCheck()
}

// Grant applies a receiver's grant.
func (l *Ledger) Grant(g Grant) {
	l.credit += g.Credits
	l.ackBatches += g.Batches
	l.ackRecords += g.Records
	l.ackBytes += g.Bytes
	l.mustCheck()
}

// SetBacklog records how many batches wait at the sender for credit.
func (l *Ledger) SetBacklog(n int) { l.backlog = n }

// Backlog returns the last backlog set.
func (l *Ledger) Backlog() int { return l.backlog }

// Credit returns the batches that may be sent now.
func (l *Ledger) Credit() int { return l.credit }

// InFlight returns what has been sent and not yet consumed.
func (l *Ledger) InFlight() (batches, records, bytes int64) {
	return l.sentBatches - l.ackBatches, l.sentRecords - l.ackRecords, l.sentBytes - l.ackBytes
}

// Checks returns how many times the invariant has been checked.
func (l *Ledger) Checks() int64 { return l.checks }

// PeakRecords returns the most records that were ever in flight at once.
func (l *Ledger) PeakRecords() int64 { return l.peak }

// Check verifies the invariant: what is in flight plus the credit held never
// exceeds the budget, and nothing is acknowledged that was not sent.
func (l *Ledger) Check() error {
	l.checks++
	b, r, by := l.InFlight()
	if r > l.peak {
		l.peak = r
	}
	switch {
	case b < 0 || r < 0 || by < 0:
		return fmt.Errorf("%w: more consumed than sent (%d batches, %d records, %d bytes in flight)", ErrInvariant, b, r, by)
	case b+int64(l.credit) > int64(l.budget.Credits):
		return fmt.Errorf("%w: %d batches in flight plus %d credit exceed %d credits", ErrInvariant, b, l.credit, l.budget.Credits)
	case r > l.budget.MaxRecords():
		return fmt.Errorf("%w: %d records in flight exceed the budget of %d", ErrInvariant, r, l.budget.MaxRecords())
	}
	return nil
}

func (l *Ledger) mustCheck() {
	if err := l.Check(); err != nil {
		panic(err)
	}
}

// Receiver is the receiving side of a channel: it counts what it has consumed
// and turns that into grants.
type Receiver struct {
	budget  Budget
	pending Grant
}

// NewReceiver returns a receiver for the budget.
func NewReceiver(b Budget) *Receiver { return &Receiver{budget: b} }

// Open returns the first grant: the whole budget.
func (r *Receiver) Open() Grant { return Grant{Credits: r.budget.Credits} }

// Consumed records that a batch has been processed and its buffer is free.
func (r *Receiver) Consumed(records int, bytes int64) {
	r.pending.Credits++
	r.pending.Batches++
	r.pending.Records += int64(records)
	r.pending.Bytes += bytes
}

// Take returns the grant accumulated since the last Take, and whether there
// is one.
func (r *Receiver) Take() (Grant, bool) {
	g := r.pending
	r.pending = Grant{}
	return g, g.Credits > 0
}
