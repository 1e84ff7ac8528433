package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/testenv"
)

// devSet is a --dev-certs directory's files, as a node's flags and a
// client's.
type devSet struct {
	dir, ca, cert, key, token, gossipKey string
}

func newDevSet(t *testing.T) devSet {
	t.Helper()
	dir, err := writeDevCerts(filepath.Join(t.TempDir(), "certs"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return devSetIn(dir)
}

func devSetIn(dir string) devSet {
	p := func(name string) string { return filepath.Join(dir, name) }
	return devSet{dir: dir, ca: p(devCA), cert: p(devCert), key: p(devKey), token: p(devToken), gossipKey: p(devGossipKey)}
}

// nodeFlags returns the flags of a node secured with s.
func (s devSet) nodeFlags() []string {
	return []string{"--tls-cert", s.cert, "--tls-key", s.key, "--tls-ca", s.ca, "--token-file", s.token, "--gossip-key-file", s.gossipKey}
}

// client returns a client of the API that trusts s's CA and sends its
// token (none if !withToken).
func (s devSet) client(t *testing.T, withToken bool) *remote {
	t.Helper()
	tokenFile := s.token
	if !withToken {
		tokenFile = ""
	}
	a, err := clientAuthFrom(tokenFile, s.ca, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return &remote{http: a.httpClient(5 * time.Second), auth: a}
}

func TestDevCerts(t *testing.T) {
	now := time.Now()
	s := newDevSet(t)
	sec, err := loadNodeSecurity(s.gossipKey, s.cert, s.key, s.ca, s.token, false, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if len(sec.keys) != 1 || len(sec.keys[0]) != 32 || len(sec.token) < 40 || sec.data == nil || sec.api == nil || sec.client.ca == nil {
		t.Fatalf("the dev set loads as %+v", sec)
	}
	if note, warn := sec.note("a", false); warn || !strings.Contains(note, "gossip encrypted") {
		t.Errorf("note: %q (warning %v)", note, warn)
	}
	b, _ := os.ReadFile(s.cert)
	block, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if d := cert.NotAfter.Sub(now); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Errorf("valid for %v, want 30 days", d)
	}
	if len(cert.IPAddresses) == 0 || !cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || len(cert.DNSNames) != 1 || cert.DNSNames[0] != "localhost" {
		t.Errorf("for %v %v, want 127.0.0.1 and localhost", cert.IPAddresses, cert.DNSNames)
	}
	for _, f := range []string{s.key, s.token, s.gossipKey} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want mode 0600", f, fi.Mode())
		}
	}
	if _, err := writeDevCerts(s.dir, now); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("writing over a set: %v, want a refusal", err)
	}
	// A certificate of another CA does not load against this one.
	other := newDevSet(t)
	if _, err := loadNodeSecurity(s.gossipKey, other.cert, other.key, s.ca, s.token, false, os.Getenv); err == nil ||
		!strings.Contains(err.Error(), "does not verify against --tls-ca") {
		t.Errorf("another CA's certificate: %v", err)
	}
}

func TestParseGossipKeys(t *testing.T) {
	for _, tc := range []struct {
		text string
		n    int
		err  string
	}{
		{"AAAAAAAAAAAAAAAAAAAAAA==\n", 1, ""},
		{"# rotated 2024-08\n\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 2, ""},
		{"AAAAAAAAAAAAAAAAAAAAAA==,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 2, ""},
		{"AAAA\n", 0, "line 1: 3 bytes, want 16, 24 or 32"},
		{"AAAAAAAAAAAAAAAAAAAAAA==\nnot base64!\n", 0, "line 2: not base64"},
		{"\n# nothing\n", 0, "holds no gossip key"},
	} {
		keys, err := parseGossipKeys("keys", tc.text)
		switch {
		case tc.err == "" && (err != nil || len(keys) != tc.n):
			t.Errorf("%q: %d keys, %v; want %d", tc.text, len(keys), err, tc.n)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: %v, want %q", tc.text, err, tc.err)
		}
	}
}

// TestNodeSecurityFlags: the flags go all together, or with --insecure;
// what a node says of itself at start.
func TestNodeSecurityFlags(t *testing.T) {
	s := newDevSet(t)
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	none := env(nil)
	for _, tc := range []struct {
		name                     string
		keys, cert, key, ca, tok string
		insecure                 bool
		getenv                   func(string) string
		err, note                string
	}{
		{name: "none", getenv: none, note: "no security flags: gossip, data and the HTTP API are plaintext and unauthenticated"},
		{name: "insecure", insecure: true, getenv: none, note: "node a: --insecure: gossip, data and the HTTP API are plaintext and unauthenticated"},
		{name: "token alone", tok: s.token, getenv: none, err: "no --gossip-key-file, no --tls-cert: a node secures"},
		{name: "token alone, insecure", tok: s.token, insecure: true, getenv: none,
			note: "--insecure: gossip is plaintext; data and the HTTP API are plaintext (the token crosses the network in the clear)"},
		{name: "TLS without its CA", cert: s.cert, key: s.key, keys: s.gossipKey, tok: s.token, getenv: none, err: "go together"},
		{name: "TLS and keys, insecure", cert: s.cert, key: s.key, ca: s.ca, keys: s.gossipKey, insecure: true, getenv: none,
			note: "--insecure: the HTTP API is unauthenticated"},
		{name: "from the environment", cert: s.cert, key: s.key, ca: s.ca, getenv: env(map[string]string{
			envToken: "secret", envGossipKey: "AAAAAAAAAAAAAAAAAAAAAA=="}), note: "gossip encrypted"},
		{name: "missing files", keys: "/nonexistent/k", tok: "/nonexistent/t", getenv: none, err: "--gossip-key-file: open /nonexistent/k"},
	} {
		sec, err := loadNodeSecurity(tc.keys, tc.cert, tc.key, tc.ca, tc.tok, tc.insecure, tc.getenv)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if note, _ := sec.note("a", tc.insecure); !strings.Contains(note, tc.note) {
			t.Errorf("%s: %q, want %q", tc.name, note, tc.note)
		}
	}
}

// TestTokenAndHTTPS: an API served over HTTPS with a token, as a node
// serves it, and the client's errors: no token, a wrong one (the same
// reply), plain HTTP to HTTPS, a CA that did not sign the node's
// certificate, HTTPS to plain HTTP.
func TestTokenAndHTTPS(t *testing.T) {
	s := newDevSet(t)
	sec, err := loadNodeSecurity(s.gossipKey, s.cert, s.key, s.ca, s.token, false, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	api := func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, nodesReply{Self: "a"}) }
	srv := httptest.NewUnstartedServer(requireToken(sec.token, http.HandlerFunc(api)))
	srv.TLS = sec.api
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes below
	srv.StartTLS()
	defer srv.Close()
	plain := httptest.NewServer(http.HandlerFunc(api))
	defer plain.Close()
	addr, plainAddr := strings.TrimPrefix(srv.URL, "https://"), strings.TrimPrefix(plain.URL, "http://")

	call := func(r *remote, to string) error {
		r.to = to
		var rep nodesReply
		err := r.call(context.Background(), http.MethodGet, "/v1/nodes", nil, &rep)
		if err == nil && rep.Self != "a" {
			t.Errorf("reply %+v", rep)
		}
		return err
	}
	if err := call(s.client(t, true), addr); err != nil {
		t.Fatalf("with the token and the CA: %v", err)
	}
	noToken := call(s.client(t, false), addr)
	wrong := s.client(t, true)
	wrong.auth.token = "not-the-token"
	wrongToken := call(wrong, addr)
	for _, err := range []error{noToken, wrongToken} {
		var ne *nodeError
		if !errors.As(err, &ne) || ne.status != http.StatusUnauthorized || !strings.Contains(err.Error(), "this node requires its token") {
			t.Errorf("without the token: %v, want a 401 saying a token is needed", err)
		}
	}
	if noToken.Error() != wrongToken.Error() {
		t.Errorf("no token: %q; a wrong one: %q; want the same", noToken, wrongToken)
	}
	// A raw request: the 401 is JSON and says nothing of the token given.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer x")
	resp, err := s.client(t, true).http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e apiError
	if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal(body, &e) != nil || strings.Contains(e.Error, "wrong") ||
		resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("GET /metrics with a wrong token: %d %s %q", resp.StatusCode, resp.Header, body)
	}

	noCA := &remote{http: &http.Client{Timeout: 5 * time.Second}, auth: &clientAuth{token: "x"}}
	if err := call(noCA, addr); err == nil || !strings.Contains(err.Error(), "serves HTTPS: give the CA") {
		t.Errorf("plain HTTP to HTTPS: %v", err)
	}
	other := newDevSet(t).client(t, true)
	if err := call(other, addr); err == nil || !strings.Contains(err.Error(), "its certificate is not signed by the CA of --tls-ca") {
		t.Errorf("trusting another CA: %v", err)
	}
	if err := call(s.client(t, true), plainAddr); err == nil || !strings.Contains(err.Error(), "serves plain HTTP, not HTTPS") {
		t.Errorf("HTTPS to plain HTTP: %v", err)
	}
	// A remote made without settings (savepoint take --to) takes the
	// environment's.
	t.Setenv(envToken, strings.TrimSpace(readFile(t, s.token)))
	t.Setenv(envTLSCA, s.ca)
	if err := call(&remote{http: &http.Client{}}, addr); err != nil {
		t.Errorf("with the environment's token and CA: %v", err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNodeInProcessSecure: a node run in this process (the race detector
// sees it) with the --dev-certs set serves HTTPS and wants its token.
func TestNodeInProcessSecure(t *testing.T) {
	s := newDevSet(t)
	base := nodeBase(t)
	host, p, _ := net.SplitHostPort(base)
	port, _ := strconv.Atoi(p)
	api := net.JoinHostPort(host, strconv.Itoa(port+3))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan string, 1)
	go func() {
		_, _, stderr := command(ctx, false, append([]string{"node", "--listen", base, "--profile", "ci", "--name", "a"}, s.nodeFlags()...)...)
		done <- stderr
	}()
	good := s.client(t, true)
	good.to = api
	var rep nodesReply
	testenv.WaitFor(t, "the node's API", 30*time.Second, func() bool {
		return good.call(ctx, http.MethodGet, "/v1/nodes", nil, &rep) == nil
	})
	if !strings.HasPrefix(rep.Self, "a-") {
		t.Errorf("the node is %q", rep.Self)
	}
	bad := s.client(t, false)
	bad.to = api
	if err := bad.call(ctx, http.MethodGet, "/v1/jobs", nil, nil); err == nil || !strings.Contains(err.Error(), "requires its token") {
		t.Errorf("without the token: %v", err)
	}
	cancel()
	select {
	case stderr := <-done:
		if !strings.Contains(stderr, "gossip encrypted, data connections over mutual TLS") || !strings.Contains(stderr, "left the cluster") {
			t.Errorf("the node's stderr:\n%s", stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not end within 30 s of its context")
	}
	if nodeAuth.Load() != nil {
		t.Error("the node's client settings outlive it")
	}
}

// TestCommandNodeSecure: real node processes with the --dev-certs set.
// The client commands need the token and the CA; a node without the
// gossip key cannot join (and is never listed); two secured nodes run a
// job spread over both (its data over mutual TLS).
func TestCommandNodeSecure(t *testing.T) {
	skipUnderRace(t)
	code, stdout, stderr := client(t, "node", "--dev-certs", filepath.Join(t.TempDir(), "certs"))
	if code != 0 || !strings.Contains(stdout, "--tls-cert ") || !strings.Contains(stdout, "--gossip-key-file ") {
		t.Fatalf("node --dev-certs: exit %d:\n%s%s", code, stdout, stderr)
	}
	dir := strings.TrimSuffix(strings.Fields(stdout[strings.Index(stdout, "--tls-ca ")+len("--tls-ca "):])[0], "/"+devCA)
	s := devSetIn(dir)
	a := startNode(t, "", append([]string{"--name", "a"}, s.nodeFlags()...)...)
	members := func(n *testNode) map[string]bool {
		r := s.client(t, true)
		r.to = n.http
		var rep nodesReply
		if err := r.call(context.Background(), http.MethodGet, "/v1/nodes", nil, &rep); err != nil {
			return nil
		}
		names := map[string]bool{}
		for _, m := range rep.Members {
			names[strings.SplitN(m.Name, "-", 2)[0]] = m.State == "alive"
		}
		return names
	}
	testenv.WaitFor(t, "node a's API", 30*time.Second, func() bool { return members(a) != nil })

	caFlags := []string{"--tls-ca", s.ca}
	tok := []string{"--token-file", s.token}
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"no token", caFlags, "this node requires its token"},
		{"no CA", tok, "serves HTTPS: give the CA"},
	} {
		code, stdout, stderr := client(t, append([]string{"nodes", "--to", a.http}, tc.flags...)...)
		if code != exitFailed || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("nodes with %s: exit %d, %q %q, want %d with %q", tc.name, code, stdout, stderr, exitFailed, tc.want)
		}
	}
	code, stdout, stderr = client(t, append(append([]string{"nodes", "--to", a.http}, caFlags...), tok...)...)
	if code != 0 || !strings.Contains(stdout, "a-") || !strings.Contains(stdout, "(this node)") {
		t.Fatalf("nodes with the token and the CA: exit %d:\n%s%s", code, stdout, stderr)
	}

	// Without the gossip key (with everything else, so --insecure): the
	// join fails, the node exits, and a never lists it.
	stranger := startNode(t, a.gossip, "--name", "stranger", "--insecure", "--tls-cert", s.cert, "--tls-key", s.key, "--tls-ca", s.ca, "--token-file", s.token)
	if code := stranger.wait(t, 30*time.Second); code != exitFailed || !strings.Contains(stranger.stderr.String(), "refused this node's gossip") {
		t.Errorf("a node without the gossip key: exit %d:\n%s", code, stranger.stderr.String())
	}
	if !strings.Contains(a.stderr.String(), "remote state is not encrypted") {
		t.Errorf("node a does not say it refused plaintext gossip:\n%s", a.stderr.String())
	}

	b := startNode(t, a.gossip, append([]string{"--name", "b"}, s.nodeFlags()...)...)
	testenv.WaitFor(t, "a and b to see each other", 30*time.Second, func() bool {
		ma, mb := members(a), members(b)
		return ma["a"] && ma["b"] && mb["a"] && mb["b"]
	})
	if ma := members(a); len(ma) != 2 {
		t.Errorf("node a lists %v, want a and b alone", ma)
	}
	code, _, stderr = client(t, append(append(append([]string{"submit", "--to", a.http}, caFlags...), tok...),
		"sum-by-key", "--parallelism", "4", "--arg", "rows=200000")...)
	i := strings.Index(stderr, "\nnodes:\n")
	if code != 0 || i < 0 {
		t.Fatalf("submit: exit %d, want 0 with the nodes' section:\n%s", code, stderr)
	}
	section := stderr[i:]
	if j := strings.Index(section[1:], "\n\n"); j >= 0 {
		section = section[:j+1]
	}
	t.Logf("the job's%s", section)
	if !strings.Contains(section, "a-") || !strings.Contains(section, "b-") {
		t.Errorf("the job ran on %q, want both nodes", section)
	}
	if strings.Contains(a.stderr.String()+b.stderr.String(), "refused a data connection") {
		t.Errorf("a data connection was refused:\n%s\n%s", a.stderr.String(), b.stderr.String())
	}
}

// TestNodeOpenWithoutSecurity: a node that would listen beyond loopback
// with no security flags refuses to start, naming the flag and what to
// give; on loopback it starts (with its warning), as the tests' nodes do.
func TestNodeOpenWithoutSecurity(t *testing.T) {
	for _, args := range [][]string{
		{"node", "--listen", "0.0.0.0:7600"},
		{"node", "--listen", "127.0.0.1:7600", "--http", ":7603"},
	} {
		code, _, stderr := command(context.Background(), false, args...)
		if code != exitUsage || !strings.Contains(stderr, "is open to other hosts, and no security flags are given") ||
			!strings.Contains(stderr, "--insecure to mean it") {
			t.Errorf("%q: exit %d:\n%s", args, code, stderr)
		}
	}
}
