package jsonl

import (
	"fmt"
	"testing"
)

// TestPartNames: the sink's own files, those of jobs that end and of those
// that do not, are the names partName matches, and no two are alike
// whatever a run's characters.
func TestPartNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{PartName(3, "0a1b2c3d4e5f"), true},
		{rolledName(3, 7, "0a1b2c3d4e5f"), true},
		{rolledName(3, 1_234_567, "nightly_run-1.x"), true},
		{"part-00000.jsonl", true},
		{"part-00000_000012.jsonl", false},
		{"part-00000_12-r1.jsonl", false},
		{"part-00000_000012-r1.jsonl.inprogress", false},
		{"clicks.jsonl", false},
	} {
		if got := partName.MatchString(tc.name); got != tc.want {
			t.Errorf("partName matches %q: %v, want %v", tc.name, got, tc.want)
		}
	}
	seen := map[string]string{}
	add := func(name, what string) {
		if other, ok := seen[name]; ok {
			t.Errorf("%s and %s are both named %s", other, what, name)
		}
		seen[name] = what
	}
	for _, run := range []string{"r", "r_000001", "r-000001", "000001-r", "r.1"} {
		for i := range 2 {
			add(PartName(i, run), fmt.Sprintf("PartName(%d, %q)", i, run))
			for _, seq := range []int{0, 1, 1_000_000} {
				add(rolledName(i, seq, run), fmt.Sprintf("rolledName(%d, %d, %q)", i, seq, run))
			}
		}
	}
}
