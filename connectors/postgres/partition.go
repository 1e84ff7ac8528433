package postgres

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// rangeSpec is one split's range of the partition column.
type rangeSpec struct {
	where   string // an SQL condition, or "" for every row
	records int64  // estimated rows, or -1
}

// partition finds the ranges of the source's partition column over from,
// whose columns are cols: n-1 boundaries that divide the rows evenly by
// count (percentile_disc), or even-width ranges between given bounds.
// Ranges are half-open, [lo, hi); the first has no lower end and also
// takes the NULLs, the last has no upper end, so that every row is in
// exactly one.
func (s *Source[T]) partition(ctx context.Context, c *pgx.Conn, rel relation, from string, args []any, cols []column) ([]rangeSpec, error) {
	estimate := int64(-1)
	if rel.reltuples >= 0 {
		estimate = int64(rel.reltuples)
	}
	if s.cfg.blocks > 0 {
		return s.blockRanges(rel, estimate)
	}
	p := s.cfg.part
	if p == nil {
		return []rangeSpec{{records: estimate}}, nil
	}
	var col column
	found := false
	for _, cc := range cols {
		if cc.name == p.column {
			col, found = cc, true
		}
	}
	if !found {
		var names []string
		for _, cc := range cols {
			names = append(names, cc.name)
		}
		return nil, fmt.Errorf("%w: %v: partition column %s is not in the result (its columns are %s)",
			ErrSchema, s.from, p.column, strings.Join(names, ", "))
	}
	if p.n == 1 {
		return []rangeSpec{{records: estimate}}, nil
	}
	ident := pgx.Identifier{p.column}.Sanitize()
	var edges []string // SQL literals, increasing
	var fracs []float64
	var nulls, nonNull int64
	if p.bounds.given {
		cast, err := boundsCast(p.bounds.kind, col)
		if err != nil {
			return nil, fmt.Errorf("%w: %v: %v", ErrSchema, s.from, err)
		}
		edges = boundaryLiterals(p.bounds, p.n, col, cast)
		if estimate >= 0 {
			nonNull = estimate
			for i := range edges {
				fracs = append(fracs, float64(i+1)/float64(p.n))
			}
		}
	} else {
		var fs []string
		for k := 1; k < p.n; k++ {
			fracs = append(fracs, float64(k)/float64(p.n))
			fs = append(fs, strconv.FormatFloat(float64(k)/float64(p.n), 'g', -1, 64))
		}
		// A large table's boundaries come from a sample of its pages.
		over := from
		if _, isTable := s.from.(table); isTable && p.sampleRows() > 0 && rel.reltuples > float64(p.sampleRows()) {
			pct := 100 * float64(p.sampleRows()) / rel.reltuples
			over = fmt.Sprintf("%s TABLESAMPLE SYSTEM (%s) REPEATABLE (0)", from, strconv.FormatFloat(pct, 'f', -1, 64))
		}
		var total int64
		var vals []*string
		for {
			sql := fmt.Sprintf("SELECT count(*), count(%s), (percentile_disc(ARRAY[%s]::float8[]) WITHIN GROUP (ORDER BY %s))::text[] FROM %s",
				ident, strings.Join(fs, ","), ident, over)
			if err := c.QueryRow(ctx, sql, args...).Scan(&total, &nonNull, &vals); err != nil {
				return nil, fmt.Errorf("postgres: %v: finding the ranges of %s: %w", s.from, p.column, err)
			}
			if nonNull > 0 || over == from {
				break
			}
			over = from // the sample found nothing (statistics out of date): count every row
		}
		// A sample's counts scale to the table's statistics.
		scale := 1.0
		if over != from {
			scale = rel.reltuples / float64(total)
		}
		nulls = int64(math.Round(float64(total-nonNull) * scale))
		nonNull = int64(math.Round(float64(nonNull) * scale))
		total = nulls + nonNull
		if nonNull == 0 {
			return []rangeSpec{{records: total}}, nil
		}
		// Distinct boundaries only: a value more common than a split's share
		// stays in one split.
		var keep []float64
		for i, v := range vals {
			lit := quoteLiteral(*v) + "::" + col.typeName
			if len(edges) > 0 && edges[len(edges)-1] == lit {
				continue
			}
			edges = append(edges, lit)
			keep = append(keep, fracs[i])
		}
		fracs = keep
	}
	// Estimates: each range's share of the non-NULL rows.
	share := func(i int) int64 {
		if fracs == nil {
			return -1
		}
		lo, hi := 0.0, 1.0
		if i > 0 {
			lo = fracs[i-1]
		}
		if i < len(fracs) {
			hi = fracs[i]
		}
		return int64(math.Round((hi - lo) * float64(nonNull)))
	}
	if len(edges) == 0 { // one value, or bounds narrower than a step
		if !p.bounds.given {
			estimate = nonNull + nulls
		}
		return []rangeSpec{{records: estimate}}, nil
	}
	out := []rangeSpec{{where: fmt.Sprintf("(%s < %s OR %s IS NULL)", ident, edges[0], ident), records: share(0)}}
	if out[0].records >= 0 {
		out[0].records += nulls
	}
	for i := 1; i < len(edges); i++ {
		out = append(out, rangeSpec{where: fmt.Sprintf("%s >= %s AND %s < %s", ident, edges[i-1], ident, edges[i]), records: share(i)})
	}
	out = append(out, rangeSpec{where: fmt.Sprintf("%s >= %s", ident, edges[len(edges)-1]), records: share(len(edges))})
	return out, nil
}

// boundsCast is the SQL type that even-width boundaries of kind k are
// written in for column c: one that compares with c through its index.
func boundsCast(k boundsKind, c column) (string, error) {
	switch k {
	case intBounds:
		switch c.oid {
		case oidInt2, oidInt4, oidInt8:
			return "bigint", nil
		case oidNumeric:
			return "numeric", nil
		case oidFloat4, oidFloat8:
			return "double precision", nil
		}
		return "", fmt.Errorf("IntBounds needs an integer, numeric or float partition column; %s is %s", c.name, c.typeName)
	case timeBounds:
		switch c.oid {
		case oidDate, oidTimestamp:
			return "timestamp", nil
		case oidTimestamptz:
			return "timestamptz", nil
		}
		return "", fmt.Errorf("TimeBounds needs a date, timestamp or timestamptz partition column; %s is %s", c.name, c.typeName)
	}
	return "", fmt.Errorf("unknown bounds")
}

// boundaryLiterals divides the bounds into n even ranges and returns the
// n-1 inner boundaries (fewer when the range is narrower than n steps).
func boundaryLiterals(b bounds, n int, c column, cast string) []string {
	lo, hi := b.ilo, b.ihi
	if b.kind == timeBounds { // microseconds: PostgreSQL's resolution
		lo, hi = b.tlo.UnixMicro(), b.thi.UnixMicro()
	}
	var out []string
	for _, e := range evenSplit(lo, hi, n) {
		var s string
		switch {
		case b.kind == intBounds:
			s = strconv.FormatInt(e, 10)
		case cast == "timestamptz":
			s = time.UnixMicro(e).UTC().Format("2006-01-02 15:04:05.999999Z07:00")
		default:
			s = time.UnixMicro(e).UTC().Format("2006-01-02 15:04:05.999999")
		}
		out = append(out, quoteLiteral(s)+"::"+cast)
	}
	return out
}

// evenSplit returns the distinct inner boundaries lo + (hi-lo)*k/n for
// k = 1..n-1, computed without overflow for any lo < hi.
func evenSplit(lo, hi int64, n int) []int64 {
	width := uint64(hi - lo) // exact: hi > lo
	un := uint64(n)
	var out []int64
	for k := uint64(1); k < un; k++ {
		e := lo + int64(width/un*k+width%un*k/un)
		if e == lo || (len(out) > 0 && out[len(out)-1] == e) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// blockRanges divides a table's pages into s.cfg.blocks ranges of ctids.
// The last range has no upper end: pages added since the table's size was
// taken hold no rows of the snapshot, but a range must still cover them.
func (s *Source[T]) blockRanges(rel relation, estimate int64) ([]rangeSpec, error) {
	if rel.kind != "r" && rel.kind != "m" {
		return nil, fmt.Errorf("%w: %v: PartitionByBlocks needs a table or materialized view (relkind %q has no pages of its own)", ErrConfig, s.from, rel.kind)
	}
	if rel.version < 140000 {
		return nil, fmt.Errorf("%w: %v: PartitionByBlocks needs PostgreSQL 14 or later for TID range scans (server_version_num %d)", ErrConfig, s.from, rel.version)
	}
	n := s.cfg.blocks
	pages := rel.size / max(rel.blockSize, 1)
	if n == 1 || pages < 2 {
		return []rangeSpec{{records: estimate}}, nil
	}
	var edges []string
	for _, e := range evenSplit(0, pages, n) {
		edges = append(edges, quoteLiteral(fmt.Sprintf("(%d,0)", e))+"::tid")
	}
	share := func(lo, hi int64) int64 {
		if estimate < 0 {
			return -1
		}
		return int64(math.Round(float64(estimate) * float64(hi-lo) / float64(pages)))
	}
	var out []rangeSpec
	lo := int64(0)
	for i, e := range evenSplit(0, pages, n) {
		var where string
		if i == 0 {
			where = fmt.Sprintf("ctid < %s", edges[0])
		} else {
			where = fmt.Sprintf("ctid >= %s AND ctid < %s", edges[i-1], edges[i])
		}
		out = append(out, rangeSpec{where: where, records: share(lo, e)})
		lo = e
	}
	out = append(out, rangeSpec{where: "ctid >= " + edges[len(edges)-1], records: share(lo, pages)})
	return out, nil
}
