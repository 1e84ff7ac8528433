package examples

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/stages"
)

// nexmarkSQL is each query's independent computation in DuckDB's SQL over
// the generated events (nexmark-gen's JSON lines, the view ev), in the
// columns of the query's JSON output.
var nexmarkSQL = map[string]string{
	"nexmark-q1": `SELECT auction, bidder, price * 89 // 100 AS price, "dateTime", extra FROM ev WHERE type = 'bid'`,
	"nexmark-q2": `SELECT auction, price FROM ev WHERE type = 'bid' AND auction % 123 = 0`,
	"nexmark-q3": `SELECT p.name, p.city, p.state, a.id FROM ev p JOIN ev a ON p.type = 'person' AND a.type = 'auction' AND p.id = a.seller
		AND a.category = 10 AND p.state IN ('OR', 'ID', 'CA')`,
	"nexmark-q5": `WITH w AS (SELECT auction, ("dateTime" // 5000) * 5000 - k * 5000 AS ws FROM ev, range(0, 2) t(k) WHERE type = 'bid'),
		c AS (SELECT ws, auction, count(*) AS num FROM w GROUP BY ws, auction),
		m AS (SELECT ws, max(num) AS mx FROM c GROUP BY ws)
		SELECT ws AS window_start, ws + 10000 AS window_end, auction, num FROM c JOIN m USING (ws) WHERE num = mx`,
	"nexmark-q7": `WITH b AS (SELECT auction, bidder, price, "dateTime", extra, "dateTime" // 10000 AS w FROM ev WHERE type = 'bid'),
		m AS (SELECT w, max(price) AS mx FROM b GROUP BY w)
		SELECT auction, bidder, price, "dateTime", extra FROM b JOIN m USING (w) WHERE price = mx`,
	"nexmark-q8": `SELECT p.id, p.name, a.reserve, (p."dateTime" // 10000) * 10000 AS window_start
		FROM ev p JOIN ev a ON p.type = 'person' AND a.type = 'auction' AND p.id = a.seller AND p."dateTime" // 10000 = a."dateTime" // 10000`,
}

// TestNexmarkAgainstDuckDB: q1, q2, q3, q5, q7 and q8 (the queries DuckDB's
// SQL expresses) equal, row for row as multisets, DuckDB's computation
// over the same generated events, at parallelism 1, 2 and 3, with events
// out of order. DuckDB comes from tools/peers through $SLUICE_PEERS, which
// scripts/test.sh builds and sets.
func TestNexmarkAgainstDuckDB(t *testing.T) {
	peers := os.Getenv("SLUICE_PEERS")
	if peers == "" {
		t.Skip("SLUICE_PEERS is not set: scripts/test.sh builds tools/peers and sets it")
	}
	dir := t.TempDir()
	args := map[string]string{"events": "30000", "out-of-order": "50"}
	events := filepath.Join(dir, "events")
	runJob(t, NexmarkGen, with(args, "out", events), 1)
	read := func(d string) string {
		return fmt.Sprintf("read_json_auto('%s/*.jsonl', format = 'newline_delimited', union_by_name = true)", d)
	}
	for _, q := range []string{"nexmark-q1", "nexmark-q2", "nexmark-q3", "nexmark-q5", "nexmark-q7", "nexmark-q8"} {
		j, ok := stages.Lookup(q)
		if !ok {
			t.Fatalf("no job %s", q)
		}
		for par := 1; par <= 3; par++ {
			out := filepath.Join(dir, fmt.Sprintf("%s-%d", q, par))
			runJob(t, j, with(args, "out", out), par)
			sql := fmt.Sprintf(`WITH ev AS (SELECT * FROM %s), want AS (%s), got AS (SELECT * FROM %s)
				SELECT (SELECT count(*) FROM want) AS want, (SELECT count(*) FROM got) AS got,
				(SELECT count(*) FROM (SELECT * FROM want EXCEPT ALL SELECT * FROM got)) AS missing,
				(SELECT count(*) FROM (SELECT * FROM got EXCEPT ALL SELECT * FROM want)) AS extra`,
				read(events), nexmarkSQL[q], read(out))
			res, err := exec.Command(peers, "sql", "-json", sql).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: peers sql: %v\n%s", q, err, res)
			}
			line := strings.TrimSpace(string(res))
			var want, got, missing, extra int
			if _, err := fmt.Sscanf(line, `{"want":%d,"got":%d,"missing":%d,"extra":%d}`, &want, &got, &missing, &extra); err != nil {
				t.Fatalf("%s: DuckDB said %q: %v", q, line, err)
			}
			if want == 0 || missing != 0 || extra != 0 {
				t.Fatalf("%s at parallelism %d: DuckDB has %d rows, the job %d: %d missing, %d extra", q, par, want, got, missing, extra)
			}
			t.Logf("%s at parallelism %d: %d rows, equal to DuckDB's", q, par, got)
		}
	}
}
