// Command peers runs Sluice's benchmark workloads (DESIGN.md §6) in DuckDB
// on the Parquet that Sluice's gen-orders and gen-events write, and prints
// order-independent checksums of any engine's output, so that Sluice's
// results can be checked against an independent engine and timed against
// it.
//
//	peers run -w w1|w2|w3 -in DATA -out DIR [-threads 2]
//	peers verify -w w1|w2|w3 [-threads 0] DIR
//	peers sql [-json] QUERY
//	peers write-interop DIR
//
// See README.md for the workloads' queries and the checksum's definition.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" driver
)

const usage = `usage:
  peers run -w w1|w2|w3 -in DATA -out DIR [-threads 2]
      runs the workload in DuckDB on DATA/orders, DATA/users or DATA/events
      (as sluice run gen-orders / gen-events write them) and writes snappy
      Parquet under DIR, replacing it; prints the wall time
  peers verify -w w1|w2|w3 [-threads 0] DIR
      prints a checksum of the workload output under DIR that depends on
      neither row order, file layout nor floating-point summation order
  peers sql [-json] [-threads 0] QUERY
      runs one DuckDB query (session time zone UTC) and prints its rows:
      tab-separated, or with -json one JSON object a line (times as
      RFC 3339 strings in UTC, decimals as strings with their scale's digits)
  peers write-interop DIR
      writes Parquet files under DIR as DuckDB, Spark (INT96) and pyarrow
      write them, for Sluice's reader tests, and prints their paths
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:], os.Stdout)
	case "verify":
		err = verifyCmd(os.Args[2:], os.Stdout)
	case "sql":
		err = sqlCmd(os.Args[2:], os.Stdout)
	case "write-interop":
		err = writeInteropCmd(os.Args[2:], os.Stdout)
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "peers: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "peers %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// workload checks a -w flag's value.
func workload(w string) error {
	switch w {
	case "w1", "w2", "w3":
		return nil
	case "":
		return errors.New("-w w1|w2|w3 is required")
	}
	return fmt.Errorf("unknown workload %q (want w1, w2 or w3)", w)
}

// open opens an in-memory DuckDB limited to threads threads (0: DuckDB's
// default) that formats times in UTC. It holds one connection, so that
// the settings apply to every statement.
func open(ctx context.Context, threads int) (*sql.DB, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	stmts := []string{"SET TimeZone = 'UTC'"}
	if threads > 0 {
		stmts = append(stmts, fmt.Sprintf("SET threads = %d", threads))
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			db.Close()
			return nil, fmt.Errorf("%s: %w", s, err)
		}
	}
	return db, nil
}

// lit quotes s as an SQL string literal.
func lit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// parquetGlob returns the glob of the Parquet files under dir, at any
// depth (Sluice's _SUCCESS manifests and DuckDB's hive directories alike).
func parquetGlob(dir string) string { return filepath.Join(dir, "**", "*.parquet") }

// Expressions shared by the workloads and the checksums. Sluice writes
// times as TIMESTAMP(MILLIS) adjusted to UTC, which DuckDB reads as
// TIMESTAMP WITH TIME ZONE; epoch_ms takes either kind back to unix
// milliseconds, and epoch_ms of those milliseconds is a plain TIMESTAMP
// (UTC), so the day does not depend on the session's time zone.
func millis(col string) string { return fmt.Sprintf("epoch_ms(%s)", col) }

func dayOf(col string) string {
	return fmt.Sprintf("strftime(epoch_ms(epoch_ms(%s)), '%%Y-%%m-%%d')", col)
}

// workloadCopy returns the COPY statement of workload w reading the
// tables under in and writing under out.
func workloadCopy(w, in, out string) string {
	src := func(table string) string {
		return fmt.Sprintf("read_parquet(%s)", lit(parquetGlob(filepath.Join(in, table))))
	}
	switch w {
	case "w1":
		return fmt.Sprintf(`COPY (
	SELECT o.user_id, o.order_id, o.ts, o.amount, u.age, u.country, u.lifetime_value,
	       %s AS day
	FROM %s AS o JOIN %s AS u ON o.user_id = u.user_id
) TO %s (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (day))`,
			dayOf("o.ts"), src("orders"), src("users"), lit(out))
	case "w2":
		return fmt.Sprintf(`COPY (
	SELECT user_id, count(*)::BIGINT AS cnt, sum(amount) AS sum_amount
	FROM %s
	GROUP BY user_id
) TO %s (FORMAT parquet, COMPRESSION snappy)`,
			src("orders"), lit(filepath.Join(out, "data.parquet")))
	default: // w3
		return fmt.Sprintf(`COPY (
	SELECT user_id, (%s // 60000) * 60000 AS window_start,
	       count(*)::BIGINT AS cnt, sum(amount) AS sum_amount
	FROM %s
	GROUP BY ALL
) TO %s (FORMAT parquet, COMPRESSION snappy)`,
			millis("ts"), src("events"), lit(filepath.Join(out, "data.parquet")))
	}
}

func runCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	w := fs.String("w", "", "workload: w1, w2 or w3")
	in := fs.String("in", "", "the data directory holding orders/, users/ and events/")
	out := fs.String("out", "", "the output directory, replaced")
	threads := fs.Int("threads", 2, "DuckDB threads (0: DuckDB's default, all cores)")
	show := fs.Bool("sql", false, "print the statement before running it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := workload(*w); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return errors.New("-in DATA and -out DIR are required")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	ctx := context.Background()
	start := time.Now()
	db, err := open(ctx, *threads)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := os.RemoveAll(*out); err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if *w == "w1" {
		// PARTITION_BY writes into the directory itself: leave it absent.
		if err := os.Remove(*out); err != nil {
			return err
		}
	}
	stmt := workloadCopy(*w, *in, *out)
	if *show {
		fmt.Fprintln(stdout, stmt)
	}
	queryStart := time.Now()
	res, err := db.ExecContext(ctx, stmt)
	if err != nil {
		return err
	}
	rows, err := res.RowsAffected()
	if err != nil {
		return err
	}
	end := time.Now()
	fmt.Fprintf(stdout, "%s: duckdb wrote %d rows to %s in %.3fs (query %.3fs, %d threads)\n",
		*w, rows, *out, end.Sub(start).Seconds(), end.Sub(queryStart).Seconds(), *threads)
	return nil
}

// checksumQuery returns the query of workload w's checksum over the
// Parquet files under dir: one row of named BIGINT or HUGEINT columns.
//
// cents(x) is round(x*100) as BIGINT: the amounts are whole cents, and a
// sum of them is off by far less than half a cent whatever the order in
// which it was added up. Every row also contributes hash(its columns) as
// an unsigned 64-bit value to a HUGEINT sum, so that a change to any value
// of any row shows, while the sum does not depend on row order.
func checksumQuery(w, dir string) string {
	const cents = "round(%s * 100)::BIGINT"
	c := func(col string) string { return fmt.Sprintf(cents, col) }
	src := fmt.Sprintf("read_parquet(%s)", lit(parquetGlob(dir)))
	switch w {
	case "w1":
		src = fmt.Sprintf("read_parquet(%s, hive_partitioning = true, hive_types_autocast = false)",
			lit(parquetGlob(dir)))
		return fmt.Sprintf(`SELECT
	count(*)::BIGINT AS rows,
	count(DISTINCT day)::BIGINT AS days,
	count(*) FILTER (WHERE day IS DISTINCT FROM %s)::BIGINT AS misplaced,
	count(*)::BIGINT - count(DISTINCT order_id)::BIGINT AS dup_orders,
	sum(user_id)::HUGEINT AS user_id,
	sum(order_id)::HUGEINT AS order_id,
	sum(%s)::HUGEINT AS ts,
	sum(%s)::HUGEINT AS amount_cents,
	sum(age)::HUGEINT AS age,
	sum(%s)::HUGEINT AS ltv_cents,
	sum(hash(user_id, order_id, %s, %s, age, country, %s, day::VARCHAR)::HUGEINT) AS row_hash
FROM %s`, dayOf("ts"), millis("ts"), c("amount"), c("lifetime_value"),
			millis("ts"), c("amount"), c("lifetime_value"), src)
	case "w2":
		return fmt.Sprintf(`SELECT
	count(*)::BIGINT AS rows,
	count(*)::BIGINT - count(DISTINCT user_id)::BIGINT AS dup_keys,
	sum(user_id)::HUGEINT AS user_id,
	sum(cnt)::HUGEINT AS cnt,
	sum(%s)::HUGEINT AS sum_cents,
	sum(hash(user_id, cnt, %s)::HUGEINT) AS row_hash
FROM %s`, c("sum_amount"), c("sum_amount"), src)
	default: // w3
		return fmt.Sprintf(`SELECT
	count(*)::BIGINT AS rows,
	count(*)::BIGINT - count(DISTINCT (user_id, window_start))::BIGINT AS dup_keys,
	count(*) FILTER (WHERE window_start %% 60000 <> 0)::BIGINT AS unaligned,
	sum(user_id)::HUGEINT AS user_id,
	sum(window_start)::HUGEINT AS window_start,
	sum(cnt)::HUGEINT AS cnt,
	sum(%s)::HUGEINT AS sum_cents,
	sum(hash(user_id, window_start, cnt, %s)::HUGEINT) AS row_hash
FROM %s`, c("sum_amount"), c("sum_amount"), src)
	}
}

func verifyCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	w := fs.String("w", "", "workload: w1, w2 or w3")
	threads := fs.Int("threads", 0, "DuckDB threads (0: DuckDB's default, all cores)")
	show := fs.Bool("sql", false, "print the query before running it")
	schema := fs.Bool("schema", false, "print the columns and types DuckDB reads under DIR first")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := workload(*w); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("give one output directory")
	}
	dir := fs.Arg(0)
	if st, err := os.Stat(dir); err != nil {
		return err
	} else if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	ctx := context.Background()
	db, err := open(ctx, *threads)
	if err != nil {
		return err
	}
	defer db.Close()
	if *schema {
		desc := fmt.Sprintf("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(%s, hive_partitioning = true, hive_types_autocast = false))",
			lit(parquetGlob(dir)))
		cols, err := db.QueryContext(ctx, desc)
		if err != nil {
			return err
		}
		var parts []string
		for cols.Next() {
			var name, typ string
			if err := cols.Scan(&name, &typ); err != nil {
				cols.Close()
				return err
			}
			parts = append(parts, name+" "+typ)
		}
		cols.Close()
		if err := cols.Err(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "schema: %s\n", strings.Join(parts, ", "))
	}
	q := checksumQuery(*w, dir)
	if *show {
		fmt.Fprintln(stdout, q)
	}
	line, err := checksum(ctx, db, q)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s\n", *w, line)
	return nil
}

// checksum runs q, which returns one row, and formats it as name=value
// pairs in the query's column order.
func checksum(ctx context.Context, db *sql.DB, q string) (string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", err
		}
		return "", errors.New("the checksum query returned no row")
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", err
	}
	parts := make([]string, len(cols))
	for i, col := range cols {
		v := vals[i]
		if v == nil {
			v = "null"
		}
		parts[i] = fmt.Sprintf("%s=%v", col, v)
	}
	return strings.Join(parts, " "), rows.Err()
}
