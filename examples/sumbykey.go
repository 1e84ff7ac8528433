// Package examples holds the jobs bundled with the sluice command. Each is
// registered at init, so linking the package in is enough:
//
//	import _ "github.com/sluice-data/sluice/examples"
//
// and `sluice run NAME` runs one. They double as templates for your own
// jobs: a registered build function, arguments with defaults, a source, a
// few stages, and a sink.
package examples

import (
	"github.com/sluice-data/sluice/connectors/generator"
	"github.com/sluice-data/sluice/connectors/jsonl"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// SumByKey is the main demo. It generates rows of a key and a value, sums
// the values of each key and prints the ten keys with the greatest sums and
// the number of keys, or writes every sum as JSON lines. Its arguments, all
// optional:
//
//	rows  the number of rows (2000000)
//	keys  the number of distinct keys (100000)
//	seed  selects the data set (1)
//	zipf  0 for uniform keys, or the exponent of a Zipf skew (0)
//	out   a directory to write {"Key":…,"Value":…} lines into, one
//	      part-NNNNN.jsonl file per instance, instead of printing
//
//	sluice run sum-by-key --arg rows=10000000 --arg zipf=1.1
var SumByKey = stages.Register("sum-by-key", func(p *stages.Pipeline, args stages.Args) {
	cfg := generator.Config{
		Seed: uint64(args.Int("seed", 1)),
		Rows: int64(args.Int("rows", 2_000_000)),
		Keys: int64(args.Int("keys", 100_000)),
		Zipf: args.Float("zipf", 0),
	}
	rows := generator.Read(p, cfg)
	kvs := stages.Map(rows, func(r generator.Row) stages.KV[int64, int64] {
		return stages.KV[int64, int64]{Key: r.Key, Value: r.Value}
	}, stages.Name("key-value"))
	sums := stages.Aggregate(stages.KeyBy(kvs, func(kv stages.KV[int64, int64]) int64 { return kv.Key }),
		window.Global(), stages.Sum(func(kv stages.KV[int64, int64]) int64 { return kv.Value }), stages.ID("sum-by-key-v1"))
	if out := args.String("out", ""); out != "" {
		jsonl.Write(sums, out)
		return
	}
	printTop(sums, 10, "keys", "KEY", "sum")
}).Describe("sums generated values by key (rows=2000000 keys=100000 seed=1 zipf=0) and prints the top 10, or writes all to out=DIR")
