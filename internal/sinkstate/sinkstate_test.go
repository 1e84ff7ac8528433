package sinkstate

import (
	"errors"
	"testing"
)

var errState = errors.New("test: writer used out of order")

func TestLifecycle(t *testing.T) {
	for _, tc := range []struct {
		s          State
		commit     bool // Committing has work
		commitErr  bool
		abortsWork bool
	}{
		{Writing, false, true, true},
		{Prepared, true, false, true},
		{Committed, false, false, false},
		{Aborted, false, true, false},
		{Failed, false, true, true},
	} {
		work, err := tc.s.Committing(errState)
		if work != tc.commit || (err != nil) != tc.commitErr || (err != nil && !errors.Is(err, errState)) {
			t.Errorf("%v: Committing = %v, %v", tc.s, work, err)
		}
		if tc.s.Aborting() != tc.abortsWork {
			t.Errorf("%v: Aborting = %v", tc.s, tc.s.Aborting())
		}
	}
	if got := OutOfOrder(Prepared, "writing", errState).Error(); got != "test: writer used out of order: writing after the writer prepared" {
		t.Errorf("message %q", got)
	}
}
