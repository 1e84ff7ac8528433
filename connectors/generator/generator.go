// Package generator is a deterministic synthetic bounded source: rows of an
// index, a key (uniform or Zipf-distributed), a value and a time, for tests,
// benchmarks and demos.
//
// Every row is a pure function of (Config.Seed, row index): each field is a
// counter-based hash (SplitMix64) of the seed and the index, not the next
// draw of a sequential generator. The same Config therefore yields the same
// rows whatever the number of splits, instances, batch sizes or processes,
// and a test oracle can compute any row with Generator.Row without running a
// pipeline.
//
//	p := stages.NewPipeline("demo")
//	rows := generator.Read(p, generator.Config{Seed: 7, Rows: 1e6, Keys: 1000, Zipf: 1.2})
//
// # Keys
//
// With Zipf 0 keys are uniform over [0, Keys). With Zipf s > 0 key k (a rank,
// 0 the most frequent) has probability (k+1)^-s / H(Keys, s), where H(n, s)
// is the generalised harmonic number Σ_{i=1..n} i^-s. Unlike math/rand's Zipf
// (which needs s > 1 and an unbounded support) any s > 0 works, because the
// distribution is finite: it is sampled in O(1) from a Walker/Vose alias
// table over the Keys ranks, built once per process and shared by the
// source's instances. The table costs 8 bytes per key, so Keys is limited to
// MaxZipfKeys when Zipf > 0.
package generator

import (
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/sluice-data/sluice/stages"
)

// Row is one generated record.
type Row struct {
	// Index is the row's position in [0, Config.Rows).
	Index int64
	// Key is in [0, Config.Keys): uniform, or a Zipf rank (0 most frequent).
	Key int64
	// Value is uniform in [0, 1000000).
	Value int64
	// Time is unix milliseconds: Config.Start + Index, less a uniform lag in
	// [0, Config.Disorder]. With Disorder 0 times strictly increase with
	// Index; otherwise they are monotone up to Disorder ms.
	Time int64
}

// ValueRange is the bound of Row.Value: values are in [0, ValueRange).
const ValueRange = 1_000_000

// Limits of Config fields. MaxRows, MaxKeys and the Start range keep every
// Index, Key and Time exact in a float64 (a JSON number anywhere).
const (
	MaxRows     = 1 << 53
	MaxKeys     = 1 << 53
	MaxStart    = 1 << 53
	MaxDisorder = 1 << 40
	// MaxZipfKeys bounds Keys when Zipf > 0: the alias table takes 8 bytes
	// per key (128 MiB at this bound).
	MaxZipfKeys = 1 << 24
	// MaxSplits bounds Config.Splits.
	MaxSplits = 1 << 20
	// DefaultSplitRows is the split size the default split count aims at.
	DefaultSplitRows = 64 << 10
	// DefaultMaxSplits caps the default split count.
	DefaultMaxSplits = 64
)

// Config describes the generated data. The zero value is invalid (Keys must
// be at least 1); DefaultConfig is a sensible start.
type Config struct {
	// Seed selects the data set: the same seed gives the same rows.
	Seed uint64
	// Rows is the number of rows, in [0, MaxRows].
	Rows int64
	// Keys is the number of distinct keys, in [1, MaxKeys] (at most
	// MaxZipfKeys when Zipf > 0).
	Keys int64
	// Zipf is 0 for uniform keys, or the exponent s > 0 of a Zipf
	// distribution over the Keys ranks: P(k) ∝ (k+1)^-s. Any positive s is
	// exact (s ≤ 1 included); larger s means more skew.
	Zipf float64
	// Splits is the number of splits (contiguous row ranges). Zero picks
	// Rows/DefaultSplitRows rounded up, between 1 and DefaultMaxSplits. More
	// splits than rows are reduced to one row each. The rows do not depend
	// on it.
	Splits int
	// Start is the time of row 0 in unix milliseconds, in [-MaxStart,
	// MaxStart]. Row i's time is Start+i before Disorder.
	Start int64
	// Disorder, in [0, MaxDisorder], is the most milliseconds a row's time
	// may lag behind Start+Index: each row lags by a uniform amount in
	// [0, Disorder]. Zero gives strictly increasing times.
	Disorder int64
}

// DefaultConfig returns a million rows over a thousand uniform keys, from
// 2024-01-01T00:00:00Z with up to a second of disorder.
func DefaultConfig() Config {
	return Config{Seed: 1, Rows: 1_000_000, Keys: 1000, Start: 1_704_067_200_000, Disorder: 1000}
}

// ErrConfig is wrapped by every problem Config.Validate reports.
var ErrConfig = fmt.Errorf("generator: %w", stages.ErrConfig)

// Validate reports every problem of c at once; each wraps ErrConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...)))
	}
	if c.Rows < 0 || c.Rows > MaxRows {
		bad("Rows %d must be in [0, %d]", c.Rows, int64(MaxRows))
	}
	if c.Keys < 1 || c.Keys > MaxKeys {
		bad("Keys %d must be in [1, %d]", c.Keys, int64(MaxKeys))
	}
	switch {
	case math.IsNaN(c.Zipf) || math.IsInf(c.Zipf, 0) || c.Zipf < 0:
		bad("Zipf %v must be 0 (uniform) or a finite exponent > 0", c.Zipf)
	case c.Zipf > 0 && c.Keys > MaxZipfKeys:
		bad("Keys %d must be at most %d when Zipf > 0 (the alias table takes 8 bytes per key)", c.Keys, MaxZipfKeys)
	}
	if c.Splits < 0 || c.Splits > MaxSplits {
		bad("Splits %d must be in [0, %d] (0 picks a default)", c.Splits, MaxSplits)
	}
	if c.Start < -MaxStart || c.Start > MaxStart {
		bad("Start %d must be in [%d, %d]", c.Start, int64(-MaxStart), int64(MaxStart))
	}
	if c.Disorder < 0 || c.Disorder > MaxDisorder {
		bad("Disorder %d must be in [0, %d]", c.Disorder, int64(MaxDisorder))
	}
	return errors.Join(errs...)
}

// splitCount returns the number of splits c makes; c must be valid.
func (c Config) splitCount() int64 {
	if c.Rows == 0 {
		return 0
	}
	n := int64(c.Splits)
	if n == 0 {
		n = min(DefaultMaxSplits, (c.Rows+DefaultSplitRows-1)/DefaultSplitRows)
	}
	return max(1, min(n, c.Rows))
}

// splitRange returns the rows [lo, hi) of split i of n over rows: the first
// rows%n splits have one row more than the others.
func splitRange(rows, n, i int64) (lo, hi int64) {
	base, rem := rows/n, rows%n
	lo = i*base + min(i, rem)
	hi = lo + base
	if i < rem {
		hi++
	}
	return lo, hi
}

// Generator computes rows. It is immutable and safe for concurrent use.
type Generator struct {
	cfg                       Config
	keySeed, valSeed, lagSeed uint64
	alias                     []uint64 // Zipf alias table; nil for uniform keys
	keys                      uint64
	lagRange                  uint64 // Disorder+1
}

// New validates cfg and returns its Generator. With Zipf > 0 it builds the
// alias table: O(Keys) time and 8·Keys bytes.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Generator{
		cfg:      cfg,
		keySeed:  stream(cfg.Seed, 1),
		valSeed:  stream(cfg.Seed, 2),
		lagSeed:  stream(cfg.Seed, 3),
		keys:     uint64(cfg.Keys),
		lagRange: uint64(cfg.Disorder) + 1,
	}
	if cfg.Zipf > 0 {
		g.alias = zipfAlias(int(cfg.Keys), cfg.Zipf)
	}
	return g, nil
}

// Config returns the generator's configuration.
func (g *Generator) Config() Config { return g.cfg }

// gamma is SplitMix64's increment (2^64 / φ, odd).
const gamma = 0x9e3779b97f4a7c15

// mix64 is SplitMix64's finaliser: a bijection that spreads every input bit.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// stream derives the seed of field stream k from the user's seed: the k-th
// output of SplitMix64 seeded with seed.
func stream(seed, k uint64) uint64 { return mix64(seed + k*gamma) }

// Row returns row i. It does not check that i is in [0, Rows).
func (g *Generator) Row(i int64) Row {
	u := uint64(i) * gamma
	return Row{
		Index: i,
		Key:   g.key(mix64(g.keySeed + u)),
		Value: uniform(mix64(g.valSeed+u), ValueRange),
		Time:  g.cfg.Start + i - uniform(mix64(g.lagSeed+u), g.lagRange),
	}
}

// Fill sets dst[j] to row first+j for every j. It allocates nothing.
func (g *Generator) Fill(dst []Row, first int64) {
	keySeed, valSeed, lagSeed := g.keySeed, g.valSeed, g.lagSeed
	start, lagRange := g.cfg.Start, g.lagRange
	u := uint64(first) * gamma
	if g.alias == nil {
		keys := g.keys
		for j := range dst {
			i := first + int64(j)
			hi, _ := bits.Mul64(mix64(keySeed+u), keys)
			dst[j] = Row{Index: i, Key: int64(hi),
				Value: uniform(mix64(valSeed+u), ValueRange),
				Time:  start + i - uniform(mix64(lagSeed+u), lagRange)}
			u += gamma
		}
		return
	}
	// Three passes, so that the table lookups of the second are
	// independent and a large table's cache misses overlap: the first draws
	// each row's column and fraction (parked in Key and Value), the second
	// resolves the alias, the third fills the rest.
	keys := g.keys
	for j := range dst {
		col, frac := bits.Mul64(mix64(keySeed+u), keys)
		dst[j].Key, dst[j].Value = int64(col), int64(frac>>fracShift)
		u += gamma
	}
	alias := g.alias
	for j := range dst {
		r := &dst[j]
		k, e := r.Key, alias[r.Key]
		if uint64(r.Value) >= e>>aliasBits { // compiles to a conditional move
			k = int64(e & aliasMask)
		}
		r.Key = k
	}
	u = uint64(first) * gamma
	for j := range dst {
		i := first + int64(j)
		r := &dst[j]
		r.Index = i
		r.Value = uniform(mix64(valSeed+u), ValueRange)
		r.Time = start + i - uniform(mix64(lagSeed+u), lagRange)
		u += gamma
	}
}

// key maps a uniform 64-bit hash to a key.
func (g *Generator) key(h uint64) int64 {
	col, frac := bits.Mul64(h, g.keys)
	if g.alias != nil {
		if e := g.alias[col]; frac>>fracShift >= e>>aliasBits {
			col = e & aliasMask
		}
	}
	return int64(col)
}

// uniform maps a uniform 64-bit hash to [0, n) by multiply-shift (Lemire);
// the bias is at most n/2^64.
func uniform(h, n uint64) int64 {
	hi, _ := bits.Mul64(h, n)
	return int64(hi)
}
