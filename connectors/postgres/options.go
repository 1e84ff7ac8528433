package postgres

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-data/sluice/stages"
)

// Errors wrapped by this package's errors; each message also names the table
// or query and, where it applies, the split, the column and the row.
var (
	// ErrConfig is wrapped by errors in options and connection strings.
	ErrConfig = fmt.Errorf("postgres: %w", stages.ErrConfig)
	// ErrSchema is wrapped when the result's columns do not fit the record
	// type: a missing column, or a column type that would lose data.
	ErrSchema = errors.New("postgres: schema mismatch")
	// ErrNull is wrapped when a NULL meets a field that is not a pointer.
	ErrNull = errors.New("postgres: NULL into a non-pointer field")
	// ErrSnapshot is wrapped when a split cannot see the source's snapshot:
	// it was released (Close, or the context given to Splits ended) before
	// the split was opened.
	ErrSnapshot = errors.New("postgres: snapshot released")
)

// From says what a source reads: a Table or a Query.
type From interface {
	// String names it in errors and split descriptions.
	String() string
	from() // sealed
}

// Table reads a table or view, named as in SQL: orders, public.orders,
// "Orders" (quoted to keep capitals). The server resolves the name with
// the connection's search_path.
func Table(name string) From { return table(name) }

type table string

func (t table) String() string { return "table " + string(t) }
func (table) from()            {}

// Query reads the rows of a SELECT (or any statement that returns rows and
// can stand in FROM (...)), whose $1, $2... placeholders take args.
func Query(sql string, args ...any) From { return query{sql: sql, args: args} }

type query struct {
	sql  string
	args []any
}

func (q query) String() string {
	s := strings.Join(strings.Fields(q.sql), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return fmt.Sprintf("query %q", s)
}
func (query) from() {}

// Option configures a source.
type Option interface{ apply(*config) }

type config struct {
	part        *Partitioning
	blocks      int // PartitionByBlocks
	consistency Consistency
	stageOpts   []stages.SourceOption
	errs        []error
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// StageOptions passes source options (stages.Name, stages.Parallelism,
// stages.Records) to the stage that Read adds.
func StageOptions(opts ...stages.SourceOption) Option {
	return optionFunc(func(c *config) { c.stageOpts = append(c.stageOpts, opts...) })
}

// Partitioning splits a read into ranges of one column, each read by its
// own connection. Make one with PartitionBy; it is an Option.
type Partitioning struct {
	column string
	n      int
	bounds bounds // zero: split by count
	sample int64  // SampleRows; 0: DefaultSampleRows
	// sampleSet says SampleRows was called.
	sampleSet bool
}

// DefaultSampleRows is how many rows of a large table the boundaries of a
// PartitionBy by count are found from, unless SampleRows says otherwise.
const DefaultSampleRows = 1_000_000

// bounds are the lower and upper bounds of an even-width partitioning.
type bounds struct {
	kind         boundsKind
	ilo, ihi     int64
	tlo, thi     time.Time
	given, valid bool
}

type boundsKind int

const (
	intBounds boundsKind = iota + 1
	timeBounds
)

// PartitionBy reads in n splits by ranges of column, a column of the
// result (it need not be a field of the record type). Without bounds the
// source finds the n-1 values that divide the non-NULL values into n parts
// of equal row count (percentile_disc over the column, in the source's
// snapshot; over a sample of a table larger than DefaultSampleRows, see
// SampleRows), so a column with skewed values still gives splits of equal
// size; duplicate values at a boundary give fewer splits. Any column type
// with an ordering works: integers, numeric, floats, dates, timestamps,
// text, uuid. The first split also reads the rows whose column is NULL.
func PartitionBy(column string, n int) Partitioning {
	return Partitioning{column: column, n: n}
}

// IntBounds divides [lower, upper) into n ranges of equal width instead of
// counting rows, as Spark's lowerBound and upperBound do: the first range
// also takes everything below lower (and NULLs), the last everything from
// its start up, so no row is left out whatever the bounds. For integer,
// numeric and float columns. Nothing is queried to find the bounds.
func (p Partitioning) IntBounds(lower, upper int64) Partitioning {
	p.bounds = bounds{kind: intBounds, ilo: lower, ihi: upper, given: true, valid: lower < upper}
	return p
}

// TimeBounds is IntBounds for date, timestamp and timestamptz columns. A
// timestamp column (without time zone) is compared with the bounds' wall
// clock in UTC.
func (p Partitioning) TimeBounds(lower, upper time.Time) Partitioning {
	p.bounds = bounds{kind: timeBounds, tlo: lower, thi: upper, given: true, valid: lower.Before(upper)}
	return p
}

// SampleRows finds the boundaries of a partitioning by count from a sample
// of about n rows of a table whose statistics (pg_class.reltuples) say it
// has more than n (DefaultSampleRows when not given), instead of sorting
// the whole column: TABLESAMPLE SYSTEM, which reads whole pages, a fixed
// seed, so that the same table gives the same splits. The splits are then
// even to within the sample's error; every row is still read exactly
// once. n <= 0 counts every row however large the table. Only tables are
// sampled: a Query's rows are always all counted.
func (p Partitioning) SampleRows(n int64) Partitioning {
	p.sample, p.sampleSet = max(n, -1), true
	return p
}

// sampleRows is the sample size, or -1 for none.
func (p Partitioning) sampleRows() int64 {
	if p.sample == 0 {
		return DefaultSampleRows
	}
	return p.sample
}

func (p Partitioning) apply(c *config) {
	if p.column == "" {
		c.errs = append(c.errs, fmt.Errorf("%w: PartitionBy needs a column", ErrConfig))
	}
	if p.n < 1 {
		c.errs = append(c.errs, fmt.Errorf("%w: PartitionBy(%q, %d): the number of splits must be at least 1", ErrConfig, p.column, p.n))
	}
	if p.bounds.given && !p.bounds.valid {
		c.errs = append(c.errs, fmt.Errorf("%w: PartitionBy(%q, %d): the lower bound must be below the upper bound", ErrConfig, p.column, p.n))
	}
	if p.bounds.given && p.sampleSet {
		c.errs = append(c.errs, fmt.Errorf("%w: PartitionBy(%q, %d): SampleRows finds boundaries by count, which given bounds replace", ErrConfig, p.column, p.n))
	}
	if c.part != nil || c.blocks > 0 {
		c.errs = append(c.errs, fmt.Errorf("%w: a second partitioning, PartitionBy(%q, %d)", ErrConfig, p.column, p.n))
	}
	c.part = &p
}

// PartitionByBlocks reads a table in n splits by ranges of its pages
// (ctid ranges, TID range scans: PostgreSQL 14 or later), for a table
// without a column to partition by: each split reads its pages and no
// others. The splits are even by rows as far as the table's rows are
// spread evenly over its pages. For tables and materialized views, under
// OneSnapshot only: without one snapshot an update between the reads of
// two splits could move a row from a page not yet read to one already read.
func PartitionByBlocks(n int) Option {
	return optionFunc(func(c *config) {
		if n < 1 {
			c.errs = append(c.errs, fmt.Errorf("%w: PartitionByBlocks(%d): the number of splits must be at least 1", ErrConfig, n))
		}
		if c.part != nil || c.blocks > 0 {
			c.errs = append(c.errs, fmt.Errorf("%w: a second partitioning, PartitionByBlocks(%d)", ErrConfig, n))
		}
		c.blocks = max(n, 1)
	})
}

// Consistency says which snapshot of the database the splits see. It is an
// Option: postgres.Read[T](p, conn, from, postgres.SnapshotPerSplit).
type Consistency int

const (
	// OneSnapshot (the default): every split sees the one snapshot that the
	// source exported when it listed the splits (see the package
	// documentation), as one query would.
	OneSnapshot Consistency = iota
	// SnapshotPerSplit: each split's query sees the database as it is when
	// that split opens. For servers that cannot export snapshots, and
	// connection poolers that cannot keep a transaction open.
	SnapshotPerSplit
)

// String names the consistency.
func (c Consistency) String() string {
	switch c {
	case OneSnapshot:
		return "one-snapshot"
	case SnapshotPerSplit:
		return "snapshot-per-split"
	}
	return fmt.Sprintf("Consistency(%d)", int(c))
}

func (c Consistency) apply(cfg *config) {
	if c != OneSnapshot && c != SnapshotPerSplit {
		cfg.errs = append(cfg.errs, fmt.Errorf("%w: unknown %v", ErrConfig, c))
	}
	cfg.consistency = c
}
