package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-data/sluice/connectors/postgres"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// db is a test's own schema in the server at SLUICE_PG_URL (scripts/test.sh
// starts one and sets it), dropped when the test ends.
type db struct {
	t      testing.TB
	url    string // with the test's application_name, to find its sessions
	app    string
	schema string
	conn   *pgx.Conn
}

func server(t testing.TB) *db {
	t.Helper()
	base := os.Getenv("SLUICE_PG_URL")
	if base == "" {
		testenv.Need(t, "SLUICE_PG_URL is not set: no PostgreSQL server to test against (scripts/test.sh starts one and sets it)")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	d := &db{t: t, schema: "t_" + name + "_" + hex.EncodeToString(b[:])}
	d.app = d.schema
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("SLUICE_PG_URL: %v", err)
	}
	q := u.Query()
	q.Set("application_name", d.app)
	u.RawQuery = q.Encode()
	d.url = u.String()
	ctx := ctxT(t)
	if d.conn, err = pgx.Connect(ctx, base); err != nil {
		t.Fatalf("PostgreSQL at SLUICE_PG_URL=%s: %v", base, err)
	}
	d.exec("CREATE SCHEMA " + d.schema)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := d.conn.Exec(ctx, "DROP SCHEMA "+d.schema+" CASCADE"); err != nil {
			t.Errorf("dropping the test's schema: %v", err)
		}
		_ = d.conn.Close(ctx)
	})
	return d
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (d *db) exec(sql string, args ...any) {
	d.t.Helper()
	if _, err := d.conn.Exec(ctxT(d.t), sql, args...); err != nil {
		d.t.Fatalf("%s: %v", sql, err)
	}
}

// table names a table of the test's schema.
func (d *db) table(name string) string { return d.schema + "." + name }

// sessions counts the server sessions of the sources under test, and those
// of them idle in a transaction.
func (d *db) sessions() (all, idleInTx int) {
	d.t.Helper()
	err := d.conn.QueryRow(ctxT(d.t), `SELECT count(*), count(*) FILTER (WHERE state = 'idle in transaction')
		FROM pg_stat_activity WHERE application_name = $1`, d.app).Scan(&all, &idleInTx)
	if err != nil {
		d.t.Fatal(err)
	}
	return all, idleInTx
}

// noSessions fails the test unless the sources' sessions end within a few
// seconds (a backend leaves pg_stat_activity shortly after its client).
func (d *db) noSessions(after string) {
	d.t.Helper()
	testenv.WaitFor(d.t, "the sources' sessions to end "+after, 10*time.Second, func() bool {
		all, _ := d.sessions()
		return all == 0
	})
}

// item is a record of the items table: every kind of column the source
// reads, nullable ones into pointers.
type item struct {
	ID      int64
	K       int32
	Name    string
	Amount  string // numeric, exactly
	Score   float64
	Flag    bool
	TS      time.Time // timestamptz
	Day     time.Time // date
	LocalTS time.Time `pg:"local_ts"` // timestamp
	Note    *string
	MaybeN  *int64 `pg:"maybe_n"`
	Skipped string `pg:"-"`
}

func (it item) String() string {
	note, n := "<nil>", "<nil>"
	if it.Note != nil {
		note = *it.Note
	}
	if it.MaybeN != nil {
		n = fmt.Sprint(*it.MaybeN)
	}
	return fmt.Sprintf("%d|%d|%s|%s|%v|%v|%s|%s|%s|%s|%s", it.ID, it.K, it.Name, it.Amount, it.Score, it.Flag,
		it.TS.UTC().Format(time.RFC3339Nano), it.Day.Format(time.DateOnly), it.LocalTS.Format(time.RFC3339Nano), note, n)
}

// makeItems creates the items table with n rows; every tenth has a NULL
// in maybe_n, every fifth a NULL note.
func (d *db) makeItems(n int) string {
	d.t.Helper()
	tbl := d.table("items")
	d.exec(fmt.Sprintf(`CREATE TABLE %s AS SELECT
		g::bigint AS id, (g %% 10)::int AS k, 'name-' || g AS name, (g * 1.25)::numeric(12,2) AS amount,
		g / 7.0::float8 AS score, g %% 3 = 0 AS flag,
		timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute' AS ts,
		date '2024-01-01' + (g / 100) AS day,
		timestamp '2024-01-01 00:00:00' + g * interval '1 second' + interval '0.000123 second' AS local_ts,
		CASE WHEN g %% 5 = 0 THEN NULL ELSE 'note ''' || g || '''' END AS note,
		CASE WHEN g %% 10 = 0 THEN NULL ELSE g * 3 END AS maybe_n
		FROM generate_series(1, %d) g`, tbl, n))
	d.exec("ANALYZE " + tbl)
	return tbl
}

// reference reads sql in one connection, the way an application would,
// as sorted rows.
func (d *db) reference(sql string, args ...any) []string {
	d.t.Helper()
	rows, err := d.conn.Query(ctxT(d.t), sql, args...)
	if err != nil {
		d.t.Fatalf("%s: %v", sql, err)
	}
	var out []string
	for rows.Next() {
		var it item
		if err := rows.Scan(&it.ID, &it.K, &it.Name, &it.Amount, &it.Score, &it.Flag, &it.TS, &it.Day,
			&it.LocalTS, &it.Note, &it.MaybeN); err != nil {
			d.t.Fatal(err)
		}
		out = append(out, it.String())
	}
	if err := rows.Err(); err != nil {
		d.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

const itemColumns = "id, k, name, amount, score, flag, ts, day, local_ts, note, maybe_n"

// readSplits lists src's splits and reads them all at once, each through
// its own reader, returning each split's records.
func readSplits[T any](t testing.TB, src *postgres.Source[T]) ([]stages.Split, [][]T) {
	t.Helper()
	ctx := ctxT(t)
	splits, err := src.Splits(ctx)
	if err != nil {
		t.Fatalf("Splits: %v", err)
	}
	out := make([][]T, len(splits))
	errs := make([]error, len(splits))
	var wg sync.WaitGroup
	for i, sp := range splits {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = readSplit(ctx, src, sp)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("split %d (%s): %v", i, splits[i].Desc, err)
		}
	}
	return splits, out
}

func readSplit[T any](ctx context.Context, src *postgres.Source[T], sp stages.Split) ([]T, error) {
	return readSplitAs(ctx, src, stages.Instance{}, sp, -1)
}

// readSplitAs reads split sp as instance inst, stopping after limit records
// (at the end when limit is -1).
func readSplitAs[T any](ctx context.Context, src *postgres.Source[T], inst stages.Instance, sp stages.Split, limit int) ([]T, error) {
	r, err := src.Open(ctx, inst, sp)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []T
	buf := make([]T, 100)
	for limit < 0 || len(out) < limit {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, fmt.Errorf("Read returned (0, nil)")
		}
	}
	return out, nil
}

func sortedStrings[T fmt.Stringer](parts ...[]T) []string {
	var out []string
	for _, p := range parts {
		for _, x := range p {
			out = append(out, x.String())
		}
	}
	slices.Sort(out)
	return out
}

// sameRows fails t with the first difference between got and want.
func sameRows(t testing.TB, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("%s: row %d is\n%s\nwant\n%s", what, i, got[i], want[i])
		}
	}
}
