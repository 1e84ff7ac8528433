package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-data/sluice/core"
)

// Defaults of the Config fields left zero.
const (
	DefaultQueueBytes       = 4 << 20
	DefaultMaxFrame         = 64 << 20
	DefaultWriteTimeout     = 10 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
)

const (
	// readBufferSize is the reader's buffer: small frames are read many
	// to a read; a body larger than it is read straight into the frame's
	// buffer.
	readBufferSize = 32 << 10
	// copyMax: frames up to this size are copied into shared chunks, so
	// that small frames go out many to a write; larger ones are queued by
	// reference and written in place (writev).
	copyMax       = 4 << 10
	chunkSize     = 64 << 10
	maxWriteChunk = 512 << 10
	minWriteChunk = 64 << 10
	growStep      = 1 << 20 // how much more a frame's buffer grows than the bytes it has read
)

var (
	// ErrClosed is wrapped by the error of a Send on a connection that this
	// side closed.
	ErrClosed = errors.New("transport: connection closed")
	// ErrPeerClosed is wrapped by the error of a connection whose peer
	// closed it cleanly (Close on its side): not a failure.
	ErrPeerClosed = errors.New("transport: the peer closed the connection")
	// ErrHandshake is wrapped by every error of the opening handshake.
	ErrHandshake = errors.New("transport: handshake failed")
	// ErrBuildMismatch is wrapped (with ErrHandshake) when the peer runs
	// another build: the error names both build IDs.
	ErrBuildMismatch = errors.New("transport: the peer runs another build")
	// ErrTLS is wrapped (with ErrHandshake) when the TLS handshake fails:
	// a peer that does not speak TLS, or whose certificate this node's CA
	// did not sign, or that refused this node's.
	ErrTLS = errors.New("transport: TLS handshake failed")
)

// Config configures a node's data connections. The zero values of the
// sizes and timeouts take the defaults above.
type Config struct {
	// Node is this node's name, sent to the peer in the handshake.
	Node string
	// Build is this node's build ID: a peer of another build is refused at
	// the handshake, naming both.
	Build string
	// Codecs encodes and decodes the batches of Data messages. A Data
	// message with a batch for an edge Codecs does not know is an error;
	// nil Codecs knows no edge.
	Codecs Codecs
	// Deliver is given every message that arrives, with its connection. It
	// is called from the connection's reader goroutine, one message at a
	// time, in the order the peer sent them. It must hand the message on
	// and return (into the receiving task's mailbox): while it runs, the
	// connection reads nothing, and the peer's sends back up until its
	// writer times out. It must not call Send, Close or Abort: Close and
	// Abort wait for the reader, and Send may wait for a writer whose peer
	// waits for this reader.
	Deliver func(c *Conn, e Envelope)
	// Control, if set, is given every control message that arrives (see
	// SendControl), under Deliver's rules: from the reader goroutine, in
	// the order sent, among the messages. payload is the reader's buffer:
	// it is valid only until Control returns. Without Control, a control
	// message is dropped.
	Control func(c *Conn, job uint64, payload []byte)
	// QueueBytes bounds the bytes a connection holds for its writer: a
	// Send that would exceed it waits (see Conn.Send). One frame is always
	// let in, however large, so that an oversized batch still moves.
	QueueBytes int64
	// MaxFrame bounds a frame's length (after its prefix), at most
	// HardMaxFrame: a Send of a larger frame is an error, and so is a
	// larger frame arriving.
	MaxFrame int
	// WriteTimeout bounds each write to the socket: a peer that takes no
	// bytes for this long (dead, frozen, or its reader stalled) fails the
	// connection. It also bounds how long Close waits for the peer.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds the opening handshake (TLS's included).
	HandshakeTimeout time.Duration
	// TLS, if set, makes every connection mutual TLS (1.3): Dial is its
	// client, verifying the listener's certificate against RootCAs for
	// ServerName (empty: the host of the address dialled) and presenting
	// Certificates; a Listener is its server, presenting Certificates and
	// requiring a client certificate that ClientCAs verifies, whatever
	// ClientAuth says. The caller builds it (one config serves both
	// sides); it is cloned, never changed. A peer without TLS, or whose
	// certificate does not verify, fails the handshake with an error
	// wrapping ErrTLS that names its address. Nil: plaintext.
	TLS *tls.Config
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Node == "" {
		errs = append(errs, errors.New("transport: Config.Node is empty"))
	}
	if c.Build == "" {
		errs = append(errs, errors.New("transport: Config.Build is empty"))
	}
	if len(c.Node) > 1024 || len(c.Build) > 1024 {
		errs = append(errs, errors.New("transport: Config.Node and Config.Build must be at most 1024 bytes each"))
	}
	if c.Deliver == nil {
		errs = append(errs, errors.New("transport: Config.Deliver is nil"))
	}
	if c.QueueBytes < 0 {
		errs = append(errs, fmt.Errorf("transport: Config.QueueBytes %d is negative", c.QueueBytes))
	}
	if c.MaxFrame < 0 || c.MaxFrame > HardMaxFrame {
		errs = append(errs, fmt.Errorf("transport: Config.MaxFrame %d must be between 0 (the default) and %d", c.MaxFrame, HardMaxFrame))
	}
	if c.WriteTimeout < 0 {
		errs = append(errs, fmt.Errorf("transport: Config.WriteTimeout %v is negative", c.WriteTimeout))
	}
	if c.HandshakeTimeout < 0 {
		errs = append(errs, fmt.Errorf("transport: Config.HandshakeTimeout %v is negative", c.HandshakeTimeout))
	}
	if c.TLS != nil && len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil && c.TLS.GetClientCertificate == nil {
		errs = append(errs, errors.New("transport: Config.TLS has no certificate: mutual TLS needs this node's"))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.QueueBytes == 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = DefaultMaxFrame
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	return c
}

// ShouldDial reports whether node self dials node peer, so that a node pair
// keeps one connection: the node whose name sorts first dials, the other
// accepts.
func ShouldDial(self, peer string) bool { return self < peer }

// Error is a connection's failure, naming the peer and what the connection
// was doing.
type Error struct {
	Node string // the peer's name, from the handshake
	Addr string // the peer's address
	Op   string // "writing to", "reading from"
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("transport: %s node %q at %s: %s", e.Op, e.Node, e.Addr, strings.TrimPrefix(e.Err.Error(), "transport: "))
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Stats are a connection's counters. Frames count message frames; bytes
// count everything after the handshake (the goodbye too), length prefixes
// included.
type Stats struct {
	FramesSent     int64 // frames queued by Send and SendFrame
	BytesSent      int64 // bytes written to the socket
	FramesReceived int64
	BytesReceived  int64
	Queued         int64 // bytes queued and not yet written
	PeakQueued     int64 // the most bytes ever queued at once
	SendWaits      int64 // Sends that waited for room in the queue
}

// Conn is one data connection between two nodes; both sides send and
// receive on it. Its methods are safe for concurrent use.
type Conn struct {
	cfg   Config
	nc    net.Conn
	br    *bufio.Reader
	peer  string
	addr  string
	chunk int

	mu      sync.Mutex
	room    sync.Cond // a sender may find room, or the connection ended
	work    sync.Cond // the writer has frames, or the connection is closing or ended
	pending []segment // frames waiting for the writer, in order
	spare   []segment // the writer's previous list, for reuse
	cur     *[]byte   // the chunk pending's small frames are copied into
	curSeg  int       // the index in pending of cur's last segment, or -1
	queued  int64     // bytes in pending and in the writer's hands
	peak    int64
	closing bool  // Close was called: no new sends; the writer drains and says goodbye
	err     error // how the connection ended; nil while it lives

	done       chan struct{} // closed when err is set
	writerDone chan struct{}
	readerDone chan struct{}
	wg         sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error

	framesSent, bytesSent, framesRecv, bytesRecv, sendWaits atomic.Int64

	onWait func() // tests: called, under mu, when a Send starts to wait
}

// Dial connects to the node listening at addr and shakes hands with it.
func Dial(ctx context.Context, addr string, cfg Config) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: dialing %s: %w", addr, err)
	}
	if cfg.TLS != nil {
		tc := tlsConfig(cfg.TLS)
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(addr)
		}
		nc = tls.Client(nc, tc)
	}
	c, err := handshake(ctx, nc, cfg.withDefaults())
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	return c, nil
}

// tlsConfig returns a clone of c for a data connection: TLS 1.3 at least,
// and a listener requires and verifies the client's certificate.
func tlsConfig(c *tls.Config) *tls.Config {
	c = c.Clone()
	c.MinVersion = max(c.MinVersion, tls.VersionTLS13)
	c.ClientAuth = tls.RequireAndVerifyClientCert
	return c
}

// Listener accepts data connections.
type Listener struct {
	ln  net.Listener
	cfg Config
	tls *tls.Config // the server's, if Config.TLS
}

// Listen listens on addr ("host:port"; port 0 picks one, see Addr).
func Listen(addr string, cfg Config) (*Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listening on %s: %w", addr, err)
	}
	l := &Listener{ln: ln, cfg: cfg.withDefaults()}
	if cfg.TLS != nil {
		l.tls = tlsConfig(cfg.TLS)
	}
	return l, nil
}

// Addr returns the address the listener listens on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Accept waits for a connection and shakes hands with it. A failed
// handshake (a stranger, a peer of another build; with TLS, a peer
// without it or without a certificate the CA signed) is returned as an
// error wrapping ErrHandshake, and the listener goes on: call Accept
// again. Once
// the listener is closed, Accept returns an error wrapping net.ErrClosed.
func (l *Listener) Accept() (*Conn, error) {
	nc, err := l.ln.Accept()
	if err != nil {
		return nil, fmt.Errorf("transport: accepting on %s: %w", l.ln.Addr(), err)
	}
	if l.tls != nil {
		nc = tls.Server(nc, l.tls)
	}
	c, err := handshake(context.Background(), nc, l.cfg)
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	return c, nil
}

// Close stops the listener; connections it accepted live on.
func (l *Listener) Close() error { return l.ln.Close() }

// handshake shakes hands over TLS if nc is a *tls.Conn, sends this node's
// hello, reads the peer's, and starts the connection's goroutines.
func handshake(ctx context.Context, nc net.Conn, cfg Config) (*Conn, error) {
	addr := nc.RemoteAddr().String()
	fail := func(err error) (*Conn, error) {
		return nil, fmt.Errorf("%w with %s: %w", ErrHandshake, addr, err)
	}
	deadline := time.Now().Add(cfg.HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := nc.SetDeadline(deadline); err != nil {
		return fail(err)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	if tc, ok := nc.(*tls.Conn); ok {
		if err := tc.HandshakeContext(ctx); err != nil {
			stop()
			return fail(tlsError(err))
		}
	}
	if _, err := nc.Write(appendHello(nil, hello{node: cfg.Node, build: cfg.Build})); err != nil {
		stop()
		return fail(err)
	}
	br := bufio.NewReaderSize(nc, readBufferSize)
	h, err := readHello(br)
	if !stop() {
		return fail(context.Cause(ctx))
	}
	if err != nil {
		_, isTLS := nc.(*tls.Conn)
		var oe *net.OpError
		switch {
		case isTLS && errors.As(err, &oe) && oe.Op == "remote error":
			// TLS 1.3: the listener checks the client's certificate after
			// the client's handshake has ended, and says so with an alert.
			return fail(tlsError(err))
		case !isTLS && errors.Is(err, io.EOF):
			// A sluice node sends its hello first; one that requires TLS
			// waits for the client's.
			return fail(fmt.Errorf("%w: the peer closed the connection before its hello: it may require TLS, which this node does not use", err))
		}
		return fail(err)
	}
	if h.build != cfg.Build {
		return fail(fmt.Errorf("%w: node %q runs build %q, this node (%q) runs build %q",
			ErrBuildMismatch, h.node, h.build, cfg.Node, cfg.Build))
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return fail(err)
	}
	c := &Conn{cfg: cfg, nc: nc, br: br, peer: h.node, addr: addr,
		chunk: int(min(maxWriteChunk, max(minWriteChunk, cfg.QueueBytes/4))), curSeg: -1,
		done: make(chan struct{}), writerDone: make(chan struct{}), readerDone: make(chan struct{})}
	c.room.L = &c.mu
	c.work.L = &c.mu
	c.wg.Add(2)
	go c.writeLoop()
	go c.readLoop()
	return c, nil
}

// tlsError is a failed TLS handshake's error, saying what the usual causes
// are.
func tlsError(err error) error {
	var rh tls.RecordHeaderError
	msg := err.Error()
	why := ""
	switch {
	case errors.As(err, &rh):
		why = "the peer does not speak TLS (is it run without TLS?)"
	case strings.Contains(msg, "didn't provide a certificate"):
		why = "the peer gave no certificate signed by this node's CA"
	case strings.Contains(msg, "remote error: tls: certificate required"):
		why = "the peer requires a certificate signed by its CA, and this node has none (is its certificate of another CA?)"
	case strings.Contains(msg, "unknown authority"):
		why = "the peer's certificate is signed by a CA this node does not trust"
	case strings.Contains(msg, "remote error: tls: bad certificate"), strings.Contains(msg, "remote error: tls: unknown certificate authority"):
		why = "the peer refused this node's certificate (signed by a CA it does not trust?)"
	case strings.Contains(msg, "certificate"):
		why = "the certificates do not verify (expired, or for another host?)"
	default:
		return fmt.Errorf("%w: %w", ErrTLS, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrTLS, why, err)
}

func readHello(r io.Reader) (hello, error) {
	var hdr [lenSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return hello{}, fmt.Errorf("reading the peer's hello: %w", err)
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if (hdr[0] == 0x15 || hdr[0] == 0x16) && hdr[1] == 0x03 { // a TLS record: alert or handshake, version 3.x
		return hello{}, fmt.Errorf("%w: the peer speaks TLS, and this node does not use it", ErrCorrupt)
	}
	if n == 0 || n > helloMax {
		return hello{}, fmt.Errorf("%w: not a sluice data connection (first frame of %d bytes)", ErrCorrupt, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return hello{}, fmt.Errorf("reading the peer's hello: %w", err)
	}
	return decodeHello(body)
}

// Peer returns the peer's node name, from the handshake.
func (c *Conn) Peer() string { return c.peer }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() string { return c.addr }

// Done is closed when the connection has ended: closed by either side, or
// failed. Err then says how.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection lives, then how it ended: an
// *Error wrapping ErrClosed (this side closed it), ErrPeerClosed (the peer
// closed it), or the failure. The executor treats a failure as the peer's.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Stats returns the connection's counters.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	queued, peak := c.queued, c.peak
	c.mu.Unlock()
	return Stats{FramesSent: c.framesSent.Load(), BytesSent: c.bytesSent.Load(),
		FramesReceived: c.framesRecv.Load(), BytesReceived: c.bytesRecv.Load(),
		Queued: queued, PeakQueued: peak, SendWaits: c.sendWaits.Load()}
}

// segment is a run of queued bytes: one large frame, or small frames
// copied one after another into a chunk. pool, if set, takes buf back once
// the writer has written the list the segment is in.
type segment struct {
	b    []byte
	buf  *[]byte
	pool *sync.Pool
}

// scratchMax is the largest encoding buffer kept for reuse.
const scratchMax = 1 << 20

var (
	scratch = sync.Pool{New: func() any { return new([]byte) }}
	chunks  = sync.Pool{New: func() any { b := make([]byte, 0, chunkSize); return &b }}
)

// Send encodes e and queues its frame for the writer. Frames leave in the
// order their Sends returned; one goroutine's Sends arrive in the order it
// made them.
//
// When the queue holds QueueBytes, Send waits for the writer to make room
// rather than fail: its caller has sent a batch only with the receiver's
// credit, so the wait is the socket's own backpressure, short while the
// peer lives; failing would only move the frame into a queue of the
// caller's, which the bound exists to prevent. The wait is bounded: the
// writer makes room within WriteTimeout or fails the connection, and Send
// returns the failure.
//
// A message Send cannot encode is an error and the connection lives on.
// Once the connection has ended Send returns Err().
func (c *Conn) Send(e Envelope) error {
	bp := scratch.Get().(*[]byte)
	b, err := appendFrame((*bp)[:0], e, c.cfg.Codecs)
	if err != nil {
		scratch.Put(bp)
		return fmt.Errorf("transport: sending %s to node %q: %w", e.Msg.Kind, c.peer, err)
	}
	*bp = b
	if len(b) <= copyMax {
		err = c.enqueue(b, nil) // copied
		*bp = b[:0]
		scratch.Put(bp)
		return err
	}
	if cap(b) > scratchMax || cap(b) > 4*len(b) {
		// Queued by reference and left to the collector: a buffer much
		// larger than its frame would hold memory the queue's bound does
		// not count.
		return c.enqueue(b, nil)
	}
	return c.enqueue(b, bp) // the writer puts bp back
}

// SendControl sends a control message of job: payload, opaque to the
// transport, reaches the peer's Config.Control in order with the messages
// Send sends. It queues and waits as Send does.
func (c *Conn) SendControl(job uint64, payload []byte) error {
	b, err := appendControl(nil, job, payload)
	if err != nil {
		return fmt.Errorf("transport: sending a control message to node %q: %w", c.peer, err)
	}
	return c.enqueue(b, nil)
}

// SendFrame queues a frame made by AppendFrame, as Send queues the frame it
// makes: for a frame encoded once and sent to several peers. It checks the
// length prefix and the type, not the body. A frame larger than a few KiB
// is queued by reference and written from where it is: it must not change
// afterwards (frames, like batches, are read-only once made).
func (c *Conn) SendFrame(frame []byte) error {
	if len(frame) <= lenSize || uint64(binary.LittleEndian.Uint32(frame)) != uint64(len(frame)-lenSize) {
		return fmt.Errorf("%w: SendFrame of %d bytes whose length prefix does not match", ErrCorrupt, len(frame))
	}
	if !core.Kind(frame[lenSize]).OnWire() {
		return fmt.Errorf("%w: SendFrame of a frame of type %#02x", ErrCorrupt, frame[lenSize])
	}
	return c.enqueue(frame, nil)
}

// enqueue queues frame b; buf, if not nil, holds b and goes back to
// scratch once b is written.
func (c *Conn) enqueue(b []byte, buf *[]byte) error {
	put := func() {
		if buf != nil {
			scratch.Put(buf)
		}
	}
	if len(b)-lenSize > c.cfg.MaxFrame {
		put()
		return fmt.Errorf("%w: %d bytes to node %q, at most %d", ErrFrameTooLarge, len(b)-lenSize, c.peer, c.cfg.MaxFrame)
	}
	n := int64(len(b))
	c.mu.Lock()
	defer c.mu.Unlock()
	waited := false
	for c.err == nil && !c.closing && c.queued > 0 && c.queued+n > c.cfg.QueueBytes {
		if !waited {
			waited = true
			c.sendWaits.Add(1)
			if c.onWait != nil {
				c.onWait()
			}
		}
		c.room.Wait()
	}
	switch {
	case c.err != nil:
		put()
		return c.err
	case c.closing:
		put()
		return c.wrap("writing to", ErrClosed)
	}
	wasEmpty := len(c.pending) == 0
	if len(b) > copyMax {
		seg := segment{b: b}
		if buf != nil {
			seg.buf, seg.pool = buf, &scratch
		}
		c.pending = append(c.pending, seg)
	} else {
		c.copyLocked(b)
		put()
	}
	c.queued += n
	c.peak = max(c.peak, c.queued)
	c.framesSent.Add(1)
	if wasEmpty {
		c.work.Signal()
	}
	return nil
}

// copyLocked copies small frame b into the current chunk: behind the last
// segment if that is the chunk's, else as a segment of its own, so that the
// small frames between large ones share chunks. A chunk is never grown, so
// its earlier segments stay where they are.
func (c *Conn) copyLocked(b []byte) {
	if c.cur == nil || len(*c.cur)+len(b) > cap(*c.cur) {
		c.cur = chunks.Get().(*[]byte)
		*c.cur = append((*c.cur)[:0], b...)
		c.pending = append(c.pending, segment{b: *c.cur, buf: c.cur, pool: &chunks})
		c.curSeg = len(c.pending) - 1
		return
	}
	start := len(*c.cur)
	*c.cur = append(*c.cur, b...)
	if last := len(c.pending) - 1; c.curSeg == last {
		c.pending[last].b = c.pending[last].b[:len(c.pending[last].b)+len(b)]
		return
	}
	c.pending = append(c.pending, segment{b: (*c.cur)[start:len(*c.cur)]})
	c.curSeg = len(c.pending) - 1
}

func (c *Conn) wrap(op string, err error) error {
	return &Error{Node: c.peer, Addr: c.addr, Op: op, Err: err}
}

// fail ends the connection with err, unless it has ended already, and
// closes the socket, which stops both goroutines.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	c.endLocked(err)
	c.mu.Unlock()
	_ = c.nc.Close()
}

func (c *Conn) endLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	close(c.done)
	c.room.Broadcast()
	c.work.Broadcast()
}

// writeLoop writes what Sends queue: whatever has gathered while it wrote
// the last batch goes out in writes of up to c.chunk bytes (writev over
// the segments, so that senders get room as it goes), and the socket is
// written only when there is something to write, so small frames share
// writes under load and leave at once when idle.
func (c *Conn) writeLoop() {
	defer c.wg.Done()
	defer close(c.writerDone)
	var iov net.Buffers
	for {
		c.mu.Lock()
		for len(c.pending) == 0 && c.err == nil && !c.closing {
			c.work.Wait()
		}
		if c.err != nil {
			c.mu.Unlock()
			return
		}
		if len(c.pending) == 0 { // closing, and everything is written
			c.mu.Unlock()
			bye := appendBye(nil)
			if err := c.write(net.Buffers{bye}); err != nil {
				c.fail(c.wrap("writing to", err))
				return
			}
			c.bytesSent.Add(int64(len(bye)))
			if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			return
		}
		segs := c.pending
		c.pending, c.spare = c.spare[:0], nil
		c.cur, c.curSeg = nil, -1 // the chunk goes with segs
		c.mu.Unlock()
		for i, off := 0, 0; i < len(segs); {
			iov = iov[:0]
			n := 0
			for i < len(segs) && n < c.chunk {
				rest := segs[i].b[off:]
				take := min(len(rest), c.chunk-n)
				iov = append(iov, rest[:take])
				n += take
				if off += take; off == len(segs[i].b) {
					i, off = i+1, 0
				}
			}
			if err := c.write(iov); err != nil {
				c.fail(c.wrap("writing to", err))
				return
			}
			c.bytesSent.Add(int64(n))
			c.mu.Lock()
			c.queued -= int64(n)
			c.room.Broadcast()
			c.mu.Unlock()
		}
		for i, s := range segs {
			if s.pool != nil {
				*s.buf = s.b[:0]
				s.pool.Put(s.buf)
			}
			segs[i] = segment{}
		}
		c.mu.Lock()
		c.spare = segs[:0]
		c.mu.Unlock()
	}
}

func (c *Conn) write(iov net.Buffers) error {
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout)); err != nil {
		return err
	}
	_, err := iov.WriteTo(c.nc)
	return err
}

// readLoop reads frames and delivers their messages until the peer says
// goodbye or the connection ends.
func (c *Conn) readLoop() {
	defer c.wg.Done()
	defer close(c.readerDone)
	var buf []byte
	for {
		var hdr [lenSize]byte
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			c.readFailed(err)
			return
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if n == 0 || uint64(n) > uint64(c.cfg.MaxFrame) {
			c.fail(c.wrap("reading from", fmt.Errorf("%w: a frame of %d bytes (at most %d)", ErrCorrupt, n, c.cfg.MaxFrame)))
			return
		}
		var err error
		if buf, err = readBody(c.br, buf, int(n)); err != nil {
			c.readFailed(err)
			return
		}
		c.bytesRecv.Add(int64(n) + lenSize)
		switch buf[0] {
		case frameBye:
			c.mu.Lock()
			c.endLocked(c.wrap("reading from", ErrPeerClosed))
			c.mu.Unlock()
			_ = c.nc.Close() // what we had queued for the peer is dropped: it is going away
			return
		case frameHello:
			c.fail(c.wrap("reading from", fmt.Errorf("%w: a second hello", ErrCorrupt)))
			return
		}
		frames := c.framesRecv.Add(1)
		if buf[0] == frameControl {
			job, payload, err := decodeControl(buf)
			if err != nil {
				c.fail(c.wrap("reading from", fmt.Errorf("frame %d: %w", frames, err)))
				return
			}
			if c.cfg.Control != nil {
				c.cfg.Control(c, job, payload)
			}
			continue
		}
		e, err := decodeBody(buf, c.cfg.Codecs)
		if err != nil {
			c.fail(c.wrap("reading from", fmt.Errorf("frame %d: %w", frames, err)))
			return
		}
		c.cfg.Deliver(c, e)
	}
}

// readFailed ends the connection on a read error, unless this side is
// closing it (or it has ended), in which case the error is the closing.
func (c *Conn) readFailed(err error) {
	c.mu.Lock()
	quiet := c.closing || c.err != nil
	c.mu.Unlock()
	if quiet {
		return
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("the connection ended without a goodbye: %w", err)
	}
	c.fail(c.wrap("reading from", err))
}

// readBody reads a frame body of n bytes into buf, reusing its capacity.
// A body larger than buf grows buf as its bytes arrive, so that a length
// prefix alone cannot make the reader allocate.
func readBody(r io.Reader, buf []byte, n int) ([]byte, error) {
	if n <= cap(buf) {
		buf = buf[:n]
		_, err := io.ReadFull(r, buf)
		return buf, err
	}
	buf = buf[:0]
	for len(buf) < n {
		step := min(n-len(buf), max(len(buf), growStep))
		buf = slices.Grow(buf, step)
		m, err := io.ReadFull(r, buf[len(buf):len(buf)+step])
		buf = buf[:len(buf)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
	return buf, nil
}

// Close closes the connection cleanly: no new Sends; what is queued is
// written, then a goodbye, and Close waits for the peer to close its side
// (at most WriteTimeout) before it closes the socket. Messages the peer
// sent until then are delivered. Close returns once both goroutines have
// ended. It returns nil for a clean close (the peer's goodbye included),
// else the connection's failure. It may be called more than once.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

func (c *Conn) close() error {
	c.mu.Lock()
	c.closing = true
	c.work.Broadcast()
	c.room.Broadcast()
	c.mu.Unlock()
	<-c.writerDone
	t := time.NewTimer(c.cfg.WriteTimeout)
	select {
	case <-c.readerDone:
	case <-t.C:
	}
	t.Stop()
	_ = c.nc.Close()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(c.wrap("writing to", ErrClosed))
	if errors.Is(c.err, ErrClosed) || errors.Is(c.err, ErrPeerClosed) {
		return nil
	}
	return c.err
}

// Abort ends the connection at once: what is queued is dropped, the socket
// closed, and Abort returns once both goroutines have ended. For a peer
// found dead (membership's verdict), where Close would wait for it.
func (c *Conn) Abort() {
	c.fail(c.wrap("writing to", ErrClosed))
	c.wg.Wait()
}
