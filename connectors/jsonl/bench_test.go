package jsonl_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/jsonl"
	"github.com/sluice-data/sluice/stages"
)

// BenchmarkWrite measures one sink instance writing batches of 1024 events.
func BenchmarkWrite(b *testing.B) {
	batch := events(1024)
	w, err := jsonl.Sink[event](b.TempDir()).Open(context.Background(), stages.Instance{Job: "bench", Parallelism: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Abort()
	b.ReportAllocs()
	var recs int64
	for b.Loop() {
		if err := w.Write(batch); err != nil {
			b.Fatal(err)
		}
		recs += int64(len(batch))
	}
	b.ReportMetric(float64(recs)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRead measures reading a file of 100k events in batches of 1024.
func BenchmarkRead(b *testing.B) {
	dir := b.TempDir()
	w, err := jsonl.Sink[event](dir).Open(context.Background(), stages.Instance{Job: "bench", Parallelism: 1})
	if err != nil {
		b.Fatal(err)
	}
	const n = 100_000
	if err := w.Write(events(n)); err != nil {
		b.Fatal(err)
	}
	if err := w.Prepare(); err != nil {
		b.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	path := partFile(b, dir, 0)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	src := jsonl.Source[event](path, jsonl.Fail)
	splits, err := src.Splits(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]event, 1024)
	b.ReportAllocs()
	var recs int64
	for b.Loop() {
		r, err := src.Open(context.Background(), stages.Instance{Parallelism: 1}, splits[0])
		if err != nil {
			b.Fatal(err)
		}
		for {
			k, err := r.Read(buf)
			recs += int64(k)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		r.Close()
	}
	b.ReportMetric(float64(recs)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(fi.Size())/n, "B/record")
}

// BenchmarkJob runs jobs that read a file of 100k events under each policy
// into a counting sink, through the runtime: the cost of the dead-letter
// policy's raw lines and parse stage against decoding in the source.
func BenchmarkJob(b *testing.B) {
	dir := b.TempDir()
	const n = 100_000
	writeEvents(b, dir, events(n), 1)
	path := partFile(b, dir, 0)
	for _, policy := range []string{"fail", "dead-letter"} {
		b.Run(policy, func(b *testing.B) {
			b.ReportAllocs()
			var recs atomic.Int64
			count := func(event) error { recs.Add(1); return nil }
			for b.Loop() {
				p := stages.NewPipeline("bench")
				if policy == "fail" {
					stages.ForEach(jsonl.Read[event](p, path), count)
				} else {
					good, dead := jsonl.ReadOrDeadLetter[event](p, path)
					stages.ForEach(good, count)
					stages.ForEach(dead, func(d stages.DeadLetter) error { return fmt.Errorf("dead letter %+v", d) })
				}
				if _, err := sluice.Run(context.Background(), p, sluice.Options{}); err != nil {
					b.Fatal(err)
				}
			}
			if recs.Load()%n != 0 {
				b.Fatalf("read %d records, not a multiple of %d", recs.Load(), n)
			}
			b.ReportMetric(float64(recs.Load())/b.Elapsed().Seconds(), "records/s")
		})
	}
}
