package transport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice/backpressure"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
)

// deadline bounds every wait of these tests.
const deadline = 20 * time.Second

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(deadline):
		t.Fatalf("waited %v for %s", deadline, what)
	}
}

func testConfig(node string, deliver func(*Conn, Envelope)) Config {
	if deliver == nil {
		deliver = func(*Conn, Envelope) {}
	}
	return Config{Node: node, Build: "test-build", Codecs: testCodecs(), Deliver: deliver}
}

// pair returns a connection dialled with ca and the one accepted with cb.
func pair(t *testing.T, ca, cb Config) (a, b *Conn) {
	t.Helper()
	l, err := Listen("127.0.0.1:0", cb)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	a, err = Dial(ctx, l.Addr().String(), ca)
	if err != nil {
		t.Fatal(err)
	}
	b = <-accepted
	if b == nil {
		a.Abort()
		t.FailNow()
	}
	t.Cleanup(func() { a.Abort(); b.Abort() })
	return a, b
}

// inbox collects what a connection delivers and says when it has want
// messages.
type inbox struct {
	mu   sync.Mutex
	got  []Envelope
	want int
	full chan struct{}
}

func newInbox(want int) *inbox { return &inbox{want: want, full: make(chan struct{})} }

func (in *inbox) deliver(_ *Conn, e Envelope) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.got = append(in.got, e)
	if len(in.got) == in.want {
		close(in.full)
	}
}

func (in *inbox) messages() []Envelope {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Envelope(nil), in.got...)
}

func TestConnDeliversInOrderBothWays(t *testing.T) {
	// The default queue writes up to 512 KiB at a time; a 64 KiB one makes
	// the writer cut frames across writes.
	for _, queue := range []int64{0, 64 << 10} {
		t.Run(fmt.Sprintf("queue %d", queue), func(t *testing.T) { testInOrder(t, queue) })
	}
}

func testInOrder(t *testing.T, queue int64) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	const n = 1500
	inA, inB := newInbox(n), newInbox(n)
	ca, cb := testConfig("a", inA.deliver), testConfig("b", inB.deliver)
	ca.QueueBytes, cb.QueueBytes = queue, queue
	a, b := pair(t, ca, cb)
	if a.Peer() != "b" || b.Peer() != "a" {
		t.Fatalf("peers %q and %q", a.Peer(), b.Peer())
	}
	send := func(c *Conn, r *rand.Rand) []Envelope {
		var sent []Envelope
		for range n {
			e := randEnvelope(r)
			if err := c.Send(e); err != nil {
				t.Errorf("send to %s: %v", c.Peer(), err)
				return sent
			}
			sent = append(sent, e)
		}
		return sent
	}
	var sentA, sentB []Envelope
	var wg sync.WaitGroup
	wg.Go(func() { sentA = send(a, rand.New(rand.NewPCG(seed, 1))) })
	wg.Go(func() { sentB = send(b, rand.New(rand.NewPCG(seed, 2))) })
	wg.Wait()
	waitFor(t, inB.full, "b to receive a's messages")
	waitFor(t, inA.full, "a to receive b's messages")
	for _, c := range []struct {
		name string
		sent []Envelope
		in   *inbox
	}{{"a to b", sentA, inB}, {"b to a", sentB, inA}} {
		got := c.in.messages()
		for i := range c.sent {
			if !sameEnvelope(got[i], c.sent[i]) {
				t.Fatalf("seed %d, %s, message %d: got %s, want %s", seed, c.name, i, got[i].Msg, c.sent[i].Msg)
			}
		}
	}
	if err := a.Close(); err != nil {
		t.Fatalf("a.Close: %v", err)
	}
	waitFor(t, b.Done(), "b to see a close")
	if err := b.Close(); err != nil {
		t.Fatalf("b.Close: %v", err)
	}
	sa, sb := a.Stats(), b.Stats()
	if sa.FramesSent != n || sb.FramesReceived != n || sa.BytesSent != sb.BytesReceived || sa.Queued != 0 {
		t.Fatalf("a sent %+v, b received %+v", sa, sb)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	in := newInbox(10)
	a, b := pair(t, testConfig("a", nil), testConfig("b", in.deliver))
	for i := range 10 {
		if err := a.Send(Envelope{To: core.Addr{Vertex: 1}, Msg: core.Msg{Kind: core.Watermark, Time: int64(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, in.full, "the messages")
	// Both sides close at once: each sees the other's goodbye or end.
	var wg sync.WaitGroup
	for _, c := range []*Conn{a, b} {
		wg.Go(func() {
			if err := c.Close(); err != nil {
				t.Errorf("closing %s: %v", c.Peer(), err)
			}
		})
	}
	wg.Wait()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	limit := time.After(deadline)
	for runtime.NumGoroutine() > before {
		select {
		case <-tick.C:
		case <-limit:
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
	}
}

func TestPeerCloseIsNoFailure(t *testing.T) {
	in := newInbox(100)
	a, b := pair(t, testConfig("a", nil), testConfig("b", in.deliver))
	for i := range 100 {
		if err := a.Send(Envelope{To: core.Addr{Vertex: 1}, Msg: core.Msg{Kind: core.Barrier, Checkpoint: uint64(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatalf("a.Close: %v", err)
	}
	waitFor(t, b.Done(), "b to see a close")
	if got := len(in.messages()); got != 100 {
		t.Fatalf("b got %d of the 100 messages sent before the close", got)
	}
	if err := b.Err(); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("b.Err() = %v, want ErrPeerClosed", err)
	}
	if err := b.Send(Envelope{Msg: core.Msg{Kind: core.Idle}}); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("b.Send after the peer closed: %v", err)
	}
	if err := a.Send(Envelope{Msg: core.Msg{Kind: core.Idle}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("a.Send after Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("b.Close: %v", err)
	}
}

// bigFrame returns a Data frame for testKey of about size bytes.
func bigFrame(t *testing.T, size int) []byte {
	t.Helper()
	rows := make([]testRow, size/1024)
	for i := range rows {
		rows[i] = testRow{ID: int64(i), Name: strings.Repeat("r", 1000)}
	}
	f, err := AppendFrame(nil, dataEnvelope(rows), testCodecs())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// stalled is a receiver whose Deliver blocks every Data message until
// release, as a task that stops taking input would if the transport
// delivered straight into it.
type stalled struct {
	gate    chan struct{}
	data    atomic.Int64
	ended   chan struct{}
	release func()
}

func newStalled() *stalled {
	s := &stalled{gate: make(chan struct{}), ended: make(chan struct{})}
	s.release = sync.OnceFunc(func() { close(s.gate) })
	return s
}

func (s *stalled) deliver(_ *Conn, e Envelope) {
	switch e.Msg.Kind {
	case core.Data:
		<-s.gate
		s.data.Add(1)
	case core.EndOfInput:
		close(s.ended)
	}
}

// firstWait makes c close the returned channel when a Send first waits for
// room.
func firstWait(c *Conn) <-chan struct{} {
	ch := make(chan struct{})
	once := sync.OnceFunc(func() { close(ch) })
	c.mu.Lock()
	c.onWait = once
	c.mu.Unlock()
	return ch
}

func TestStalledReceiverKeepsSenderQueueBounded(t *testing.T) {
	const bound = 256 << 10
	recv := newStalled()
	defer recv.release()
	cfg := testConfig("a", nil)
	cfg.QueueBytes = bound
	a, _ := pair(t, cfg, testConfig("b", recv.deliver))
	waiting := firstWait(a)
	frame := bigFrame(t, 16<<10)

	stop := make(chan struct{})
	sent := make(chan int64, 1)
	go func() {
		var n int64
		defer func() { sent <- n }()
		for {
			select {
			case <-stop:
				if err := a.Send(Envelope{To: core.Addr{Vertex: testKey.Vertex}, Msg: core.Msg{Kind: core.EndOfInput}}); err != nil {
					t.Error(err)
				}
				return
			default:
			}
			if err := a.SendFrame(frame); err != nil {
				t.Error(err)
				return
			}
			n++
			// A small message between the batches, as credit goes back.
			if err := a.Send(Envelope{To: core.Addr{Vertex: 1}, Msg: core.Msg{Kind: core.Credit, Grant: backpressure.Grant{Credits: 1}}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	// The receiver takes nothing: the sockets fill, then the queue, and
	// the sender waits.
	waitFor(t, waiting, "a Send to wait for room")
	a.mu.Lock()
	var chunksHeld int
	for _, s := range a.pending {
		if s.pool == &chunks {
			chunksHeld++
		}
	}
	a.mu.Unlock()
	if chunksHeld > 1 {
		t.Errorf("the small frames between %d-byte frames hold %d chunks, want them to share one", len(frame), chunksHeld)
	}
	st := a.Stats()
	if st.Queued > bound || st.PeakQueued > bound || st.SendWaits < 1 {
		t.Fatalf("with the receiver stalled: %+v, want at most %d bytes queued", st, bound)
	}
	if got := recv.data.Load(); got != 0 {
		t.Fatalf("the stalled receiver took %d batches", got)
	}
	t.Logf("stalled: %d frames queued by Send, %d bytes written, %d bytes queued (peak %d)", st.FramesSent, st.BytesSent, st.Queued, st.PeakQueued)

	// Released, everything arrives, and the queue never passed its bound.
	close(stop)
	recv.release()
	waitFor(t, recv.ended, "the end of input")
	n := <-sent
	if got := recv.data.Load(); got != n {
		t.Fatalf("received %d batches of %d sent", got, n)
	}
	if st := a.Stats(); st.PeakQueued > bound || a.Err() != nil {
		t.Fatalf("after the stall: %+v, err %v", st, a.Err())
	}
}

func TestSendFailsOnceWhenPeerTakesNothing(t *testing.T) {
	recv := newStalled()
	defer recv.release()
	cfg := testConfig("a", nil)
	cfg.QueueBytes = 128 << 10
	cfg.WriteTimeout = 300 * time.Millisecond
	a, _ := pair(t, cfg, testConfig("b", recv.deliver))
	frame := bigFrame(t, 32<<10)
	failed := make(chan error, 1)
	go func() {
		for {
			if err := a.SendFrame(frame); err != nil {
				failed <- err
				return
			}
		}
	}()
	var err error
	select {
	case err = <-failed:
	case <-time.After(deadline):
		t.Fatalf("Send did not fail in %v on a peer that takes nothing", deadline)
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Node != "b" || ce.Addr != a.RemoteAddr() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want an *Error naming node b at %s and wrapping a deadline", err, a.RemoteAddr())
	}
	if !strings.Contains(err.Error(), a.RemoteAddr()) {
		t.Fatalf("%q does not name the peer's address", err)
	}
	waitFor(t, a.Done(), "Done")
	if again := a.SendFrame(frame); again != err || a.Err() != err {
		t.Fatalf("later Send: %v, Err: %v; want the first error again", again, a.Err())
	}
	if cerr := a.Close(); cerr != err {
		t.Fatalf("Close after the failure: %v", cerr)
	}
}

func TestAbortDoesNotWaitForAStalledPeer(t *testing.T) {
	recv := newStalled()
	defer recv.release()
	cfg := testConfig("a", nil)
	cfg.QueueBytes = 128 << 10
	cfg.WriteTimeout = time.Hour
	a, _ := pair(t, cfg, testConfig("b", recv.deliver))
	waiting := firstWait(a)
	frame := bigFrame(t, 32<<10)
	failed := make(chan error, 1)
	go func() {
		for {
			if err := a.SendFrame(frame); err != nil {
				failed <- err
				return
			}
		}
	}()
	waitFor(t, waiting, "a Send to wait for room")
	a.Abort()
	select {
	case err := <-failed:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("the waiting Send returned %v, want ErrClosed", err)
		}
	case <-time.After(deadline):
		t.Fatal("the waiting Send did not return after Abort")
	}
}

func TestHandshakeRefusesAnotherBuild(t *testing.T) {
	cb := testConfig("b", nil)
	cb.Build = "build-2"
	l, err := Listen("127.0.0.1:0", cb)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acceptErr := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if c != nil {
			c.Abort()
		}
		acceptErr <- err
	}()
	ca := testConfig("a", nil)
	ca.Build = "build-1"
	c, err := Dial(context.Background(), l.Addr().String(), ca)
	if c != nil {
		c.Abort()
	}
	for _, err := range []error{err, <-acceptErr} {
		if !errors.Is(err, ErrBuildMismatch) || !errors.Is(err, ErrHandshake) ||
			!strings.Contains(err.Error(), `"build-1"`) || !strings.Contains(err.Error(), `"build-2"`) {
			t.Fatalf("got %v, want a build mismatch naming both builds", err)
		}
	}
}

func TestAcceptRefusesAStrangerAndGoesOn(t *testing.T) {
	in := newInbox(1)
	l, err := Listen("127.0.0.1:0", testConfig("b", in.deliver))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	stranger, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if _, err := stranger.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "not a sluice data connection") {
		t.Fatalf("Accept of a stranger: %v", err)
	}
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	a, err := Dial(context.Background(), l.Addr().String(), testConfig("a", nil))
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
	waitFor(t, in.full, "a message after the stranger")
}

func TestCorruptFrameFailsTheConnection(t *testing.T) {
	l, err := Listen("127.0.0.1:0", testConfig("b", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write(appendHello(nil, hello{node: "raw", build: "test-build"})); err != nil {
		t.Fatal(err)
	}
	if _, err := readHello(raw); err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.FailNow()
	}
	defer b.Abort()
	if _, err := raw.Write([]byte{3, 0, 0, 0, 0x42, 1, 2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b.Done(), "the corrupt frame to end the connection")
	var ce *Error
	if err := b.Err(); !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.Node != "raw" {
		t.Fatalf("got %v, want ErrCorrupt from node raw", err)
	}
}

func TestOversizedFrameIsRefusedAndTheConnectionLives(t *testing.T) {
	in := newInbox(1)
	cfg := testConfig("a", nil)
	cfg.MaxFrame = 4 << 10
	a, _ := pair(t, cfg, testConfig("b", in.deliver))
	if err := a.SendFrame(bigFrame(t, 16<<10)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("SendFrame of 16 KiB with MaxFrame 4 KiB: %v", err)
	}
	if err := a.Send(dataEnvelope([]testRow{{ID: 1}})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, in.full, "the small batch")
}

func TestDataForAnUnknownEdgeFailsTheReceiver(t *testing.T) {
	cb := testConfig("b", nil)
	cb.Codecs = &CodecTable{}
	a, b := pair(t, testConfig("a", nil), cb)
	if err := a.Send(dataEnvelope([]testRow{{ID: 1}})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b.Done(), "b to fail")
	if err := b.Err(); !errors.Is(err, ErrNoCodec) || !strings.Contains(err.Error(), testKey.String()) {
		t.Fatalf("got %v, want ErrNoCodec naming %s", err, testKey)
	}
}

func TestSendRefusesWhatItCannotEncode(t *testing.T) {
	in := newInbox(1)
	a, _ := pair(t, testConfig("a", nil), testConfig("b", in.deliver))
	if err := a.Send(dataEnvelope([]string{"x"})); err == nil || !strings.Contains(err.Error(), `to node "b"`) {
		t.Fatalf("got %v", err)
	}
	if err := a.Send(Envelope{Msg: core.Msg{Kind: core.Data, Batch: &plan.Batch{Times: []int64{}}}}); err != nil {
		t.Fatalf("the connection should live on: %v", err)
	}
	waitFor(t, in.full, "the message after the refused one")
}

func TestConfigValidateReportsEverything(t *testing.T) {
	err := Config{QueueBytes: -1, MaxFrame: HardMaxFrame + 1, WriteTimeout: -1}.Validate()
	for _, want := range []string{"Node is empty", "Build is empty", "Deliver is nil", "QueueBytes -1", "MaxFrame", "WriteTimeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to mention %q", err, want)
		}
	}
	if _, err := Dial(context.Background(), "127.0.0.1:1", Config{}); err == nil || !strings.Contains(err.Error(), "Node is empty") {
		t.Errorf("Dial with an empty config: %v", err)
	}
	if !ShouldDial("a", "b") || ShouldDial("b", "a") {
		t.Error("ShouldDial: the name that sorts first dials")
	}
}

// Control messages arrive in order with the messages around them, their
// payloads intact, and a Trigger (a job-layer message for a task on
// another node) crosses too.
func TestControlInOrderWithMessages(t *testing.T) {
	type got struct {
		kind    string
		job     uint64
		payload string
	}
	var mu sync.Mutex
	var seen []got
	done := make(chan struct{})
	cb := testConfig("b", func(_ *Conn, e Envelope) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, got{kind: e.Msg.Kind.String(), job: e.Job})
	})
	cb.Control = func(_ *Conn, job uint64, payload []byte) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, got{kind: "control", job: job, payload: string(payload)})
		if string(payload) == "last" {
			close(done)
		}
	}
	a, _ := pair(t, testConfig("a", nil), cb)
	big := strings.Repeat("x", 10000) // past the copied frames' size
	steps := []func() error{
		func() error { return a.SendControl(7, []byte("first")) },
		func() error { return a.Send(Envelope{Job: 7, Msg: core.Msg{Kind: core.Trigger, Checkpoint: 3}}) },
		func() error { return a.SendControl(8, []byte(big)) },
		func() error { return a.Send(Envelope{Job: 8, Msg: core.Msg{Kind: core.Completed, Checkpoint: 3}}) },
		func() error { return a.SendControl(9, nil) },
		func() error { return a.SendControl(9, []byte("last")) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, done, "the control messages")
	mu.Lock()
	defer mu.Unlock()
	want := []got{{"control", 7, "first"}, {"trigger", 7, ""}, {"control", 8, big}, {"completed", 8, ""}, {"control", 9, ""}, {"control", 9, "last"}}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("got %.200v\nwant %.200v", seen, want)
	}
	if err := a.Send(Envelope{Msg: core.Msg{Kind: core.Produce}}); err == nil || !strings.Contains(err.Error(), "does not travel") {
		t.Fatalf("a Produce crossed nodes: %v", err)
	}
}
