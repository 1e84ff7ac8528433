package actors_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/stages"
)

// TestDeadLetters routes the records a stage rejects to a side output and
// checks that every record ends up in exactly one of the two streams, that
// the summary counts the rejects, and that an unread side output is an error.
func TestDeadLetters(t *testing.T) {
	p := stages.NewPipeline("dead-letters")
	lines := make([]string, 10_000)
	for i := range lines {
		lines[i] = fmt.Sprint(i)
		if i%97 == 0 {
			lines[i] = "x" + lines[i]
		}
	}
	parsed, dead := stages.TryMap(stages.FromSlice(p, lines), func(s string) (int, error) {
		var n int
		_, err := fmt.Sscanf(s, "%d", &n)
		return n, err
	}, stages.Name("parse"))
	good := stages.Collect(stages.Map(parsed, func(n int) int { return n * 2 }))
	bad := stages.Collect(dead)
	res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(good.Values()), len(lines)-len(lines)/97-1; got != want {
		t.Errorf("%d parsed records, want %d", got, want)
	}
	var where []string
	for _, d := range bad.Values() {
		if d.Stage != `trymap "parse"` || d.Err == "" || !strings.HasPrefix(d.Record, "x") {
			t.Errorf("dead letter %+v", d)
		}
		where = append(where, d.Record)
	}
	if len(where) != len(lines)/97+1 {
		t.Errorf("%d dead letters, want %d", len(where), len(lines)/97+1)
	}
	var counted int64
	for _, s := range res.Stages {
		if s.Name == `trymap "parse"` {
			counted = s.Side[0]
		}
	}
	if counted != int64(len(where)) {
		t.Errorf("summary counts %d dead letters, want %d", counted, len(where))
	}
	if !slices.Contains(strings.Split(res.Plan.String(), "\n"), `  trymap "parse" side 1 → forward → v2`) {
		t.Errorf("the plan does not show the side output:\n%s", res.Plan)
	}

	p = stages.NewPipeline("unread")
	parsed, _ = stages.TryMap(stages.FromSlice(p, lines), func(s string) (int, error) { return 0, errors.New("no") })
	stages.Collect(parsed)
	_, err = sluice.Run(context.Background(), p, sluice.Options{})
	if err == nil || !strings.Contains(err.Error(), "side output 1 (stages.DeadLetter)") || !strings.Contains(err.Error(), "side_test.go") {
		t.Errorf("unread dead letters: err = %v, want one naming the side output and the line", err)
	}
}
