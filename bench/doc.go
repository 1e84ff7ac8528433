// Package bench holds Sluice's large benchmarks: the three workloads of
// DESIGN.md §6 on generated Parquet data (10M orders, 1M users, 10M events
// by default), each beside a plain-Go baseline (parquet-go, Go maps, two
// goroutines) over the same files, so that a ratio can be reported in the
// same run:
//
//	go test -run - -bench . -benchtime 1x ./bench/
//	go test -run - -bench W2 -benchtime 1x ./bench/ -args -orders 1000000 -users 100000
//	go test -run - -bench . -benchtime 1x ./bench/ -args -data /tmp/sluice-bench  # keep the data
//
// The data is generated once per test process (by the gen-orders and
// gen-events jobs of package examples) into a temporary directory, outside
// the timed region. Each workload reports rows/s (input rows), MB-peak (the
// greatest heap in use, sampled with runtime.ReadMemStats) and, for Sluice,
// x-plain (its time over the baseline's); W3 also reports the processing
// time from a record leaving the source to the first pane that includes it
// (latency-p50-ms, latency-p99-ms) on about 1% of the records. Outputs of
// Sluice and the baseline are checked to have the same checksum.
//
// The package has no tests: plain `go test ./...` generates nothing.
package bench
