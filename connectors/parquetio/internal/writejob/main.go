// Command writejob writes one version of a test dataset with parquetio, for
// the commit protocol's crash tests: connectors/parquetio's tests run it as
// a real process and kill it with SIGKILL at chosen moments.
//
//	writejob -out URL -mode overwrite|append|overwrite-partitions -version V
//	         [-rows N] [-parts P] [-kill staged|files=K|manifest] [-hold D]
//	         [-format parquet|jsonl]
//
// Version V writes rows {part, id, version=V}: N rows over P partitions
// (part = id % P); with overwrite-partitions, only the partitions whose
// number is V modulo 3. -kill makes the process SIGKILL itself: once every
// file is staged and none published (staged), once K files are published
// (files=K), or once the manifest has changed (manifest: local outputs).
// -hold makes the job's source wait D before its first record, so that a
// test can start a second job while this one holds the output's lease.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/jsonl"
	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

// Row is a record of the dataset.
type Row struct {
	Part    int64 `parquet:"part"`
	ID      int64 `parquet:"id"`
	Version int64 `parquet:"version"`
}

func main() {
	out := flag.String("out", "", "output URL")
	mode := flag.String("mode", "overwrite", "overwrite, append or overwrite-partitions")
	version := flag.Int64("version", 1, "the version written")
	rows := flag.Int64("rows", 24_000, "rows")
	parts := flag.Int64("parts", 24, "partitions")
	kill := flag.String("kill", "", "staged, files=K or manifest")
	hold := flag.Duration("hold", 0, "wait before the first record")
	format := flag.String("format", "parquet", "parquet, or jsonl (overwrite only)")
	flag.Parse()
	var err error
	if *format == "jsonl" {
		err = runJSONL(*out, *version, *rows, *kill)
	} else {
		err = run(*out, *mode, *version, *rows, *parts, *kill, *hold)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "writejob:", err)
		os.Exit(1)
	}
}

func run(out, mode string, version, rows, parts int64, kill string, hold time.Duration) error {
	var m parquetio.Mode
	switch mode {
	case "overwrite":
		m = parquetio.Overwrite
	case "append":
		m = parquetio.Append
	case "overwrite-partitions":
		m = parquetio.OverwritePartitions
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	var xs []Row
	for id := range rows {
		part := id % parts
		if m == parquetio.OverwritePartitions && part%3 != version%3 {
			continue
		}
		xs = append(xs, Row{Part: part, ID: id, Version: version})
	}
	var stats parquetio.Stats
	p := stages.NewPipeline("writejob")
	src := stages.FromSlice(p, xs)
	if hold > 0 {
		first := true
		src = stages.Map(src, func(r Row) Row {
			if first {
				first = false
				time.Sleep(hold)
			}
			return r
		}, stages.Parallelism(1))
	}
	sink := parquetio.Sink[Row](out, m, parquetio.PartitionBy("part"), parquetio.RowGroupRows(256), parquetio.WithStats(&stats))
	if err := sink.Err(); err != nil {
		return err
	}
	if kill == "staged" {
		stages.Write[Row](src, killAtCommit{sink}, stages.Parallelism(2))
	} else {
		stages.Write[Row](src, sink, stages.Parallelism(2))
	}
	if kill != "" && kill != "staged" {
		if err := watch(kill, out, &stats); err != nil {
			return err
		}
	}
	_, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2})
	return err
}

// runJSONL writes version v as JSON lines with two instances.
func runJSONL(out string, v, rows int64, kill string) error {
	var xs []Row
	for id := range rows {
		xs = append(xs, Row{Part: id % 4, ID: id, Version: v})
	}
	p := stages.NewPipeline("writejob")
	src := stages.FromSlice(p, xs)
	if kill == "staged" {
		stages.Write[Row](src, dyingSink{jsonl.Sink[Row](out)}, stages.Parallelism(2))
	} else {
		jsonl.Write(src, out, stages.Parallelism(2))
		if kill != "" {
			if err := watch(kill, out, nil); err != nil {
				return err
			}
		}
	}
	_, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2})
	return err
}

// dyingSink wraps a sink whose writers kill the process at Commit.
type dyingSink struct{ stages.Sink[Row] }

func (d dyingSink) Open(ctx context.Context, inst stages.Instance) (stages.Writer[Row], error) {
	w, err := d.Sink.Open(ctx, inst)
	if err != nil {
		return nil, err
	}
	return dyingWriter{w}, nil
}

// watch starts a goroutine that kills this process at the moment kill names.
func watch(kill, out string, stats *parquetio.Stats) error {
	die := func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	switch {
	case strings.HasPrefix(kill, "files="):
		k, err := strconv.ParseInt(strings.TrimPrefix(kill, "files="), 10, 64)
		if err != nil {
			return fmt.Errorf("-kill %s: %v", kill, err)
		}
		go func() {
			for stats.FilesCommitted.Load() < k {
				time.Sleep(20 * time.Microsecond)
			}
			die()
		}()
	case kill == "manifest":
		p := filepath.Join(out, "_SUCCESS")
		before, _ := os.ReadFile(p)
		go func() {
			for {
				if now, err := os.ReadFile(p); err == nil && !bytes.Equal(now, before) {
					die()
				}
				time.Sleep(20 * time.Microsecond)
			}
		}()
	default:
		return fmt.Errorf("unknown -kill %q", kill)
	}
	return nil
}

// killAtCommit is the Parquet sink whose writers kill the process when the
// first of them is asked to commit: every instance has prepared (its files
// are staged), none has published.
type killAtCommit struct {
	*parquetio.FileSink[Row]
}

func (k killAtCommit) Open(ctx context.Context, inst stages.Instance) (stages.Writer[Row], error) {
	w, err := k.FileSink.Open(ctx, inst)
	if err != nil {
		return nil, err
	}
	return dyingWriter{w}, nil
}

type dyingWriter struct{ stages.Writer[Row] }

func (dyingWriter) Commit() error {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
