// Package membership is the cluster's membership and failure detection:
// hashicorp/memberlist's gossip (SWIM), with named timing profiles, each
// node's metadata (build, slots, addresses, incarnation) and the members'
// states as this node sees them.
//
// Every start of a node is a new member: its name carries a fresh
// incarnation, since memberlist does not let a node that left come back
// under the same name. Events come from memberlist's goroutines; this
// package records them under its own lock and never calls back into
// memberlist from them (Members inside an event callback deadlocks).
//
// With Config.Keys the gossip is encrypted and authenticated (memberlist's
// keyring): a node without the cluster's key cannot join it.
package membership

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// MaxMeta is memberlist's limit on a node's metadata (it panics past it).
const MaxMeta = memberlist.MetaMaxSize

// Meta is what a node tells the others about itself.
type Meta struct {
	// Build identifies the binary: nodes of different builds do not run
	// tasks of one job together.
	Build string `json:"build"`
	// Slots is how many task instances the node runs at once.
	Slots int `json:"slots"`
	// Control, Data and HTTP are the node's addresses (host:port): actor
	// messages, data connections and the API for clients.
	Control string `json:"control,omitempty"`
	Data    string `json:"data,omitempty"`
	HTTP    string `json:"http,omitempty"`
	// Incarnation tells this start of the node from earlier ones at the
	// same addresses.
	Incarnation string `json:"incarnation"`
	// Leaving: the node is leaving on purpose (Leave). memberlist's leave
	// event does not say whether a node left or failed, so a node says it
	// first.
	Leaving bool `json:"leaving,omitempty"`
	// Draining: the node takes no new tasks and its jobs' coordinators
	// move its tasks to other nodes (a graceful leave, before Leave).
	Draining bool `json:"draining,omitempty"`
}

// encode returns m as memberlist carries it, or an error past MaxMeta.
func (m Meta) encode() ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMeta {
		return nil, fmt.Errorf("membership: the node's metadata is %d bytes, over memberlist's %d", len(b), MaxMeta)
	}
	return b, nil
}

// State is a member's state as this node sees it.
type State string

const (
	Alive State = "alive"
	Dead  State = "dead" // failed: crashed, frozen or cut off
	Left  State = "left" // left on purpose
)

// Member is a node of the cluster.
type Member struct {
	Name   string `json:"name"`
	Gossip string `json:"gossip"` // host:port
	State  State  `json:"state"`
	Meta   Meta   `json:"meta"`
	// Since is when this node saw the member reach its state.
	Since time.Time `json:"since"`
}

// Profiles names the timing profiles Config accepts.
var Profiles = []string{"local", "lan", "wan", "ci"}

// profile returns memberlist's configuration for a profile:
//
//   - local: one machine, tuned to detect a crash in about 0.4 s
//     (probes every 100 ms, suspicion multiplier 2; DESIGN.md §2);
//   - lan, wan: memberlist's own (a crash in about 6 s on a LAN);
//   - ci: one machine under the race detector on two busy cores, where
//     the local profile's 50 ms probe timeout declares live nodes dead:
//     probes every 250 ms with a 1 s timeout, suspicion multiplier 4 (a
//     crash in about 2–3 s).
func profile(name string) (*memberlist.Config, error) {
	switch name {
	case "local", "":
		c := memberlist.DefaultLocalConfig()
		c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult = 100*time.Millisecond, 50*time.Millisecond, 2
		c.GossipInterval = 50 * time.Millisecond
		return c, nil
	case "lan":
		return memberlist.DefaultLANConfig(), nil
	case "wan":
		return memberlist.DefaultWANConfig(), nil
	case "ci":
		c := memberlist.DefaultLocalConfig()
		c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult = 250*time.Millisecond, time.Second, 4
		c.GossipInterval = 100 * time.Millisecond
		return c, nil
	}
	return nil, fmt.Errorf("membership: profile %q: want one of %s", name, strings.Join(Profiles, ", "))
}

// Config configures a node's membership.
type Config struct {
	// Name is the node's name; a suffix of Meta.Incarnation makes it
	// unique to this start. Empty: the gossip address.
	Name string
	// Gossip is the address memberlist listens on, TCP and UDP
	// (host:port); the others reach the node there.
	Gossip string
	// Join lists gossip addresses of nodes to join; none starts a new
	// cluster.
	Join []string
	// Profile is a timing profile (Profiles).
	Profile string
	Meta    Meta
	Logger  *slog.Logger
	// Now reads the clock for Member.Since (time.Now if nil).
	Now func() time.Time
	// Keys, if any, encrypt and authenticate the gossip (AES-GCM, each key
	// 16, 24 or 32 bytes: AES-128, -192 or -256): the first encrypts what
	// this node sends, any of them decrypts what it receives, so a key is
	// rotated by adding the new one second on every node, then first,
	// then removing the old. A node with keys neither reads nor answers
	// plaintext gossip, nor gossip under keys it does not hold: a node
	// without the cluster's key cannot join it (Start fails) and the
	// members never list it. None: plaintext gossip, which anyone who can
	// reach the gossip port can join.
	Keys [][]byte
}

// ErrJoinRefused is wrapped by Start's error when the nodes to join answer
// but the gossip fails, as it does when the two sides hold different keys
// (or one side none); the error says which side has keys.
var ErrJoinRefused = errors.New("membership: the nodes to join refused this node's gossip")

// keyring returns memberlist's keyring of keys, or nil for none.
func keyring(keys [][]byte) (*memberlist.Keyring, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	var errs []error
	for i, k := range keys {
		if err := memberlist.ValidateKey(k); err != nil {
			errs = append(errs, fmt.Errorf("membership: gossip key %d of %d is %d bytes: want 16, 24 or 32 (AES-128, -192, -256)", i+1, len(keys), len(k)))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return memberlist.NewKeyring(keys[1:], keys[0])
}

// Node is this process's membership.
type Node struct {
	ml   *memberlist.Memberlist
	name string
	meta []byte
	now  func() time.Time
	log  *slog.Logger

	mu sync.Mutex
	// seen holds every member this node has heard of, with its latest
	// state from memberlist's events.
	seen map[string]Member
	subs []chan Member
}

// NewIncarnation returns a fresh incarnation.
func NewIncarnation() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Start joins the cluster (or starts one). It fails if it cannot listen,
// or if Join names nodes and none of them answers, or all of them refuse
// this node's gossip (ErrJoinRefused: another gossip key, or none).
func Start(cfg Config) (*Node, error) {
	mc, err := profile(cfg.Profile)
	if err != nil {
		return nil, err
	}
	host, port, err := splitHostPort(cfg.Gossip)
	if err != nil {
		return nil, fmt.Errorf("membership: gossip address: %w", err)
	}
	ring, err := keyring(cfg.Keys)
	if err != nil {
		return nil, err
	}
	if cfg.Meta.Incarnation == "" {
		cfg.Meta.Incarnation = NewIncarnation()
	}
	meta, err := cfg.Meta.encode()
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	name := cfg.Name
	if name == "" {
		name = cfg.Gossip
	}
	n := &Node{name: name + "-" + cfg.Meta.Incarnation, meta: meta, now: cfg.Now, log: cfg.Logger, seen: map[string]Member{}}
	mc.Name = n.name
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	mc.Delegate = delegate{n}
	mc.Events = events{n}
	mc.Logger = log.New(&logWriter{log: cfg.Logger}, "", 0)
	if ring != nil {
		mc.Keyring = ring
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	if n.ml, err = memberlist.Create(mc); err != nil {
		return nil, fmt.Errorf("membership: listening for gossip on %s: %w", cfg.Gossip, err)
	}
	if len(cfg.Join) > 0 {
		if _, err := n.ml.Join(cfg.Join); err != nil {
			_ = n.ml.Shutdown()
			return nil, joinError(cfg.Join, len(cfg.Keys) > 0, err)
		}
	}
	return n, nil
}

// joinError is Start's error when memberlist's Join failed with err: one
// wrapping ErrJoinRefused when a node answered and the gossip failed
// (not when nothing listened), since that is what a node of another key,
// or of none, sees.
func joinError(join []string, keyed bool, err error) error {
	// memberlist's error is a multierror of one line per address, in a
	// list over several lines: one line here.
	msg := err.Error()
	if m, ok := err.(interface{ WrappedErrors() []error }); ok {
		var lines []string
		for _, e := range m.WrappedErrors() {
			lines = append(lines, e.Error())
		}
		msg = strings.Join(lines, "; ")
	}
	if strings.Contains(msg, "connection refused") || strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "no such host") {
		return fmt.Errorf("membership: joining %s: %s", strings.Join(join, ","), msg)
	}
	why := "this node has no gossip key: if the cluster's gossip is encrypted, give this node its key"
	if keyed {
		why = "this node's gossip is encrypted: the cluster holds none of its keys, or runs without encryption"
	}
	return fmt.Errorf("%w (%s): joining %s: %s", ErrJoinRefused, why, strings.Join(join, ","), msg)
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", addr)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q: no host (give one the others can reach, such as 127.0.0.1)", addr)
	}
	return host, port, nil
}

// Name returns the node's name in the cluster.
func (n *Node) Name() string { return n.name }

// Members returns every member this node has heard of, itself included,
// sorted by name, in the state memberlist's events last gave it: alive,
// dead or left. (memberlist's own Members hands out its records, which its
// goroutines go on writing, a data race; and a member suspected but not
// yet dead shows as alive.)
func (n *Node) Members() []Member {
	n.mu.Lock()
	ms := make([]Member, 0, len(n.seen))
	for _, m := range n.seen {
		ms = append(ms, m)
	}
	n.mu.Unlock()
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return ms
}

// Watch returns a channel of the members' changes of state, as memberlist
// reports them (joined: alive; failed: dead; left). A receiver that falls
// behind by more than 64 changes misses changes, not the latest states:
// Members has them.
func (n *Node) Watch() <-chan Member {
	c := make(chan Member, 64)
	n.mu.Lock()
	n.subs = append(n.subs, c)
	n.mu.Unlock()
	return c
}

// Drain tells the others, waiting up to timeout for that to spread, that
// this node is about to leave (Meta.Draining): they place no new tasks on
// it and move those it has.
func (n *Node) Drain(timeout time.Duration) error {
	return n.updateMeta(timeout, func(m *Meta) { m.Draining = true })
}

// updateMeta changes this node's metadata and gossips it, waiting up to
// timeout for that to spread.
func (n *Node) updateMeta(timeout time.Duration, change func(*Meta)) error {
	n.mu.Lock()
	cur := n.meta
	n.mu.Unlock()
	var m Meta
	if err := json.Unmarshal(cur, &m); err != nil {
		return err
	}
	change(&m)
	b, err := m.encode()
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.meta = b
	n.mu.Unlock()
	return n.ml.UpdateNode(timeout)
}

// Leave tells the others this node is going (they see it as left, not
// dead), waiting up to timeout for that to spread, and stops gossiping.
func (n *Node) Leave(timeout time.Duration) error {
	err := n.updateMeta(timeout, func(m *Meta) { m.Leaving = true })
	err = errors.Join(err, n.ml.Leave(timeout))
	return errors.Join(err, n.ml.Shutdown())
}

// Shutdown stops gossiping without telling the others, who will find this
// node dead.
func (n *Node) Shutdown() error { return n.ml.Shutdown() }

func member(ln *memberlist.Node) Member {
	m := Member{Name: ln.Name, Gossip: net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))}
	switch ln.State {
	case memberlist.StateAlive:
		m.State = Alive
	case memberlist.StateSuspect:
		m.State = Alive // until it is found dead
	case memberlist.StateDead:
		m.State = Dead
	case memberlist.StateLeft:
		m.State = Left
	}
	_ = json.Unmarshal(ln.Meta, &m.Meta) // a foreign node's: left empty
	return m
}

// record notes a member's new state and tells the watchers.
func (n *Node) record(ln *memberlist.Node, state State) {
	m := member(ln)
	if state != "" {
		m.State = state
	}
	m.Since = n.now()
	n.mu.Lock()
	if old, ok := n.seen[m.Name]; ok && old.State == m.State {
		m.Since = old.Since // an update of its metadata, not of its state
	}
	n.seen[m.Name] = m
	subs := n.subs
	n.mu.Unlock()
	n.log.Info("member", "name", m.Name, "state", string(m.State), "gossip", m.Gossip)
	for _, c := range subs {
		select {
		case c <- m:
		default:
		}
	}
}

// events receives memberlist's membership events.
type events struct{ n *Node }

func (e events) NotifyJoin(ln *memberlist.Node)   { e.n.record(ln, Alive) }
func (e events) NotifyUpdate(ln *memberlist.Node) { e.n.record(ln, "") }

// NotifyLeave: memberlist passes the node with the state it had before
// (its own record of dead or left is not on it), so a node that said it
// was leaving (Meta.Leaving) left, and any other failed.
func (e events) NotifyLeave(ln *memberlist.Node) {
	if member(ln).Meta.Leaving {
		e.n.record(ln, Left)
		return
	}
	e.n.record(ln, Dead)
}

// delegate gives memberlist the node's metadata; it carries no messages
// of its own.
type delegate struct{ n *Node }

func (d delegate) NodeMeta(limit int) []byte {
	d.n.mu.Lock()
	defer d.n.mu.Unlock()
	if len(d.n.meta) > limit {
		return nil // encode checked MaxMeta; a smaller limit is memberlist's
	}
	return d.n.meta
}
func (delegate) NotifyMsg([]byte)                {}
func (delegate) GetBroadcasts(int, int) [][]byte { return nil }
func (delegate) LocalState(bool) []byte          { return nil }
func (delegate) MergeRemoteState([]byte, bool)   {}

// logWriter carries memberlist's log lines ("[WARN] memberlist: ...")
// into the node's logger at their levels.
type logWriter struct {
	log *slog.Logger
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

func (w *logWriter) line(s string) {
	level := slog.LevelDebug
	for _, l := range []struct {
		tag   string
		level slog.Level
	}{{"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError}, {"[WARN]", slog.LevelWarn}, {"[INFO]", slog.LevelInfo}} {
		if rest, ok := strings.CutPrefix(s, l.tag); ok {
			level, s = l.level, strings.TrimSpace(rest)
			break
		}
	}
	s = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(s, "[DEBUG]"), " memberlist:"))
	w.log.Log(context.Background(), level, "memberlist: "+strings.TrimPrefix(s, "memberlist: "))
}

var _ io.Writer = (*logWriter)(nil)
