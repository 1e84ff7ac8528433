// Package sinkstate is the lifecycle of one sink writer, shared by the
// connectors: Write any number of times, Prepare once, then Commit (again is
// a no-op), or Abort at any point (after Commit or Abort, a no-op). A write
// or prepare that fails leaves the writer Failed: only Abort remains.
package sinkstate

import "fmt"

// State is where a writer is in its lifecycle. The zero value is Writing.
type State int

// The states of a writer.
const (
	Writing State = iota
	Prepared
	Committed
	Aborted
	Failed
)

var names = [...]string{"writing", "prepared", "committed", "aborted", "failed"}

func (s State) String() string {
	if s < 0 || int(s) >= len(names) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return names[s]
}

// OutOfOrder is the error for op arriving in state s.
func OutOfOrder(s State, op string, errState error) error {
	return fmt.Errorf("%w: %s after the writer %s", errState, op, s)
}

// Committing reports whether Commit has work to do: false with no error
// when the writer has committed already, an out-of-order error unless it
// has prepared.
func (s State) Committing(errState error) (bool, error) {
	switch s {
	case Committed:
		return false, nil
	case Prepared:
		return true, nil
	}
	return false, OutOfOrder(s, "committing", errState)
}

// Aborting reports whether Abort has work to do: not after Commit or Abort.
func (s State) Aborting() bool { return s != Committed && s != Aborted }
