// Package dashboard is a job's web page: its physical graph with each
// vertex's fused stages, parallelism and edge kinds; per vertex, records in
// and out, records/s, the busy, backpressured and idle shares of its time
// (coloured as Flink colours backpressure), watermark and lag, and the
// instances' shares of its records (skew); the sources' progress and time
// left; the checkpoints and the recoveries. It updates once a second
// without reload.
//
// The page reads only the JSON API: GET /v1/job of 'sluice run --http' by
// default, or the URL in its job parameter (/?job=/v1/jobs/ID/stats on a
// node), which must be a path on the same server. The fields it reads are
// those cli's jobView documents.
//
// Its assets are three hand-written files built into the binary with
// go:embed: index.html, dashboard.js (vanilla JavaScript, no framework) and
// dashboard.css. Nothing is fetched at run time but the JSON, and the
// Content-Security-Policy the handler sends forbids anything else. The
// graph is SVG, laid out by the script in layers (Sugiyama's scheme: layers
// by longest path, placeholder points on edges that span layers, crossings
// reduced by barycentre sweeps), which keeps 20 and more vertices readable
// without a layout library: dagre and ELK would each outweigh the page
// several times over and be code nobody here maintains.
package dashboard

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed assets
var assets embed.FS

// asset is one file of the page, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// csp allows the page its own assets and the JSON API on its own server,
// and nothing else.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// types are the assets' content types, by extension: fixed here rather
// than read from the system's MIME tables, which differ between machines.
var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

// files are the page's assets by the path they are served at: the page at
// "/", the others at "/assets/NAME".
var files = load()

func load() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ctype, ok := types[path.Ext(p)]
		if !ok {
			ctype = http.DetectContentType(body)
		}
		a := asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		if p == "assets/index.html" {
			out["/"] = a
		} else {
			out["/"+p] = a
		}
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("dashboard: reading the embedded assets: %v", err))
	}
	return out
}

// Assets returns the paths the handler serves: "/" and "/assets/NAME".
func Assets() []string {
	out := make([]string, 0, len(files))
	for p := range files {
		out = append(out, p)
	}
	return out
}

// Handler serves the page at "/" and its assets under "/assets/", to GET
// and HEAD; other paths get 404, other methods 405. Mount it at the root
// of the server whose JSON API the page reads. Responses carry an ETag and
// Cache-Control: no-cache, so a reload revalidates (a 304) rather than
// fetching again, and a new binary's page is never stale.
func Handler() http.Handler { return http.HandlerFunc(serve) }

func serve(w http.ResponseWriter, r *http.Request) {
	a, ok := files[r.URL.Path]
	if !ok {
		http.Error(w, fmt.Sprintf("dashboard: no page %s: the page is at / and its assets under /assets/", r.URL.Path), http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, fmt.Sprintf("dashboard: %s %s: only GET and HEAD", r.Method, r.URL.Path), http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	if match(r.Header.Get("If-None-Match"), a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", a.ctype)
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(a.body)
}

// match reports whether an If-None-Match header names etag.
func match(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
