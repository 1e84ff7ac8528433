package dashboard

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func get(t *testing.T, method, path string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, req)
	return w
}

// TestServesAssets: the page at / and each asset under /assets/, with its
// content type, the Content-Security-Policy and an ETag.
func TestServesAssets(t *testing.T) {
	got := Assets()
	slices.Sort(got)
	want := []string{"/", "/assets/dashboard.css", "/assets/dashboard.js"}
	if !slices.Equal(got, want) {
		t.Fatalf("Assets() = %q, want %q", got, want)
	}
	for _, tc := range []struct{ path, ctype, has string }{
		{"/", "text/html; charset=utf-8", `<svg id="graph"`},
		{"/assets/dashboard.js", "text/javascript; charset=utf-8", "function layout("},
		{"/assets/dashboard.css", "text/css; charset=utf-8", ".node rect.box"},
	} {
		w := get(t, http.MethodGet, tc.path, nil)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != tc.ctype || !strings.Contains(w.Body.String(), tc.has) {
			t.Errorf("GET %s: %d %q, body has %q: %v", tc.path, w.Code, w.Header().Get("Content-Type"), tc.has, strings.Contains(w.Body.String(), tc.has))
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
		etag := w.Header().Get("ETag")
		if etag == "" || w.Header().Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: ETag %q, Cache-Control %q", tc.path, etag, w.Header().Get("Cache-Control"))
		}
		if w := get(t, http.MethodGet, tc.path, map[string]string{"If-None-Match": `"other", ` + etag}); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Errorf("GET %s, If-None-Match its ETag: %d with %d bytes, want 304 and none", tc.path, w.Code, w.Body.Len())
		}
		if w := get(t, http.MethodHead, tc.path, nil); w.Code != http.StatusOK || w.Body.Len() != 0 || w.Header().Get("Content-Length") == "" {
			t.Errorf("HEAD %s: %d with %d bytes", tc.path, w.Code, w.Body.Len())
		}
	}
}

// TestBadRequests: other paths are 404, other methods 405, each saying
// what is served.
func TestBadRequests(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		code         int
		says         string
	}{
		{http.MethodGet, "/index.html", http.StatusNotFound, "the page is at /"},
		{http.MethodGet, "/assets/", http.StatusNotFound, "no page /assets/"},
		{http.MethodGet, "/assets/index.html", http.StatusNotFound, "no page"},
		{http.MethodGet, "/assets/nothing.js", http.StatusNotFound, "no page /assets/nothing.js"},
		{http.MethodPost, "/", http.StatusMethodNotAllowed, "only GET and HEAD"},
		{http.MethodDelete, "/assets/dashboard.js", http.StatusMethodNotAllowed, "only GET and HEAD"},
	} {
		w := get(t, tc.method, tc.path, nil)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.says) {
			t.Errorf("%s %s: %d %q, want %d saying %q", tc.method, tc.path, w.Code, w.Body.String(), tc.code, tc.says)
		}
		if tc.code == http.StatusMethodNotAllowed && w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q", tc.method, tc.path, w.Header().Get("Allow"))
		}
	}
}

// TestNothingFetchedElsewhere: the page refers to its own assets by
// relative paths and to nothing on another host: the only absolute URL in
// the assets is SVG's namespace, which names and fetches nothing.
func TestNothingFetchedElsewhere(t *testing.T) {
	index := get(t, http.MethodGet, "/", nil).Body.String()
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(index, -1)
	var assets []string
	for _, m := range refs {
		ref := m[1]
		switch {
		case strings.HasPrefix(ref, "assets/"):
			assets = append(assets, ref)
			if w := get(t, http.MethodGet, "/"+ref, nil); w.Code != http.StatusOK {
				t.Errorf("the page refers to %s: GET /%s is %d", ref, ref, w.Code)
			}
		case ref == "/metrics": // a link to the same server
		default:
			t.Errorf("the page refers to %q: want its own assets only", ref)
		}
	}
	slices.Sort(assets)
	if !slices.Equal(assets, []string{"assets/dashboard.css", "assets/dashboard.js"}) {
		t.Errorf("the page loads %q", assets)
	}
	url := regexp.MustCompile(`(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s"')]*`)
	for _, p := range Assets() {
		body := get(t, http.MethodGet, p, nil).Body.String()
		for _, u := range url.FindAllString(body, -1) {
			if u != "http://www.w3.org/2000/svg" {
				t.Errorf("%s names %s: the page must fetch nothing but its own server's", p, u)
			}
		}
		for _, bad := range []string{"@import", "url(http", "importScripts", "new WebSocket", "eval("} {
			if strings.Contains(body, bad) {
				t.Errorf("%s has %q", p, bad)
			}
		}
	}
}
