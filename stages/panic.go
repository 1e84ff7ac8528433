package stages

import (
	"fmt"
	"runtime/debug"

	"github.com/sluice-data/sluice/plan"
)

// RecordPanic is the panic value of a user function that panicked, with the
// stage and the record it panicked on. The runtime's error for a job whose
// restarts ran out wraps it.
type RecordPanic struct {
	Stage  string // the stage's name
	Loc    string // where the stage was built
	Record string // the record, formatted
	Index  int    // the record's index in its batch
	Value  any    // what the function panicked with
	Stack  []byte
}

func (p *RecordPanic) Error() string {
	return fmt.Sprintf("stage %s (%s) panicked on record %s: %v", p.Stage, p.Loc, p.Record, p.Value)
}

// Unwrap returns the panic value when it is an error.
func (p *RecordPanic) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}

// repanic turns a panic of a user function on xs[i] into a *RecordPanic.
// Call it deferred with recover()'s result.
func repanic[T any](r any, n *plan.Node, xs []T, i int) {
	if r == nil {
		return
	}
	if _, ok := r.(*RecordPanic); ok {
		panic(r)
	}
	rec := "?"
	if i >= 0 && i < len(xs) {
		rec = fmt.Sprintf("%+v", xs[i])
		if len(rec) > 200 {
			rec = rec[:200] + "…"
		}
	}
	panic(&RecordPanic{Stage: n.String(), Loc: n.Loc, Record: rec, Index: i, Value: r, Stack: debug.Stack()})
}
