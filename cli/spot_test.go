package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// TestSpotNoticeAnswers: what each metadata service's answer means —
// AWS's 404 (none) and JSON (a notice), GCE's FALSE and TRUE, and an
// error for any other status.
func TestSpotNoticeAnswers(t *testing.T) {
	for _, tc := range []struct {
		status     int
		body, want string
		err        bool
	}{
		{http.StatusNotFound, "", "", false},
		{http.StatusOK, `{"action": "stop"}`, `{"action": "stop"}`, false},
		{http.StatusOK, "FALSE", "", false},
		{http.StatusOK, "TRUE", "TRUE", false},
		{http.StatusForbidden, "", "", true},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut { // no IMDSv2 here: plain GETs
				http.NotFound(w, r)
				return
			}
			if r.Header.Get("Metadata-Flavor") != "Google" {
				http.Error(w, "no flavor", http.StatusBadRequest)
				return
			}
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(tc.body))
		}))
		u, _ := url.Parse(srv.URL + "/computeMetadata/v1/instance/preempted")
		got, err := spotNotice(context.Background(), srv.Client(), u)
		srv.Close()
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("status %d body %q: got %q, %v; want %q (error: %v)", tc.status, tc.body, got, err, tc.want, tc.err)
		}
	}
}
