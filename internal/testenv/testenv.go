// Package testenv holds what the project's tests share: whether the test
// script runs them (so a missing server fails instead of skipping), and
// goroutine leak checks.
package testenv

import (
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/stages"
)

// Strict reports whether the project's test script runs the tests: then a
// missing server or ../shared is a failure, not a skip.
func Strict() bool { return os.Getenv("SLUICE_TEST_STRICT") == "1" }

// Need skips the test with why, or fails it under the test script.
func Need(t testing.TB, why string) {
	t.Helper()
	if Strict() {
		t.Fatalf("%s (SLUICE_TEST_STRICT=1: the test script must provide it)", why)
	}
	t.Skip(why)
}

// processWide names goroutines that live for the process, not for a job:
// protoactor's dead-letter throttle lives about a second after any dead
// letter (DESIGN.md §7), and the test framework's own.
var processWide = []string{
	"protoactor-go/actor.NewThrottle",
	"testing.(*T).Run",
	"testing.tRunner",
	"testing.(*M).",
	"runtime.goexit0",
	"signal.signal_recv",
	"os/signal.loop",
}

// Goroutines returns the stacks of goroutines that are not process-wide.
func Goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
next:
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "testenv.Goroutines") {
			continue
		}
		for _, p := range processWide {
			if strings.Contains(g, p) {
				continue next
			}
		}
		out = append(out, g)
	}
	return out
}

// CheckLeaks fails t if, within a deadline, goroutines beyond those in before
// do not end. Take before with len(Goroutines()) at the start of a test.
func CheckLeaks(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		gs := Goroutines()
		if len(gs) <= before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left running after the job (had %d before):\n%s", len(gs), before, strings.Join(gs, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Race reports whether the race detector is on.
func Race() bool { return raceEnabled }

// WaitFor waits until cond holds, checking it every few milliseconds, and
// fails the test naming what it waited for once within has passed: the
// one way the tests wait on something another goroutine or process does.
func WaitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ReadAll reads r to its end (io.EOF), failing the test on another error.
func ReadAll[T any](t testing.TB, r stages.Reader[T]) []T {
	t.Helper()
	var out []T
	buf := make([]T, 1000)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
