package cli

import (
	"crypto/sha256"
	bin "encoding/binary"
	"encoding/hex"
	"flag"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice/membership"
)

var (
	fuzzFor  = flag.Duration("fuzz.node", 4*time.Second, "TestCommandNodeFuzzed: how long to feed the node's listeners")
	fuzzSeed = flag.Uint64("fuzz.seed", 0, "TestCommandNodeFuzzed: the seed (0: from the clock)")
)

// hello returns a data connection's opening frame (transport's format,
// version 1) from a node of build.
func hello(node, build string) []byte {
	b := []byte{0, 0, 0, 0, 0x80}
	b = append(b, "SLDP"...)
	b = bin.AppendUvarint(b, 1)
	b = bin.AppendUvarint(b, uint64(len(node)))
	b = append(b, node...)
	b = bin.AppendUvarint(b, uint64(len(build)))
	b = append(b, build...)
	bin.LittleEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// frameOf returns a frame of type typ with body.
func frameOf(typ byte, body []byte) []byte {
	b := bin.LittleEndian.AppendUint32(nil, uint32(1+len(body)))
	return append(append(b, typ), body...)
}

// TestCommandNodeFuzzed: a real node's four listeners (gossip over TCP
// and UDP, data, HTTP) are fed random bytes, truncated frames, oversized
// lengths, a hello of a foreign build and, after a hello of its own
// build, frames of every type with random bodies and unknown types. The
// node stays up, says what it refused, and then runs a job spread over it
// and a second node with the output of one process. The seed and the
// inputs tried are logged; -fuzz.node sets how long.
func TestCommandNodeFuzzed(t *testing.T) {
	skipUnderRace(t)
	a := startNode(t, "")
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive})
	b := startNode(t, a.gossip)
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive, b: membership.Alive})
	exe, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(exe)
	build := hex.EncodeToString(sum[:])[:16]
	host, _, _ := net.SplitHostPort(a.base)
	data := net.JoinHostPort(host, portPlus(t, a.base, 2))

	seed := *fuzzSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (the inputs are drawn from it; -fuzz.seed replays)", seed)
	const senders = 8
	var tried atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(*fuzzFor)
	for w := range senders {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() { feed(rng, a, data, build, deadline, &tried) })
	}
	wg.Wait()
	t.Logf("seed %d: %d inputs in %v from %d senders", seed, tried.Load(), *fuzzFor, senders)
	select {
	case <-a.exited:
		t.Fatalf("seed %d: the node exited:\n%s", seed, a.stderr.String())
	default:
	}
	if err := a.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("seed %d: the node is gone: %v", seed, err)
	}
	if s := a.stderr.String(); !strings.Contains(s, "refused a data connection") {
		t.Errorf("seed %d: the node logged no refused data connection:\n%.3000s", seed, s)
	}
	// Unharmed: it still sees b, answers, and runs a job over both.
	a.waitMembers(t, map[*testNode]membership.State{a: membership.Alive, b: membership.Alive})
	code, _, stderr := client(t, "submit", "--to", a.http, "sum-by-key", "--parallelism", "4", "--arg", "rows=200000")
	if code != 0 || len(nodesOfSummary(stderr)) != 2 {
		t.Fatalf("seed %d: a job after the fuzzing: exit %d, want 0 on both nodes:\n%s", seed, code, stderr)
	}
}

// feed sends node a random inputs from rng until deadline, counting them.
func feed(rng *rand.Rand, a *testNode, data, build string, deadline time.Time, tried *atomic.Int64) {
	junk := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	// Each input is what one connection (or datagram) sends.
	inputs := []func() (addr, proto string, b []byte){
		func() (string, string, []byte) { return a.gossip, "tcp", junk(1 + rng.IntN(2000)) },
		func() (string, string, []byte) { return a.gossip, "udp", junk(1 + rng.IntN(1400)) },
		func() (string, string, []byte) { return a.http, "tcp", junk(1 + rng.IntN(4000)) },
		func() (string, string, []byte) {
			return a.http, "tcp", []byte("GET /v1/" + strings.Repeat("x", rng.IntN(70000)) + " HTTP/1.1\r\nHost: a\r\nX: " + string(junk(100)) + "\r\n\r\n")
		},
		func() (string, string, []byte) { return data, "tcp", junk(1 + rng.IntN(2000)) },
		func() (string, string, []byte) { return data, "tcp", hello("stranger", "0000000000000000") },
		func() (string, string, []byte) { h := hello("fuzz", build); return data, "tcp", h[:rng.IntN(len(h))] }, // truncated
		func() (string, string, []byte) { // oversized length after a good hello
			return data, "tcp", append(hello("fuzz", build), 0xff, 0xff, 0xff, 0x7f, 1)
		},
		func() (string, string, []byte) { // frames of any type, random bodies
			b := hello("fuzz", build)
			for range 1 + rng.IntN(8) {
				b = append(b, frameOf(byte(rng.IntN(256)), junk(rng.IntN(300)))...)
			}
			return data, "tcp", b
		},
		func() (string, string, []byte) { // control frames: a job, then JSON-ish or random payloads
			b := hello("fuzz", build)
			for range 1 + rng.IntN(8) {
				payload := bin.AppendUvarint(nil, rng.Uint64())
				switch rng.IntN(3) {
				case 0:
					payload = append(payload, append([]byte{'S'}, junk(rng.IntN(200))...)...)
				case 1:
					payload = append(payload, append([]byte{'A'}, `{"op":"attempt","epoch":1,"place":[["x"]]}`...)...)
				default:
					payload = append(payload, junk(rng.IntN(200))...)
				}
				b = append(b, frameOf(0x82, payload)...)
			}
			return data, "tcp", b
		},
	}
	for time.Now().Before(deadline) {
		addr, proto, b := inputs[rng.IntN(len(inputs))]()
		c, err := net.DialTimeout(proto, addr, time.Second)
		if err != nil {
			continue
		}
		tried.Add(1)
		_ = c.SetDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = c.Write(b)
		if proto == "tcp" {
			_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<16)) // until the node closes or the deadline
		}
		c.Close()
	}
}

// portPlus returns base's port plus off.
func portPlus(t *testing.T, base string, off int) string {
	t.Helper()
	_, p, err := net.SplitHostPort(base)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(n + off)
}
