package state

import (
	"fmt"
	"testing"
)

// listsMachine gathers each key's values, as a GroupByKey, and emits every
// list at the end.
type listsMachine struct{ l *Lists[int64, int64] }

func (m *listsMachine) step(o op, _ func(string)) { m.l.Add(o.key, o.val) }

func (m *listsMachine) end(emit func(string)) {
	for _, row := range m.l.Rows() {
		emit(fmt.Sprint(row.Key, row.Values))
	}
}

func (m *listsMachine) snapshot(r Range) func() []byte {
	s := m.l.Snapshot(r)
	return func() []byte { return s.Append(nil, intC, intC) }
}

func (m *listsMachine) restore(b []byte, keep Range) error { return m.l.Restore(b, keep, intC, intC) }

func TestListsRestore(t *testing.T) {
	checkRestore(t, 60, func() machine { return &listsMachine{l: NewLists[int64, int64](testGroups)} }, genKeyed(100, 800))
}
