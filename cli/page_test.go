package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// tickBase is the event time of test-dashboard's first tick.
var tickBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func init() {
	// test-dashboard: ticks a millisecond of event time apart, n in all
	// (4M), read by two instances; counted per key and second of event
	// time over a hash edge whose key 0 takes three records in four (a hot
	// instance); and written by a deliberately slow sink of three
	// instances (a rebalance edge), which sleeps 1 ms every 16 records, so
	// that the ticks' vertex is blocked on credit: backpressured. The slow
	// sink bounds the job at about 48k records/s: 4M take 80 s or more,
	// and the test cancels it long before.
	stages.Register("test-dashboard", func(p *stages.Pipeline, args stages.Args) {
		n := int64(args.Int("n", 4_000_000))
		ticks := stages.Read[int64](p, tickSource{n: n, splits: 2}, stages.Name("ticks"), stages.Parallelism(2))
		timed := stages.EventTime(ticks, func(i int64) time.Time { return tickBase.Add(time.Duration(i) * time.Millisecond) },
			stages.MaxDelay(time.Second))
		hot := stages.KeyBy(timed, func(i int64) int64 {
			if i%4 != 0 {
				return 0
			}
			return i % 64
		})
		counts := stages.WindowAggregate(hot, window.Fixed(time.Second), stages.Count[int64](), stages.Name("per-second"),
			stages.ID("per-second-v1"), stages.Parallelism(2))
		stages.ForEach(counts, func(stages.Windowed[int64, int64]) error { return nil }, stages.Name("counts"))
		var written atomic.Int64
		stages.ForEach(timed, func(int64) error {
			if written.Add(1)%16 == 0 {
				time.Sleep(time.Millisecond)
			}
			return nil
		}, stages.Name("slow"), stages.Parallelism(3))
	}).Describe("a page test's job: event-time ticks, a hot key, a slow sink")
}

// tickSource gives the integers [0, n) in splits interleaved: split s has
// s, s+splits, s+2·splits, ..., so that instances read side by side in
// event time.
type tickSource struct {
	n      int64
	splits int
}

func (s tickSource) Splits(context.Context) ([]stages.Split, error) {
	out := make([]stages.Split, s.splits)
	for i := range out {
		recs := (s.n - int64(i) + int64(s.splits) - 1) / int64(s.splits)
		out[i] = stages.Split{Index: i, Records: recs, Bytes: 8 * recs, Desc: fmt.Sprintf("ticks %d of %d", i+1, s.splits), Data: i}
	}
	return out, nil
}

func (s tickSource) Open(_ context.Context, _ stages.Instance, sp stages.Split) (stages.Reader[int64], error) {
	return &tickReader{next: int64(sp.Data.(int)), step: int64(s.splits), end: s.n}, nil
}

type tickReader struct{ next, step, end int64 }

func (r *tickReader) Read(buf []int64) (int, error) {
	n := 0
	for ; n < len(buf) && r.next < r.end; n++ {
		buf[n] = r.next
		r.next += r.step
	}
	if r.next >= r.end {
		return n, io.EOF
	}
	return n, nil
}

func (r *tickReader) Close() error { return nil }

// chromium returns the path of a Chromium or Chrome to drive, or skips t
// (fails it under the test script, which installs Debian's chromium).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SLUICE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Need(t, "no Chromium to load the page in (apt-get install chromium; scripts/test.sh installs it), nor SLUICE_CHROMIUM")
	return ""
}

// artifacts returns the directory for a test's artifacts: $SLUICE_ARTIFACTS
// when set, else a temporary directory.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SLUICE_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// pageRow is a row of the page's vertices table, as its data attributes
// give it.
type pageRow struct {
	Vertex        int     `json:"vertex"`
	Rate          float64 `json:"rate"`
	RecordsIn     int64   `json:"recordsIn"`
	RecordsOut    int64   `json:"recordsOut"`
	Busy          float64 `json:"busy"`
	Blocked       float64 `json:"blocked"`
	Backpressured bool    `json:"backpressured"`
	Watermark     string  `json:"watermark"`
	Skew          string  `json:"skew"`
}

// pageState is what the test reads off the page at one moment.
type pageState struct {
	Polls int       `json:"polls"`
	State string    `json:"state"`
	Error string    `json:"error"`
	Rows  []pageRow `json:"rows"`
	Nodes []struct {
		Vertex        int  `json:"vertex"`
		Backpressured bool `json:"backpressured"`
	} `json:"nodes"`
	Edges []struct {
		From int    `json:"from"`
		To   int    `json:"to"`
		Kind string `json:"kind"`
	} `json:"edges"`
	Checkpoints int     `json:"checkpoints"`
	Progress    float64 `json:"progress"`
	Text        string  `json:"text"`
}

func (s pageState) row(t *testing.T, v int) pageRow {
	t.Helper()
	for _, r := range s.Rows {
		if r.Vertex == v {
			return r
		}
	}
	t.Fatalf("poll %d: the page has no row for v%d", s.Polls, v)
	return pageRow{}
}

// readPage is the script that reads a pageState.
const readPage = `(() => {
  const num = (x) => Number(x || 0);
  const rows = [...document.querySelectorAll('#vertices tbody tr[data-vertex]')].map((r) => ({
    vertex: num(r.dataset.vertex), rate: num(r.dataset.rate), recordsIn: num(r.dataset.recordsIn),
    recordsOut: num(r.dataset.recordsOut), busy: num(r.dataset.busy), blocked: num(r.dataset.blocked),
    backpressured: r.dataset.backpressured === 'true', watermark: r.dataset.watermark || '', skew: r.dataset.skew || ''}));
  const nodes = [...document.querySelectorAll('#graph g.node[data-vertex]')].map((g) => ({
    vertex: num(g.dataset.vertex), backpressured: g.dataset.backpressured === 'true'}));
  const edges = [...document.querySelectorAll('#graph g[data-edge]')].map((g) => ({
    from: num(g.dataset.from), to: num(g.dataset.to), kind: g.dataset.kind}));
  return {polls: num(document.body.dataset.polls), state: document.body.dataset.state,
    error: document.getElementById('error').textContent, rows, nodes, edges,
    checkpoints: document.querySelectorAll('#checkpoints tr[data-completed="true"]').length,
    progress: num(document.getElementById('progress').dataset.progress), text: document.body.innerText};
})()`

// checkLayout lays out a 26-vertex graph with the page's own layout and
// returns what is wrong with it: overlapping vertices, edges that do not
// go left to right, points outside the drawing.
const checkLayout = `(() => {
  const nodes = [], edges = [];
  // Three sources; a chain of joins and maps with fan-out and long edges.
  for (let i = 1; i <= 26; i++) nodes.push({id: i, w: 250, h: 60 + (i % 3) * 15});
  const add = (a, b) => edges.push({from: a, to: b});
  add(1, 4); add(2, 4); add(3, 5); add(4, 5); add(4, 6); add(5, 7); add(6, 7); add(6, 8);
  for (let i = 7; i < 24; i++) { add(i, i + 2); if (i % 3 === 0) add(i, i + 5 <= 26 ? i + 5 : 26); }
  add(1, 20); add(2, 26); add(3, 25); add(24, 26);
  const lay = window.sluiceDashboard.layout(nodes, edges);
  const bad = [];
  const ps = [...lay.nodes.entries()];
  for (let i = 0; i < ps.length; i++) for (let j = i + 1; j < ps.length; j++) {
    const [a, p] = ps[i], [b, q] = ps[j];
    if (p.x < q.x + q.w && q.x < p.x + p.w && p.y < q.y + q.h && q.y < p.y + p.h) bad.push('v' + a + ' overlaps v' + b);
  }
  for (const [id, p] of ps) if (p.x < 0 || p.y < 0 || p.x + p.w > lay.width || p.y + p.h > lay.height) bad.push('v' + id + ' is outside');
  for (const e of lay.edges) {
    if (lay.nodes.get(e.from).layer >= lay.nodes.get(e.to).layer) bad.push('edge ' + e.from + '→' + e.to + ' goes back');
    for (let k = 1; k < e.points.length; k++) if (e.points[k][0] <= e.points[k - 1][0]) bad.push('edge ' + e.from + '→' + e.to + ' bends back');
  }
  return {bad, nodes: ps.length, edges: lay.edges.length, crossings: lay.crossings, width: lay.width, height: lay.height};
})()`

// TestPageInBrowser runs a job with a slow sink and --http, opens its page
// in headless Chromium and reads the DOM: every vertex and edge of the
// plan, rates above zero that change from one read to the next, the slow
// sink's upstream backpressured and the sink not, the event-time
// watermark advancing, progress, a completed checkpoint; the page's graph
// layout keeps a 26-vertex graph free of overlaps. It saves a screenshot
// in $SLUICE_ARTIFACTS (or a temporary directory). Then the page reads
// the JSON from ?job=, shows its error, and refuses a URL on another host.
func TestPageInBrowser(t *testing.T) {
	chrome := chromium(t)
	addr := freeAddr(t)
	base := "http://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ended := commandInBackground(ctx, "run", "test-dashboard", "--quiet", "--http", addr,
		"--checkpoints", "mem://", "--checkpoint-every", "200ms")
	defer func() {
		cancel()
		if r := <-ended; r.code == 0 {
			t.Errorf("cancelled: exit 0")
		}
	}()
	var view jobView
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get(base + "/v1/job"); err == nil {
			err = json.NewDecoder(resp.Body).Decode(&view)
			resp.Body.Close()
			if err == nil && view.Running && view.Stages[0].Records > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/v1/job: no running job with records within 30 s", base)
		}
		select {
		case r := <-ended:
			ended <- r
			t.Fatalf("the job ended (exit %d) before its page was up:\n%s", r.code, r.stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	var slow, upstream = -1, -1
	for _, s := range view.Stages {
		if s.Name == `foreach "slow"` {
			slow = s.Vertex
		}
	}
	for _, e := range view.Edges {
		if e.To == slow {
			upstream = e.From
		}
	}
	if slow < 0 || upstream < 0 || len(view.Vertices) < 3 {
		t.Fatalf("/v1/job: want 3 vertices or more, and an edge into the slow sink: %+v", view)
	}

	alloc, stopAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.WindowSize(1600, 1100), chromedp.Flag("disable-gpu", true))...)
	defer stopAlloc()
	var mu sync.Mutex
	var thrown []string
	browser, stopBrowser := chromedp.NewContext(alloc, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			mu.Lock()
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg = d.Exception.Description
			}
			thrown = append(thrown, fmt.Sprintf("%s:%d:%d: %s", d.URL, d.LineNumber+1, d.ColumnNumber+1, msg))
			mu.Unlock()
		}
	}))
	defer stopBrowser()
	tab, stopTab := context.WithTimeout(browser, 60*time.Second)
	defer stopTab()
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/")); err != nil {
		t.Fatalf("loading %s/ in %s: %v", base, chrome, err)
	}
	// read waits for a poll after the one numbered after, then reads the
	// page.
	read := func(after int) pageState {
		t.Helper()
		if _, err := chromedp.Run(tab, chromedp.Poll[bool](fmt.Sprintf("Number(document.body.dataset.polls) > %d", after),
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			st, _ := chromedp.Run(tab, chromedp.Evaluate[pageState](readPage))
			t.Fatalf("no poll after poll %d within 20 s (%v); the page: state %q, error %q", after, err, st.State, st.Error)
		}
		st, err := chromedp.Run(tab, chromedp.Evaluate[pageState](readPage))
		if err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		return st
	}
	first := read(1) // the second poll: rates between two polls
	// The slow sink's upstream is backpressured: blocked on credit more
	// than half its time, as Flink's HIGH.
	bp := fmt.Sprintf(`document.querySelector('#vertices tr[data-vertex="%d"]').dataset.backpressured === 'true' && `+
		`document.querySelector('#graph g.node[data-vertex="%d"]').dataset.backpressured === 'true'`, upstream, upstream)
	if _, err := chromedp.Run(tab, chromedp.Poll[bool](bp, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		st := read(0)
		t.Fatalf("v%d, upstream of the slow sink v%d, not shown backpressured within 20 s (%v): %+v", upstream, slow, err, st.row(t, upstream))
	}
	second := read(first.Polls)
	// Each instance has its row, the slow sink's upstream's backpressured.
	instances := 0
	for _, v := range view.Vertices {
		instances += v.Parallelism
	}
	inst := fmt.Sprintf(`document.querySelectorAll('#instances tr[data-instance]').length === %d && `+
		`document.querySelectorAll('#instances tr[data-instance^="%d/"][data-backpressured="true"]').length > 0 && `+
		`[...document.querySelectorAll('#instances tr[data-instance] td[data-rate]')].some((td) => Number(td.dataset.rate) > 0)`, instances, upstream)
	if _, err := chromedp.Run(tab, chromedp.Poll[bool](inst, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the instances' table: not %d rows with v%d's backpressured and rates above zero within 20 s: %v", instances, upstream, err)
	}

	var want, inGraph, inTable []int
	for _, v := range view.Vertices {
		want = append(want, v.ID)
	}
	for _, n := range second.Nodes {
		inGraph = append(inGraph, n.Vertex)
	}
	for _, r := range second.Rows {
		inTable = append(inTable, r.Vertex)
	}
	slices.Sort(inGraph)
	slices.Sort(inTable)
	if !slices.Equal(inGraph, want) || !slices.Equal(inTable, want) {
		t.Errorf("vertices: graph %v, table %v, want %v", inGraph, inTable, want)
	}
	var wantEdges, gotEdges []string
	for _, e := range view.Edges {
		wantEdges = append(wantEdges, fmt.Sprintf("v%d→v%d %s", e.From, e.To, e.Kind))
	}
	for _, e := range second.Edges {
		gotEdges = append(gotEdges, fmt.Sprintf("v%d→v%d %s", e.From, e.To, e.Kind))
	}
	slices.Sort(wantEdges)
	slices.Sort(gotEdges)
	if !slices.Equal(gotEdges, wantEdges) || !slices.Contains(gotEdges, fmt.Sprintf("v%d→v%d rebalance", upstream, slow)) {
		t.Errorf("edges: %v, want %v with a rebalance into the slow sink", gotEdges, wantEdges)
	}
	for _, s := range view.Stages {
		if !strings.Contains(second.Text, s.Name) {
			t.Errorf("the page does not name stage %s", s.Name)
		}
	}
	for _, v := range want {
		a, b := first.row(t, v), second.row(t, v)
		if a.Rate <= 0 || b.Rate <= 0 || a.Rate == b.Rate {
			t.Errorf("v%d: records/s %v at poll %d, %v at poll %d: want both above zero and changing", v, a.Rate, first.Polls, b.Rate, second.Polls)
		}
		if b.RecordsOut <= a.RecordsOut {
			t.Errorf("v%d: records out %d at poll %d, %d at poll %d", v, a.RecordsOut, first.Polls, b.RecordsOut, second.Polls)
		}
	}
	if r := second.row(t, slow); r.Backpressured || r.Busy < 0.5 {
		t.Errorf("the slow sink v%d: backpressured %v, busy %.2f: want busy, not backpressured", slow, r.Backpressured, r.Busy)
	}
	if r := second.row(t, upstream); !r.Backpressured || r.Blocked <= 0.5 {
		t.Errorf("v%d: backpressured %v, blocked %.2f at poll %d", upstream, r.Backpressured, r.Blocked, second.Polls)
	}
	wm := func(st pageState) int64 {
		t.Helper()
		r := st.row(t, upstream)
		w, err := strconv.ParseInt(r.Watermark, 10, 64)
		if err != nil {
			t.Fatalf("poll %d: v%d's watermark %q: %v", st.Polls, upstream, r.Watermark, err)
		}
		return w
	}
	if w1, w2 := wm(first), wm(second); w2 <= w1 || w1 < tickBase.UnixNano() {
		t.Errorf("v%d's watermark: %v at poll %d, then %v at poll %d: want it after %v and advancing", upstream,
			time.Unix(0, w1).UTC(), first.Polls, time.Unix(0, w2).UTC(), second.Polls, tickBase)
	}
	if second.Progress <= 0 || second.Progress >= 1 {
		t.Errorf("progress %v, want in (0, 1)", second.Progress)
	}
	if second.State != "running" || second.Error != "" {
		t.Errorf("the page: state %q, error %q", second.State, second.Error)
	}
	if _, err := chromedp.Run(tab, chromedp.Poll[bool](`document.querySelectorAll('#checkpoints tr[data-completed="true"]').length > 0`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Errorf("no completed checkpoint in the page's table within 20 s: %v", err)
	}

	type layoutCheck struct {
		Bad       []string `json:"bad"`
		Nodes     int      `json:"nodes"`
		Edges     int      `json:"edges"`
		Crossings int      `json:"crossings"`
	}
	lay, err := chromedp.Run(tab, chromedp.Evaluate[layoutCheck](checkLayout))
	if err != nil || lay.Nodes != 26 || len(lay.Bad) > 0 {
		t.Errorf("the layout of 26 vertices: %+v (%v)", lay, err)
	}
	t.Logf("the layout of 26 vertices and %d edges: %d crossings", lay.Edges, lay.Crossings)

	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifacts(t), "dashboard.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot at poll %d: %s (%d bytes)", second.Polls, path, len(png))

	// The JSON's URL comes from ?job=: a path on the same server, whose
	// error the page shows; it fetches nothing from another host.
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/?job=/v1/jobs/nothing/stats")); err != nil {
		t.Fatal(err)
	}
	shown, err := chromedp.Run(tab, chromedp.Poll[string](`document.body.dataset.state === 'error' && document.getElementById('error').textContent`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil || !strings.Contains(shown, "404") || !strings.Contains(shown, "no endpoint GET /v1/jobs/nothing/stats") {
		t.Errorf("?job=/v1/jobs/nothing/stats: the page shows %q (%v), want the 404 and its reason", shown, err)
	}
	for _, q := range []string{"?job=https://example.com/v1/job", "?job=//example.com/v1/job", "?job=v1/job"} {
		url, err := chromedp.Run(tab, chromedp.Evaluate[*string](fmt.Sprintf("window.sluiceDashboard.jsonURL(%q).url", q)))
		if err != nil || url != nil {
			got := "?"
			if url != nil {
				got = *url
			}
			t.Errorf("%s: the page would fetch %q (%v), want nothing", q, got, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(thrown) > 0 {
		t.Errorf("the page threw: %v", thrown)
	}
}
