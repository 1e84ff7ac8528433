package examples

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// The clicks job replayed as fast as possible: no processing time passes
// for the early firings, so each window has one on-time pane holding all
// its clicks, which must equal a batch count of the generated clicks.
func TestClicksFinalPanesMatchBatch(t *testing.T) {
	s := ClicksSpec{Seed: 3, Users: 50, Rows: 20_000, Zipf: 1.1, Every: 10 * time.Millisecond, Disorder: 2 * time.Second}
	want := map[string]tally{} // "HH:MM user N" → clicks and value in cents
	for _, c := range generated(t, s.Config(), s.Click) {
		k := fmt.Sprintf("%s user %d", time.UnixMilli(c.TS-c.TS%60_000).UTC().Format("15:04"), c.UserID)
		w := want[k]
		want[k] = tally{w.cnt + 1, w.cents + cents(c.Price)}
	}
	printed, res := runJob(t, Clicks, map[string]string{"seed": "3", "users": "50", "clicks": "20000",
		"every": "10ms", "disorder": "2s", "speed": "0"}, 2)
	if late, closed := dropped(res); late != 0 || closed != 0 {
		t.Errorf("%d records dropped late and %d for closed windows, want none", late, closed)
	}
	got := map[string]tally{}
	lines := strings.Split(strings.TrimSpace(printed), "\n")
	for _, line := range lines {
		var hhmm, timing string
		var user, pane, clicks int64
		var value float64
		if _, err := fmt.Sscanf(line, "%s user %d %s pane %d: %d clicks, value %f", &hhmm, &user, &timing, &pane, &clicks, &value); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if timing != "on-time" || pane != 0 {
			t.Errorf("%q: want only on-time first panes", line)
		}
		k := fmt.Sprintf("%s user %d", hhmm, user)
		if _, dup := got[k]; dup {
			t.Errorf("%q: a second pane", line)
		}
		got[k] = tally{clicks, cents(value)}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %d panes, want %d; they differ:\n%s", len(got), len(want), printed)
	}
}

// With redis=ADDR the features go to Redis: one hash per user and minute
// holding the latest (accumulating) pane.
func TestClicksToRedis(t *testing.T) {
	addr := os.Getenv("SLUICE_REDIS_ADDR")
	if addr == "" {
		testenv.Need(t, "SLUICE_REDIS_ADDR is not set: no Redis server (scripts/test.sh starts redis-server and sets it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() }) // after the keys are deleted: cleanups run last first
	prefix := "test:clicks:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	scan := func() []string {
		var keys []string
		it := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for it.Next(ctx) {
			keys = append(keys, it.Val())
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return keys
	}
	t.Cleanup(func() {
		if keys := scan(); len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	})

	s := ClicksSpec{Seed: 4, Users: 30, Rows: 10_000, Zipf: 1.1, Every: 20 * time.Millisecond, Disorder: 2 * time.Second}
	want := map[string]tally{}
	for _, c := range generated(t, s.Config(), s.Click) {
		k := fmt.Sprintf("%s:%d:%d", prefix, c.UserID, c.TS-c.TS%60_000)
		w := want[k]
		want[k] = tally{w.cnt + 1, w.cents + cents(c.Price)}
	}
	printed, _ := runJob(t, Clicks, map[string]string{"seed": "4", "users": "30", "clicks": "10000",
		"every": "20ms", "disorder": "2s", "speed": "0", "redis": addr, "prefix": prefix}, 2)
	if printed != "" {
		t.Errorf("printed %q; want nothing when writing to Redis", printed)
	}
	got := map[string]tally{}
	for _, k := range scan() {
		h, err := c.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var f ClickFeatures
		if err := json.Unmarshal([]byte(h["value"]), &f); err != nil {
			t.Fatalf("%s: %v: %q", k, err, h)
		}
		if h["timing"] != "on-time" {
			t.Errorf("%s holds a %s pane, want the on-time one", k, h["timing"])
		}
		got[k] = tally{f.Clicks, cents(f.Value)}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %d hashes, want %d; they differ", len(got), len(want))
	}
}

func TestClicksArguments(t *testing.T) {
	for _, args := range []map[string]string{{"speed": "-1"}, {"every": "1us"}, {"disorder": "-1s"}, {"colour": "red"}} {
		if _, err := Clicks.Build(args); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// sliceReader reads xs.
type sliceReader []int

func (r *sliceReader) Read(buf []int) (int, error) {
	n := copy(buf, *r)
	*r = (*r)[n:]
	if len(*r) == 0 {
		return n, io.EOF
	}
	return n, nil
}
func (r *sliceReader) Close() error { return nil }

func TestPacedReaderReleasesRecordsWhenDue(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	src := make(sliceReader, 100)
	for i := range src {
		src[i] = i
	}
	r := &pacedReader[int]{Reader: &src, gap: 10 * time.Millisecond, now: func() time.Time { return now }, start: t0}
	buf := make([]int, 8)
	var got []int
	read := func() (int, error) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		return n, err
	}
	for _, step := range []struct {
		at   time.Duration
		n    int
		eof  bool
		none bool
	}{
		{0, 1, false, false}, // record 0 is due at once
		{0, 0, false, true},  // then nothing until 10 ms
		{25 * time.Millisecond, 2, false, false},
		{25 * time.Millisecond, 0, false, true},
		{200 * time.Millisecond, 8, false, false}, // 18 due: a buffer's worth
		{200 * time.Millisecond, 8, false, false},
		{200 * time.Millisecond, 2, false, false},
		{time.Hour, 8, false, false},
	} {
		now = t0.Add(step.at)
		n, err := read()
		if n != step.n || step.none != errors.Is(err, stages.ErrNoData) {
			t.Fatalf("at %v: read %d (%v), want %d (no data: %v)", step.at, n, err, step.n, step.none)
		}
	}
	for {
		_, err := read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 100 || got[0] != 0 || got[99] != 99 {
		t.Errorf("read %d records, %v…", len(got), got[:min(5, len(got))])
	}
}

// A paced job lets processing time pass: with clicks replayed 60 times
// faster than real time, a window lasts a second and its early firing
// (10 s after its first click) comes after the on-time pane, so this only
// checks that pacing runs the job to the same final panes.
func TestClicksPacedRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a second")
	}
	printed, _ := runJob(t, Clicks, map[string]string{"users": "3", "clicks": "2000", "every": "30ms", "speed": "60"}, 1)
	var clicks int64
	for _, line := range strings.Split(strings.TrimSpace(printed), "\n") {
		var hhmm, timing string
		var user, pane, n int64
		var value float64
		if _, err := fmt.Sscanf(line, "%s user %d %s pane %d: %d clicks, value %f", &hhmm, &user, &timing, &pane, &n, &value); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if timing == "on-time" {
			clicks += n
		}
	}
	if clicks != 2000 {
		t.Errorf("the on-time panes count %d clicks, want 2000:\n%s", clicks, printed)
	}
}
