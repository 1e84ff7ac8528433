package membership_test

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/membership"
)

// freeAddr returns a loopback address whose TCP port was free a moment
// ago (memberlist takes the same port for UDP).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func start(t *testing.T, name string, slots int, join ...string) *membership.Node {
	t.Helper()
	n, err := membership.Start(config(t, name, slots, join...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown() })
	return n
}

func config(t *testing.T, name string, slots int, join ...string) membership.Config {
	return membership.Config{Name: name, Gossip: freeAddr(t), Join: join, Profile: "ci",
		Meta: membership.Meta{Build: "b1", Slots: slots, HTTP: "127.0.0.1:1"}}
}

// waitFor waits, 30 s at most, until n sees the members' states as want
// (name prefix → state).
func waitFor(t *testing.T, n *membership.Node, want map[string]membership.State) []membership.Member {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ms := n.Members()
		got := map[string]membership.State{}
		for _, m := range ms {
			got[strings.SplitN(m.Name, "-", 2)[0]] = m.State
		}
		ok := len(got) == len(want)
		for k, v := range want {
			ok = ok && got[k] == v
		}
		if ok {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s sees %v, want %v", n.Name(), got, want)
		}
		<-time.After(20 * time.Millisecond) // polling a condition, within the deadline
	}
}

// TestMembership: three nodes join; each sees the others alive with their
// metadata. One stops without a word and the others find it dead; one
// leaves and they see it left.
func TestMembership(t *testing.T) {
	a := start(t, "a", 2)
	b := start(t, "b", 3, a.Members()[0].Gossip)
	c := start(t, "c", 4, a.Members()[0].Gossip)
	watch := a.Watch()
	all := map[string]membership.State{"a": membership.Alive, "b": membership.Alive, "c": membership.Alive}
	for _, n := range []*membership.Node{a, b, c} {
		ms := waitFor(t, n, all)
		for _, m := range ms {
			if m.Meta.Build != "b1" || m.Meta.Slots < 2 || m.Meta.Incarnation == "" || !strings.HasSuffix(m.Name, m.Meta.Incarnation) {
				t.Fatalf("%s sees %+v", n.Name(), m)
			}
		}
	}
	killed := time.Now()
	c.Shutdown()
	waitFor(t, a, map[string]membership.State{"a": membership.Alive, "b": membership.Alive, "c": membership.Dead})
	t.Logf("a found c dead %v after it stopped (profile ci)", time.Since(killed).Round(time.Millisecond))
	if err := b.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a, map[string]membership.State{"a": membership.Alive, "b": membership.Left, "c": membership.Dead})
	var changes []string
	for len(watch) > 0 {
		m := <-watch
		changes = append(changes, strings.SplitN(m.Name, "-", 2)[0]+" "+string(m.State))
	}
	if s := strings.Join(changes, ", "); !strings.Contains(s, "c dead") || !strings.Contains(s, "b left") {
		t.Fatalf("a watched %q, want c dead and b left among them", s)
	}
}

func TestStartErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  membership.Config
		want string
	}{
		{membership.Config{Gossip: "127.0.0.1:0", Profile: "fast"}, `profile "fast": want one of local, lan, wan, ci`},
		{membership.Config{Gossip: ":7946"}, "no host"},
		{membership.Config{Gossip: "127.0.0.1:0", Meta: membership.Meta{Build: strings.Repeat("x", 600)}}, "over memberlist's 512"},
		{membership.Config{Gossip: "127.0.0.1:0", Join: []string{freeAddr(t)}}, "joining"},
		{membership.Config{Gossip: "127.0.0.1:0", Keys: [][]byte{make([]byte, 16), make([]byte, 7)}}, "gossip key 2 of 2 is 7 bytes: want 16, 24 or 32"},
	} {
		n, err := membership.Start(tc.cfg)
		if err == nil {
			n.Shutdown()
			t.Errorf("%+v: no error, want %q", tc.cfg, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestGossipKeys: nodes holding the cluster's gossip key join it (one
// holding a second key too, as during a rotation); a node without a key,
// or with another, cannot: its Start fails naming why, and the keyed
// members never list it.
func TestGossipKeys(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	keyed := func(name string, keys [][]byte, join ...string) membership.Config {
		cfg := config(t, name, 1, join...)
		cfg.Keys = keys
		return cfg
	}
	a, err := membership.Start(keyed("a", [][]byte{k1}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Shutdown() })
	gossip := a.Members()[0].Gossip
	for _, tc := range []struct {
		name string
		keys [][]byte
		want string
	}{
		{"plain", nil, "this node has no gossip key"},
		{"other", [][]byte{k2}, "the cluster holds none of its keys"},
	} {
		n, err := membership.Start(keyed(tc.name, tc.keys, gossip))
		if err == nil {
			n.Shutdown()
			t.Fatalf("a node with keys %d joined a keyed cluster", len(tc.keys))
		}
		if !errors.Is(err, membership.ErrJoinRefused) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), gossip) {
			t.Errorf("node %s: %v, want ErrJoinRefused with %q and the address", tc.name, err, tc.want)
		}
		t.Logf("node %s: %v", tc.name, err)
	}
	b, err := membership.Start(keyed("b", [][]byte{k1, k2}, gossip))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Shutdown() })
	both := map[string]membership.State{"a": membership.Alive, "b": membership.Alive}
	waitFor(t, a, both) // exactly a and b: neither refused node is listed
	waitFor(t, b, both)
}
