package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/sluice-data/sluice/backpressure"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
)

// Envelope is one channel message with its destination: what Send takes
// and what Deliver is given.
type Envelope struct {
	// Job is the executor's number for the job the message belongs to:
	// one connection carries the messages of every job between two nodes.
	Job uint64
	// Epoch is the job's attempt that sent the message (it grows with each
	// restore): a receiver drops messages of an epoch older than its own,
	// which fences a failed attempt's late output.
	Epoch uint64
	// To is the receiving instance.
	To core.Addr
	// Msg is the message, addressed as core delivers it to To: for Data,
	// EndOfInput, Watermark, Idle, Time and Barrier, Input and Channel
	// name To's input and the sending instance; for Credit, Edge names the
	// sender's output edge and Channel the instance that grants.
	Msg core.Msg
}

// Frame types: a message frame's type is its core.Kind (Data … Credit); the
// two connection frames have the high bit set.
const (
	frameHello byte = 0x80
	frameBye   byte = 0x81
	// frameControl carries a control message of a job: the job (uvarint),
	// then the payload, opaque to the transport, to the end of the frame.
	frameControl byte = 0x82
)

// Batch flags of a Data frame.
const (
	batchPresent byte = 1 << iota // the message carries a batch
	batchTimes                    // the batch has event times (Times != nil)
	batchData                     // the batch has rows (Data != nil)
	batchFlags   = batchPresent | batchTimes | batchData
)

const (
	lenSize = 4 // the length prefix
	// HardMaxFrame bounds Config.MaxFrame: a frame's length must fit the
	// prefix with room to spare, and no frame should be this large.
	HardMaxFrame = 1 << 30
	// helloMax bounds a hello frame, so a stranger's first bytes cannot
	// make a node allocate.
	helloMax = 4096
)

var (
	// ErrCorrupt is wrapped by every error decoding a malformed frame.
	ErrCorrupt = errors.New("transport: corrupt frame")
	// ErrNoCodec is wrapped when a Data frame's edge has no BatchCodec.
	ErrNoCodec = errors.New("transport: no batch codec for the edge")
	// ErrFrameTooLarge is wrapped when a frame exceeds MaxFrame.
	ErrFrameTooLarge = errors.New("transport: frame too large")
)

// AppendFrame appends e's frame to dst: the length prefix and the body (the
// package doc gives the layout). A Data message's batch is encoded with the
// codec that codecs holds for its edge (e.Job, e.To.Vertex, e.Msg.Input).
// A message of a kind that does not travel on a channel, a negative index
// or count, a batch on a message other than Data, or a batch the codec
// refuses is an error; dst is then returned as it was.
func AppendFrame(dst []byte, e Envelope, codecs Codecs) ([]byte, error) {
	out, err := appendFrame(dst, e, codecs)
	if err != nil {
		return dst, err
	}
	return out, nil
}

func appendFrame(dst []byte, e Envelope, codecs Codecs) ([]byte, error) {
	m := &e.Msg
	if !m.Kind.OnWire() {
		return nil, fmt.Errorf("transport: a %s message does not travel between nodes", m.Kind)
	}
	for _, f := range [...]struct {
		name string
		v    int
	}{{"vertex", e.To.Vertex}, {"instance", e.To.Instance}, {"edge", m.Edge}, {"input", m.Input},
		{"channel", m.Channel}, {"records", m.Records}, {"backlog", m.Backlog}} {
		if f.v < 0 {
			return nil, fmt.Errorf("transport: %s message with negative %s %d", m.Kind, f.name, f.v)
		}
	}
	if m.Batch != nil && m.Kind != core.Data {
		return nil, fmt.Errorf("transport: a %s message carries a batch", m.Kind)
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(m.Kind))
	dst = binary.AppendUvarint(dst, e.Job)
	dst = binary.AppendUvarint(dst, e.Epoch)
	dst = binary.AppendUvarint(dst, uint64(e.To.Vertex))
	dst = binary.AppendUvarint(dst, uint64(e.To.Instance))
	dst = binary.AppendUvarint(dst, uint64(m.Edge))
	dst = binary.AppendUvarint(dst, uint64(m.Input))
	dst = binary.AppendUvarint(dst, uint64(m.Channel))
	dst = binary.AppendUvarint(dst, uint64(m.Records))
	dst = binary.AppendVarint(dst, m.Bytes)
	dst = binary.AppendVarint(dst, m.Time)
	dst = binary.AppendUvarint(dst, uint64(m.Backlog))
	dst = binary.AppendVarint(dst, int64(m.Grant.Credits))
	dst = binary.AppendVarint(dst, m.Grant.Batches)
	dst = binary.AppendVarint(dst, m.Grant.Records)
	dst = binary.AppendVarint(dst, m.Grant.Bytes)
	dst = binary.AppendUvarint(dst, m.Checkpoint)
	if m.Kind == core.Data {
		var err error
		if dst, err = appendBatch(dst, e, codecs); err != nil {
			return nil, err
		}
	}
	n := len(dst) - start - lenSize
	if n > HardMaxFrame {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrFrameTooLarge, n, HardMaxFrame)
	}
	binary.LittleEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

func appendBatch(dst []byte, e Envelope, codecs Codecs) ([]byte, error) {
	b := e.Msg.Batch
	if b == nil {
		return append(dst, 0), nil
	}
	if b.Port < 0 {
		return nil, fmt.Errorf("transport: batch for port %d", b.Port)
	}
	flags := batchPresent
	if b.Times != nil {
		flags |= batchTimes
	}
	if b.Data != nil {
		flags |= batchData
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(b.Port))
	if b.Times != nil {
		dst = binary.AppendUvarint(dst, uint64(len(b.Times)))
		for _, t := range b.Times {
			dst = binary.LittleEndian.AppendUint64(dst, uint64(t))
		}
	}
	if b.Data == nil {
		return dst, nil
	}
	k := e.key()
	c := lookup(codecs, k)
	if c == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoCodec, k)
	}
	out, err := c.AppendBatch(dst, b.Data)
	if err != nil {
		return nil, fmt.Errorf("transport: encoding a batch for %s: %w", k, err)
	}
	return out, nil
}

// key is the edge of a Data message, as the receiver sees it.
func (e Envelope) key() EdgeKey { return EdgeKey{Job: e.Job, Vertex: e.To.Vertex, Input: e.Msg.Input} }

// DecodeFrame decodes one message frame, length prefix included, that
// fills frame. A Data frame's batch is decoded with the codec that codecs
// holds for its edge. A malformed frame is an error wrapping ErrCorrupt, a
// batch of another schema one wrapping codec.ErrMismatch that names the
// type, a batch for an edge without a codec one wrapping ErrNoCodec.
// DecodeFrame never panics on its input, and allocates at most a small
// multiple of it.
func DecodeFrame(frame []byte, codecs Codecs) (Envelope, error) {
	if len(frame) < lenSize {
		return Envelope{}, fmt.Errorf("%w: %d bytes, the length prefix takes %d", ErrCorrupt, len(frame), lenSize)
	}
	n := binary.LittleEndian.Uint32(frame)
	if uint64(n) != uint64(len(frame)-lenSize) {
		return Envelope{}, fmt.Errorf("%w: length prefix says %d bytes, %d follow", ErrCorrupt, n, len(frame)-lenSize)
	}
	return decodeBody(frame[lenSize:], codecs)
}

// decodeBody decodes a message frame's body (the bytes after the prefix).
func decodeBody(body []byte, codecs Codecs) (Envelope, error) {
	if len(body) == 0 {
		return Envelope{}, fmt.Errorf("%w: empty frame", ErrCorrupt)
	}
	kind := core.Kind(body[0])
	if !kind.OnWire() {
		return Envelope{}, fmt.Errorf("%w: frame type %#02x is no message", ErrCorrupt, body[0])
	}
	d := decoder{b: body[1:]}
	var e Envelope
	m := &e.Msg
	m.Kind = kind
	e.Job = d.uvarint("job")
	e.Epoch = d.uvarint("epoch")
	e.To.Vertex = d.int("vertex")
	e.To.Instance = d.int("instance")
	m.Edge = d.int("edge")
	m.Input = d.int("input")
	m.Channel = d.int("channel")
	m.Records = d.int("records")
	m.Bytes = d.varint("bytes")
	m.Time = d.varint("time")
	m.Backlog = d.int("backlog")
	credits := d.varint("credits")
	if credits < math.MinInt || credits > math.MaxInt {
		d.fail("credits", "%d overflows int", credits)
	}
	m.Grant = backpressure.Grant{Credits: int(credits), Batches: d.varint("batches"),
		Records: d.varint("grant records"), Bytes: d.varint("grant bytes")}
	m.Checkpoint = d.uvarint("checkpoint")
	if d.err != nil {
		return Envelope{}, fmt.Errorf("%s frame: %w", kind, d.err)
	}
	if kind == core.Data {
		b, err := decodeBatch(&d, e, codecs)
		if err != nil {
			return Envelope{}, err
		}
		m.Batch = b
	}
	if len(d.b) != 0 {
		return Envelope{}, fmt.Errorf("%w: %s frame has %d bytes after its fields", ErrCorrupt, kind, len(d.b))
	}
	return e, nil
}

func decodeBatch(d *decoder, e Envelope, codecs Codecs) (*plan.Batch, error) {
	flags := d.byte("batch flags")
	if d.err == nil && flags&^batchFlags != 0 {
		d.fail("batch flags", "unknown bits in %#02x", flags)
	}
	if d.err == nil && flags&batchPresent == 0 {
		if flags != 0 {
			d.fail("batch flags", "%#02x without a batch", flags)
		}
		return nil, d.wrapped()
	}
	b := &plan.Batch{Port: d.int("port")}
	if d.err == nil && flags&batchTimes != 0 {
		n := d.int("times")
		if d.err == nil && n > len(d.b)/8 {
			d.fail("times", "%d event times, %d bytes left", n, len(d.b))
		}
		if d.err == nil {
			b.Times = make([]int64, n)
			for i := range b.Times {
				b.Times[i] = int64(binary.LittleEndian.Uint64(d.b[8*i:]))
			}
			d.b = d.b[8*n:]
		}
	}
	if d.err != nil {
		return nil, d.wrapped()
	}
	if flags&batchData == 0 {
		return b, nil
	}
	k := e.key()
	c := lookup(codecs, k)
	if c == nil {
		return nil, fmt.Errorf("data frame: %w: %s", ErrNoCodec, k)
	}
	data, rows, err := c.DecodeBatch(d.b)
	if err != nil {
		return nil, fmt.Errorf("data frame for %s: %w", k, err)
	}
	d.b = nil
	if b.Times != nil && len(b.Times) != rows {
		return nil, fmt.Errorf("%w: data frame for %s: %d event times for %d rows", ErrCorrupt, k, len(b.Times), rows)
	}
	b.Data = data
	return b, nil
}

// decoder reads a frame's fields; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(field, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrCorrupt, field, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) wrapped() error {
	if d.err == nil {
		return nil
	}
	return fmt.Errorf("data frame: %w", d.err)
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail(field, "truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// uvarint reads a minimal uvarint.
func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) > 0 && d.b[0] < 0x80 {
		v := d.b[0]
		d.b = d.b[1:]
		return uint64(v)
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.fail(field, "truncated")
		return 0
	case n < 0:
		d.fail(field, "varint overflows 64 bits")
		return 0
	case d.b[n-1] == 0:
		d.fail(field, "varint not minimal")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// varint reads a zigzag varint, minimal.
func (d *decoder) varint(field string) int64 {
	u := d.uvarint(field)
	return int64(u>>1) ^ -int64(u&1)
}

// int reads a uvarint that must fit a non-negative int.
func (d *decoder) int(field string) int {
	v := d.uvarint(field)
	if v > math.MaxInt {
		d.fail(field, "%d overflows int", v)
		return 0
	}
	return int(v)
}

// hello is the first frame each side of a connection sends.
type hello struct {
	node, build string
}

// helloMagic opens a hello frame's body after its type.
const helloMagic = "SLDP"

// wireVersion is the frame format's version, sent in the hello.
const wireVersion = 1

func appendHello(dst []byte, h hello) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, frameHello)
	dst = append(dst, helloMagic...)
	dst = binary.AppendUvarint(dst, wireVersion)
	dst = binary.AppendUvarint(dst, uint64(len(h.node)))
	dst = append(dst, h.node...)
	dst = binary.AppendUvarint(dst, uint64(len(h.build)))
	dst = append(dst, h.build...)
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(dst)-start-lenSize))
	return dst
}

// decodeHello decodes a hello frame's body.
func decodeHello(body []byte) (hello, error) {
	if len(body) < 1+len(helloMagic) || body[0] != frameHello || string(body[1:1+len(helloMagic)]) != helloMagic {
		return hello{}, fmt.Errorf("%w: not a sluice data connection (no hello)", ErrCorrupt)
	}
	d := decoder{b: body[1+len(helloMagic):]}
	if v := d.uvarint("version"); d.err == nil && v != wireVersion {
		return hello{}, fmt.Errorf("%w: the peer speaks frame format %d, this build %d", ErrCorrupt, v, wireVersion)
	}
	str := func(field string) string {
		n := d.int(field)
		if d.err != nil {
			return ""
		}
		if n > len(d.b) {
			d.fail(field, "%d bytes, %d left", n, len(d.b))
			return ""
		}
		s := string(d.b[:n])
		d.b = d.b[n:]
		return s
	}
	h := hello{node: str("node"), build: str("build")}
	if d.err == nil && len(d.b) != 0 {
		d.fail("hello", "%d bytes after its fields", len(d.b))
	}
	if d.err != nil {
		return hello{}, fmt.Errorf("hello: %w", d.err)
	}
	return h, nil
}

func appendBye(dst []byte) []byte { return append(dst, 1, 0, 0, 0, frameBye) }

// appendControl appends a control frame of job carrying payload.
func appendControl(dst []byte, job uint64, payload []byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, frameControl)
	dst = binary.AppendUvarint(dst, job)
	dst = append(dst, payload...)
	n := len(dst) - start - lenSize
	if n > HardMaxFrame {
		return dst[:start], fmt.Errorf("%w: a control message of %d bytes, at most %d", ErrFrameTooLarge, n, HardMaxFrame)
	}
	binary.LittleEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// decodeControl decodes a control frame's body.
func decodeControl(body []byte) (job uint64, payload []byte, err error) {
	d := decoder{b: body[1:]}
	job = d.uvarint("job")
	if d.err != nil {
		return 0, nil, d.err
	}
	return job, d.b, nil
}
