package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/core"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// config returns a node's TLS config: a certificate for 127.0.0.1 that
// ca signed, trusting trust (ca's own if nil).
func (ca *testCA) config(t *testing.T, trust *testCA) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	if trust == nil {
		trust = ca
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		RootCAs: trust.pool, ClientCAs: trust.pool}
}

func tlsTestConfig(node string, deliver func(*Conn, Envelope), tc *tls.Config) Config {
	c := testConfig(node, deliver)
	c.TLS = tc
	return c
}

// TestTLSDeliversAndClosesCleanly: over mutual TLS, messages go both ways
// and a Close is the clean goodbye it is in plaintext.
func TestTLSDeliversAndClosesCleanly(t *testing.T) {
	ca := newTestCA(t, "cluster")
	const n = 200
	inA, inB := newInbox(n), newInbox(n)
	a, b := pair(t, tlsTestConfig("a", inA.deliver, ca.config(t, nil)), tlsTestConfig("b", inB.deliver, ca.config(t, nil)))
	if a.Peer() != "b" || b.Peer() != "a" {
		t.Fatalf("peers %q and %q", a.Peer(), b.Peer())
	}
	for i := range n {
		for _, c := range []*Conn{a, b} {
			if err := c.Send(Envelope{To: core.Addr{Vertex: 1}, Msg: core.Msg{Kind: core.Watermark, Time: int64(i)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, inA.full, "a to receive b's messages")
	waitFor(t, inB.full, "b to receive a's messages")
	for i, e := range inB.messages() {
		if e.Msg.Time != int64(i) {
			t.Fatalf("message %d: %s", i, e.Msg)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatalf("a.Close: %v", err)
	}
	waitFor(t, b.Done(), "b to see a close")
	if err := b.Err(); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("b: %v, want the peer's clean close", err)
	}
}

// TestTLSRefusesAndGoesOn: a TLS listener refuses a plaintext peer and
// peers whose certificates another CA signed (or that trust another CA),
// each side with an error naming the other's address, and goes on
// accepting; a TLS dialer refuses a plaintext listener.
func TestTLSRefusesAndGoesOn(t *testing.T) {
	ca, other := newTestCA(t, "cluster"), newTestCA(t, "another")
	in := newInbox(1)
	l, err := Listen("127.0.0.1:0", tlsTestConfig("b", in.deliver, ca.config(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	accept := func() <-chan error {
		errc := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if c != nil {
				c.Abort()
			}
			errc <- err
		}()
		return errc
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	for _, tc := range []struct {
		name     string
		tls      *tls.Config
		dialWant string // in the dialer's error
		lnWant   string // in the listener's
	}{
		{"plaintext", nil, "it may require TLS", "the peer does not speak TLS"},
		{"a certificate of another CA", other.config(t, ca), "the peer requires a certificate signed by its CA", "the peer gave no certificate signed by this node's CA"},
		{"trusting another CA", ca.config(t, other), "the peer's certificate is signed by a CA this node does not trust", "the peer refused this node's certificate"},
	} {
		errc := accept()
		c, err := Dial(ctx, addr, tlsTestConfig("a", nil, tc.tls))
		if c != nil {
			c.Abort()
			t.Fatalf("%s: dialled", tc.name)
		}
		lerr := <-errc
		t.Logf("%s:\n  dialer: %v\n  listener: %v", tc.name, err, lerr)
		if !errors.Is(err, ErrHandshake) || (tc.tls != nil && !errors.Is(err, ErrTLS)) || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), tc.dialWant) {
			t.Errorf("%s: the dialer's error %v, want a handshake error naming %s with %q", tc.name, err, addr, tc.dialWant)
		}
		if !errors.Is(lerr, ErrTLS) || !errors.Is(lerr, ErrHandshake) || !strings.Contains(lerr.Error(), "127.0.0.1:") ||
			!strings.Contains(lerr.Error(), tc.lnWant) {
			t.Errorf("%s: the listener's error %v, want a TLS error naming the peer with %q", tc.name, lerr, tc.lnWant)
		}
	}

	// The listener goes on: a peer with a certificate of the cluster's CA
	// is accepted.
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	a, err := Dial(ctx, addr, tlsTestConfig("a", nil, ca.config(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Abort()
	b := <-accepted
	if b == nil {
		t.FailNow()
	}
	defer b.Abort()
	if err := a.Send(Envelope{Msg: core.Msg{Kind: core.Idle}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, in.full, "a message after the refused peers")

	// A TLS dialer refuses a plaintext listener.
	plain, err := Listen("127.0.0.1:0", testConfig("p", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go func() {
		if c, _ := plain.Accept(); c != nil {
			c.Abort()
		}
	}()
	_, err = Dial(ctx, plain.Addr().String(), tlsTestConfig("a", nil, ca.config(t, nil)))
	t.Logf("TLS to a plaintext listener: %v", err)
	if !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), plain.Addr().String()) || !strings.Contains(err.Error(), "does not speak TLS") {
		t.Errorf("TLS to a plaintext listener: %v, want a TLS error naming it", err)
	}
}

func TestTLSConfigNeedsACertificate(t *testing.T) {
	err := tlsTestConfig("a", nil, &tls.Config{}).Validate()
	if err == nil || !strings.Contains(err.Error(), "Config.TLS has no certificate") {
		t.Fatalf("Validate: %v", err)
	}
}
