package core_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/core"
)

// commitSinks are two sinks: vertex 2 with two writers, a job commit and a
// finish step (as Parquet); vertex 4 with one writer and only a finish step.
func commitSinks() []core.CommitSink {
	return []core.CommitSink{
		{Vertex: 2, Name: "parquet", CommitJob: true, FinishJob: true,
			Writers: []core.CommitWriter{{Instance: 0, Name: "parquet#0"}, {Instance: 1, Name: "parquet#1"}}},
		{Vertex: 4, Name: "nats", FinishJob: true, Writers: []core.CommitWriter{{Instance: 0, Name: "nats#0"}}},
	}
}

// TestCommitter scripts the commit coordinator: the actions it asks for,
// in order, when the actions named in fail fail, and the job's outcome.
func TestCommitter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		jobErr error
		inUse  bool
		fail   []string // actions that reply with an error
		want   string   // the actions, then the outcome
	}{
		{name: "success",
			want: "commit v2/0; commit v2/1; commit v4/0; commit-job v2/0; finish-job v2/0 failed=false; finish-job v4/0 failed=false" +
				" → ok"},
		{name: "job failed", jobErr: errors.New("user function: boom"),
			want: "abort v2/0; abort v2/1; abort v4/0; finish-job v2/0 failed=true; finish-job v4/0 failed=true" +
				" → user function: boom"},
		{name: "a writer's commit fails", fail: []string{"commit v2/1"},
			want: "commit v2/0; commit v2/1; revert v2/0; abort v2/1; abort v4/0; finish-job v2/0 failed=true; finish-job v4/0 failed=true" +
				" → parquet#1: committing: commit v2/1 failed"},
		{name: "the job commit fails", fail: []string{"commit-job v2/0"},
			want: "commit v2/0; commit v2/1; commit v4/0; commit-job v2/0; revert v2/0; revert v2/1; revert v4/0; finish-job v2/0 failed=true; finish-job v4/0 failed=true" +
				" → parquet: committing the job's output: commit-job v2/0 failed"},
		{name: "undoing fails too", fail: []string{"commit v4/0", "revert v2/1", "abort v4/0"},
			want: "commit v2/0; commit v2/1; commit v4/0; revert v2/0; revert v2/1; abort v4/0; finish-job v2/0 failed=true; finish-job v4/0 failed=true" +
				" → nats#0: committing: commit v4/0 failed | parquet#1: reverting its commit: revert v2/1 failed | nats#0: aborting: abort v4/0 failed"},
		{name: "tasks did not stop", inUse: true,
			want: "finish-job v2/0 failed=true; finish-job v4/0 failed=true → the job ended but its tasks did not stop"},
		{name: "a finish step fails", fail: []string{"finish-job v2/0 failed=false"},
			want: "commit v2/0; commit v2/1; commit v4/0; commit-job v2/0; finish-job v2/0 failed=false; finish-job v4/0 failed=false" +
				" → ok (warning: parquet: finishing the output: finish-job v2/0 failed=false failed)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := core.NewCommitter(commitSinks(), tc.jobErr, tc.inUse)
			var done []string
			for a, ok := c.Next(); ok; a, ok = c.Next() {
				if len(done) > 20 {
					t.Fatalf("no end after %v", done)
				}
				if again, _ := c.Next(); again != a {
					t.Fatalf("Next changed from %v to %v without a Reply", a, again)
				}
				done = append(done, a.String())
				var err error
				for _, f := range tc.fail {
					if f == a.String() {
						err = fmt.Errorf("%s failed", f)
					}
				}
				c.Reply(err)
			}
			outcome := "ok"
			if err := c.Err(); err != nil {
				outcome = strings.ReplaceAll(err.Error(), "\n", " | ")
			}
			for _, w := range c.Warnings() {
				outcome += fmt.Sprintf(" (warning: %v)", w)
			}
			if got := strings.Join(done, "; ") + " → " + outcome; got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if tc.jobErr != nil && !errors.Is(c.Err(), tc.jobErr) {
				t.Errorf("the outcome %v does not wrap the job's error", c.Err())
			}
		})
	}
}

// A job without sinks, or whose sinks opened no writer, has nothing to do.
func TestCommitterNoWriters(t *testing.T) {
	c := core.NewCommitter([]core.CommitSink{{Vertex: 1, Name: "collect"}}, nil, false)
	if a, ok := c.Next(); ok {
		t.Fatalf("asked for %v", a)
	}
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
}
