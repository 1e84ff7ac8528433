package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exec runs DuckDB statements, failing the test on an error.
func exec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func testDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := open(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func verify(t *testing.T, w, dir string) string {
	t.Helper()
	var out bytes.Buffer
	if err := verifyCmd([]string{"-w", w, dir}, &out); err != nil {
		t.Fatalf("verify -w %s %s: %v", w, dir, err)
	}
	return strings.TrimSpace(out.String())
}

// writeInputs writes small orders, users and events tables under dir in
// gen-orders' and gen-events' layout and schemas (ts a UTC timestamp).
func writeInputs(t *testing.T, db *sql.DB, dir string) {
	for _, sub := range []string{"orders", "users", "events"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exec(t, db,
		`CREATE TABLE orders AS SELECT (i * 7919) % 500 AS user_id, i + 1 AS order_id,
			make_timestamptz(1704067200000000 + i * 259200000) AS ts, ((i * 104729) % 100000) / 100 AS amount
		 FROM range(10000) t(i)`,
		`CREATE TABLE users AS SELECT i AS user_id, (18 + i % 63)::INTEGER AS age,
			['US', 'IN', 'BR'][1 + i % 3] AS country, (i * 13 % 5000) / 100 AS lifetime_value
		 FROM range(500) t(i)`,
		`CREATE TABLE events AS SELECT (i * 31) % 97 AS user_id,
			make_timestamptz(1704067200000000 + i * 1000 - (i % 5) * 1000000) AS ts, (i % 1000) / 100 AS amount
		 FROM range(20000) t(i)`,
		"COPY (SELECT * FROM orders WHERE order_id % 2 = 0) TO "+lit(filepath.Join(dir, "orders", "part-0.parquet")),
		"COPY (SELECT * FROM orders WHERE order_id % 2 = 1) TO "+lit(filepath.Join(dir, "orders", "part-1.parquet")),
		"COPY users TO "+lit(filepath.Join(dir, "users", "part-0.parquet")),
		"COPY events TO "+lit(filepath.Join(dir, "events", "part-0.parquet")),
	)
	if err := os.WriteFile(filepath.Join(dir, "orders", "_SUCCESS"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestChecksumIgnoresLayout writes each workload's DuckDB output again in
// another layout, row order and summation order, and expects the same
// checksum; and a changed value must change it.
func TestChecksumIgnoresLayout(t *testing.T) {
	dir := t.TempDir()
	db := testDB(t)
	writeInputs(t, db, dir)
	for _, w := range []string{"w1", "w2", "w3"} {
		var out bytes.Buffer
		if err := runCmd([]string{"-w", w, "-in", dir, "-out", filepath.Join(dir, "duck-"+w)}, &out); err != nil {
			t.Fatalf("run -w %s: %v", w, err)
		}
	}
	want := map[string]string{}
	for _, w := range []string{"w1", "w2", "w3"} {
		want[w] = verify(t, w, filepath.Join(dir, "duck-"+w))
	}
	for _, s := range []string{"rows=10000 days=30 misplaced=0 dup_orders=0", "cnt=10000"} {
		if !strings.Contains(want["w1"]+" "+want["w2"], s) {
			t.Errorf("checksums %q lack %q", want, s)
		}
	}

	// Another layout: files split differently, rows reversed, sums added
	// in another order (the float sums may differ in their last bits).
	for _, sub := range []string{"alt-w2", "alt-w3", "bad-w2", "bad-w3"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	alt := func(name string) string { return lit(filepath.Join(dir, name)) }
	exec(t, db,
		`CREATE TABLE w2 AS SELECT user_id, count(*)::BIGINT AS cnt, sum(amount ORDER BY order_id DESC) AS sum_amount
		 FROM orders GROUP BY user_id`,
		`CREATE TABLE w3 AS SELECT user_id, (epoch_ms(ts) // 60000) * 60000 AS window_start, count(*)::BIGINT AS cnt,
			sum(amount ORDER BY amount) AS sum_amount FROM events GROUP BY ALL`,
		"COPY (SELECT * FROM w2 WHERE user_id < 100 ORDER BY user_id DESC) TO "+alt("alt-w2/a.parquet"),
		"COPY (SELECT * FROM w2 WHERE user_id >= 100 ORDER BY user_id DESC) TO "+alt("alt-w2/b.parquet"),
		"COPY (SELECT * FROM w3 ORDER BY window_start DESC) TO "+alt("alt-w3/a.parquet"),
	)
	for _, half := range []string{"0", "1"} {
		exec(t, db, `COPY (SELECT o.user_id, o.order_id, o.ts, o.amount, u.age, u.country, u.lifetime_value,
			strftime(o.ts, '%Y-%m-%d') AS day
		 FROM users u JOIN orders o USING (user_id) WHERE o.order_id % 2 = `+half+` ORDER BY o.order_id DESC)
		 TO `+alt("alt-w1")+` (FORMAT parquet, PARTITION_BY (day), APPEND)`)
	}
	for _, w := range []string{"w1", "w2", "w3"} {
		if got := verify(t, w, filepath.Join(dir, "alt-"+w)); got != want[w] {
			t.Errorf("%s: another layout gives\n%s\nwant\n%s", w, got, want[w])
		}
	}

	// A cent more in one row.
	exec(t, db, "UPDATE w2 SET sum_amount = sum_amount + 0.01 WHERE user_id = 7",
		"COPY w2 TO "+alt("bad-w2/a.parquet"))
	if got := verify(t, "w2", filepath.Join(dir, "bad-w2")); got == want["w2"] {
		t.Errorf("w2: a changed amount gives the same checksum %s", got)
	}
	// Two rows swapping their counts keep every column's sum: only the
	// row hash sees it.
	exec(t, db,
		"CREATE TABLE w3b AS SELECT * FROM w3",
		`UPDATE w3b SET cnt = cnt + 1 WHERE rowid = (SELECT min(rowid) FROM w3b)`,
		`UPDATE w3b SET cnt = cnt - 1 WHERE rowid = (SELECT max(rowid) FROM w3b)`,
		"COPY w3b TO "+alt("bad-w3/a.parquet"))
	got := verify(t, "w3", filepath.Join(dir, "bad-w3"))
	if got == want["w3"] {
		t.Errorf("w3: moved counts give the same checksum %s", got)
	}
	if i := strings.Index(got, " row_hash="); i < 0 || got[:i] != want["w3"][:strings.Index(want["w3"], " row_hash=")] {
		t.Errorf("w3: moving a count changed more than the row hash:\n%s\n%s", got, want["w3"])
	}
	// A row under the wrong day.
	exec(t, db, `COPY (SELECT o.user_id, o.order_id, o.ts, o.amount, u.age, u.country, u.lifetime_value,
			CASE WHEN o.order_id = 1 THEN '2023-12-31' ELSE strftime(o.ts, '%Y-%m-%d') END AS day
		 FROM users u JOIN orders o USING (user_id)) TO `+alt("bad-w1")+` (FORMAT parquet, PARTITION_BY (day))`)
	if got := verify(t, "w1", filepath.Join(dir, "bad-w1")); !strings.Contains(got, "misplaced=1 ") {
		t.Errorf("w1: a row under the wrong day gives %s", got)
	}
}
