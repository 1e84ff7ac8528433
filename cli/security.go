package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A node's security, and its clients':
//
//   - gossip: encrypted with the keys of --gossip-key-file (or
//     SLUICE_GOSSIP_KEY), memberlist's keyring: a node without the key
//     cannot join;
//   - data connections: mutual TLS, each node presenting --tls-cert and
//     verifying the other's against --tls-ca;
//   - the HTTP API: HTTPS with --tls-cert, and every request must carry
//     the token of --token-file (or SLUICE_TOKEN) as "Authorization:
//     Bearer TOKEN"; the client commands and the nodes' calls to each
//     other send it and trust --tls-ca (or SLUICE_TLS_CA).
//
// Either all three are given, or --insecure, which runs what is not given
// in plaintext and says so at start. A node given none of them runs in
// plaintext too (as before these flags existed), and says that it does.
const securityDoc = `Security: --tls-cert, --tls-key and --tls-ca (PEM files) make the data
connections between nodes mutual TLS and the HTTP API HTTPS;
--gossip-key-file (or SLUICE_GOSSIP_KEY) encrypts the gossip, so that a
node without the key cannot join; --token-file (or SLUICE_TOKEN) makes
every HTTP request carry "Authorization: Bearer TOKEN" (the client
commands take --token-file and --tls-ca, or SLUICE_TOKEN and
SLUICE_TLS_CA). Give all of them, or --insecure to run what is left out in
plaintext. 'sluice node --dev-certs DIR' writes a set for local use and
prints the flags.`

// The environment variables of the security settings.
const (
	envToken     = "SLUICE_TOKEN"
	envTLSCA     = "SLUICE_TLS_CA"
	envGossipKey = "SLUICE_GOSSIP_KEY"
)

// nodeSecurity is what a node's flags and environment make of its
// security.
type nodeSecurity struct {
	keys   [][]byte    // gossip keys, the first the primary; none: plaintext gossip
	data   *tls.Config // data connections' mutual TLS; nil: plaintext
	api    *tls.Config // the HTTP API's; nil: plain HTTP
	token  string      // what every HTTP request must carry; "": nothing
	client *clientAuth // how the node calls its peers' APIs
}

// loadNodeSecurity reads the files the flags name (and the environment's
// settings) and checks them, reporting every problem at once. insecure
// lets some of gossip, TLS and the token be left out.
func loadNodeSecurity(gossipKeyFile, cert, key, ca, tokenFile string, insecure bool, getenv func(string) string) (*nodeSecurity, error) {
	s := &nodeSecurity{client: &clientAuth{}}
	var errs []error
	var err error
	switch {
	case gossipKeyFile != "":
		s.keys, err = readGossipKeys(gossipKeyFile)
	case getenv(envGossipKey) != "":
		s.keys, err = parseGossipKeys(envGossipKey, getenv(envGossipKey))
	}
	errs = append(errs, err)
	switch given := btoi(cert != "") + btoi(key != "") + btoi(ca != ""); {
	case given == 3:
		s.data, s.api, s.client.ca, err = loadTLS(cert, key, ca)
		errs = append(errs, err)
	case given > 0:
		errs = append(errs, errors.New("--tls-cert, --tls-key and --tls-ca go together: the node's certificate, its key, and the CA that signed every node's"))
	}
	switch {
	case tokenFile != "":
		s.token, err = readToken(tokenFile)
		errs = append(errs, err)
	case getenv(envToken) != "":
		s.token = strings.TrimSpace(getenv(envToken))
	}
	s.client.token = s.token
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if missing := s.missing(); !insecure && len(missing) > 0 && len(missing) < 3 {
		return nil, fmt.Errorf("no %s: a node secures gossip, data and its API or says --insecure for what it leaves in plaintext "+
			"('sluice node --dev-certs DIR' writes a set for local use)", strings.Join(missing, ", no "))
	}
	return s, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// missing names the settings left out.
func (s *nodeSecurity) missing() []string {
	var m []string
	if len(s.keys) == 0 {
		m = append(m, "--gossip-key-file")
	}
	if s.data == nil {
		m = append(m, "--tls-cert")
	}
	if s.token == "" {
		m = append(m, "--token-file")
	}
	return m
}

// note returns what node name says at start of its security, and
// whether it is a warning: which parts are plaintext or unauthenticated,
// or that all is secured.
func (s *nodeSecurity) note(name string, insecure bool) (string, bool) {
	var what []string
	switch missing := s.missing(); {
	case len(missing) == 0:
		return fmt.Sprintf("node %s: gossip encrypted, data connections over mutual TLS, the HTTP API over HTTPS with a token", name), false
	case len(missing) == 3:
		what = []string{"gossip, data and the HTTP API are plaintext and unauthenticated"}
	default:
		if len(s.keys) == 0 {
			what = append(what, "gossip is plaintext")
		}
		if s.data == nil {
			what = append(what, "data and the HTTP API are plaintext")
			if s.token != "" {
				what[len(what)-1] += " (the token crosses the network in the clear)"
			}
		}
		if s.token == "" {
			what = append(what, "the HTTP API is unauthenticated")
		}
	}
	if insecure {
		return fmt.Sprintf("node %s: --insecure: %s", name, strings.Join(what, "; ")), true
	}
	return fmt.Sprintf("node %s: no security flags: %s (see 'sluice help node'; --insecure says this is meant)", name, strings.Join(what, "; ")), true
}

// readGossipKeys reads a gossip key file: one base64 key a line (16, 24
// or 32 bytes), the first the primary; blank lines and lines that start
// with '#' are skipped.
func readGossipKeys(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--gossip-key-file: %w", err)
	}
	return parseGossipKeys(path, string(b))
}

// parseGossipKeys parses the keys of text (a file's or the environment's,
// named src in errors): one base64 key a line (or, in one line, separated
// by commas).
func parseGossipKeys(src, text string) ([][]byte, error) {
	var keys [][]byte
	var errs []error
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, field := range strings.Split(line, ",") {
			field = strings.TrimSpace(field)
			k, err := base64.StdEncoding.DecodeString(field)
			if err != nil {
				k, err = base64.RawStdEncoding.DecodeString(field)
			}
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("gossip key in %s, line %d: not base64: %w", src, i+1, err))
			case len(k) != 16 && len(k) != 24 && len(k) != 32:
				errs = append(errs, fmt.Errorf("gossip key in %s, line %d: %d bytes, want 16, 24 or 32 (AES-128, -192, -256)", src, i+1, len(k)))
			default:
				keys = append(keys, k)
			}
		}
	}
	if len(errs) == 0 && len(keys) == 0 {
		errs = append(errs, fmt.Errorf("%s holds no gossip key: want one base64 key a line", src))
	}
	return keys, errors.Join(errs...)
}

// readToken reads a token file: the token, surrounding white space
// trimmed.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--token-file %s is empty", path)
	}
	return tok, nil
}

// readCA reads a file of PEM certificates into a pool.
func readCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// loadTLS reads the node's certificate, its key and the CA, and checks
// that the CA signed the certificate for both ends of a connection. It
// returns the data connections' config (mutual TLS: the certificate
// presented both ways, peers verified against the CA), the HTTP API's
// (server side) and the CA's pool, which the node's calls to its peers
// trust.
func loadTLS(certFile, keyFile, caFile string) (data, api *tls.Config, pool *x509.CertPool, err error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", certFile, keyFile, err)
	}
	if pool, err = readCA(caFile); err != nil {
		return nil, nil, nil, fmt.Errorf("--tls-ca: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--tls-cert %s: %w", certFile, err)
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return nil, nil, nil, fmt.Errorf("--tls-cert %s does not verify against --tls-ca %s for %s: %w",
				certFile, caFile, map[x509.ExtKeyUsage]string{x509.ExtKeyUsageServerAuth: "a server", x509.ExtKeyUsageClientAuth: "a client"}[usage], err)
		}
	}
	data = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	api = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return data, api, pool, nil
}

// requireToken returns h, refusing with 401 every request that does not
// carry "Authorization: Bearer TOKEN"; token "" lets all through. The
// comparison takes the same time whatever the token given, and the reply
// never says what was wrong with it.
func requireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(given))
		if subtle.ConstantTimeCompare(got[:], want[:])&btoi(bearer) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			writeJSON(w, http.StatusUnauthorized, apiError{"this node requires its token: send \"Authorization: Bearer TOKEN\" " +
				"(the client commands take --token-file FILE or " + envToken + ")"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// clientAuth is what a client of a node's API sends and trusts.
type clientAuth struct {
	token string         // sent as "Authorization: Bearer TOKEN"; "": none
	ca    *x509.CertPool // the CA the node's certificate is signed by: HTTPS; nil: plain HTTP

	once      sync.Once
	transport *http.Transport // trusting ca, shared by the clients httpClient makes
}

// clientAuthFrom returns a client's settings from its flags, else the
// environment.
func clientAuthFrom(tokenFile, caFile string, getenv func(string) string) (*clientAuth, error) {
	a := &clientAuth{}
	var errs []error
	switch {
	case tokenFile != "":
		var err error
		a.token, err = readToken(tokenFile)
		errs = append(errs, err)
	case getenv(envToken) != "":
		a.token = strings.TrimSpace(getenv(envToken))
	}
	flag := "--tls-ca"
	if caFile == "" {
		caFile, flag = getenv(envTLSCA), envTLSCA
	}
	if caFile != "" {
		var err error
		if a.ca, err = readCA(caFile); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", flag, err))
		}
	}
	return a, errors.Join(errs...)
}

// httpClient returns a client of the API, trusting a.ca, its requests cut
// off after timeout (0: none).
func (a *clientAuth) httpClient(timeout time.Duration) *http.Client {
	c := &http.Client{Timeout: timeout}
	if a.ca != nil {
		// One transport for all: its connections are kept and reused, as
		// http.DefaultTransport's are.
		a.once.Do(func() {
			a.transport = http.DefaultTransport.(*http.Transport).Clone()
			a.transport.TLSClientConfig = &tls.Config{RootCAs: a.ca, MinVersion: tls.VersionTLS12}
		})
		c.Transport = a.transport
	}
	return c
}

// nodeAuth is how the node of this process calls its peers' APIs (peer,
// in failover.go): its token and CA, set by 'node' while it runs. A
// process runs one node; nil: plain HTTP, no token.
var nodeAuth atomic.Pointer[clientAuth]

// peerAuth returns nodeAuth's settings, or none.
func peerAuth() *clientAuth {
	if a := nodeAuth.Load(); a != nil {
		return a
	}
	return &clientAuth{}
}

// The files --dev-certs writes.
const (
	devCA        = "ca.pem"
	devCert      = "node.pem"
	devKey       = "node-key.pem"
	devToken     = "token"
	devGossipKey = "gossip-key"
)

// devCertValidity is how long --dev-certs' certificates are valid.
const devCertValidity = 30 * 24 * time.Hour

// writeDevCerts writes into dir (made if need be; its files must not
// exist) a self-signed CA, a certificate for 127.0.0.1, ::1 and localhost
// that it signed (ECDSA P-256, for servers and clients both) and its key,
// a random token and a random gossip key (AES-256), and returns the
// directory's absolute path.
func writeDevCerts(dir string, now time.Time) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", err
	}
	names := []string{devCA, devCert, devKey, devToken, devGossipKey}
	for _, name := range names {
		if _, err := os.Lstat(filepath.Join(abs, name)); err == nil {
			return "", fmt.Errorf("%s exists: --dev-certs writes a new set, and never over one (give another directory)", filepath.Join(abs, name))
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	nodeKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		return n
	}
	notBefore, notAfter := now.Add(-5*time.Minute), now.Add(devCertValidity)
	caTmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "sluice development CA"},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", err
	}
	nodeTmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "sluice node"},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, DNSNames: []string{"localhost"}}
	nodeDER, err := x509.CreateCertificate(rand.Reader, nodeTmpl, caCert, &nodeKey.PublicKey, caKey)
	if err != nil {
		return "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(nodeKey)
	if err != nil {
		return "", err
	}
	var token, gossip [32]byte
	if _, err := rand.Read(token[:]); err != nil {
		return "", err
	}
	if _, err := rand.Read(gossip[:]); err != nil {
		return "", err
	}
	files := []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{devCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644},
		{devCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: nodeDER}), 0o644},
		{devKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{devToken, []byte(base64.RawURLEncoding.EncodeToString(token[:]) + "\n"), 0o600},
		{devGossipKey, []byte(base64.StdEncoding.EncodeToString(gossip[:]) + "\n"), 0o600},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(abs, f.name), f.data, f.perm); err != nil {
			return "", err
		}
	}
	return abs, nil
}

// devCerts runs 'node --dev-certs DIR'.
func (c *invocation) devCerts(dir string) int {
	abs, err := writeDevCerts(dir, time.Now())
	if err != nil {
		c.errorf("node: --dev-certs: %v", err)
		return exitFailed
	}
	p := func(name string) string { return filepath.Join(abs, name) }
	fmt.Fprintf(c.stdout, `Wrote a development CA (%s), a certificate for 127.0.0.1, ::1 and localhost that
it signed (%s, key %s; valid %d days), a token (%s) and a gossip key (%s).
For local use: every node on this machine takes the same files. Start nodes with
  %s node --tls-cert %s --tls-key %s --tls-ca %s --token-file %s --gossip-key-file %s [flags]
and talk to them with
  %s nodes --to HOST:PORT --tls-ca %s --token-file %s
(or set %s=%s and %s=$(cat %s)).
`, p(devCA), p(devCert), p(devKey), devCertValidity/(24*time.Hour), p(devToken), p(devGossipKey),
		c.name, p(devCert), p(devKey), p(devCA), p(devToken), p(devGossipKey),
		c.name, p(devCA), p(devToken), envTLSCA, p(devCA), envToken, p(devToken))
	return exitOK
}

// warnWriter writes each line written to it as a warning of c's, after
// prefix: for a log.Logger of the standard library's (http.Server's).
type warnWriter struct {
	c      *invocation
	prefix string
}

func (w warnWriter) Write(p []byte) (int, error) {
	w.c.warnf("%s%s", w.prefix, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
