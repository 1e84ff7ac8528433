package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/backpressure"
	"github.com/sluice-data/sluice/codec"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
)

// testRow is a record with a fast-path part (fixed fields, a string, a
// time) and a general one (a slice of strings).
type testRow struct {
	ID    int64
	Name  string
	Score float64
	At    time.Time
	Tags  []string
}

// otherRow has testRow's field types but another name for a field: another
// schema.
type otherRow struct {
	ID     int64
	Label  string
	Score  float64
	At     time.Time
	Labels []string
}

var testKey = EdgeKey{Job: 7, Vertex: 3, Input: 1}

func testCodecs() *CodecTable {
	var t CodecTable
	t.Set(testKey, MustCodecOf[testRow]())
	return &t
}

func randRows(r *rand.Rand, n int) []testRow {
	rows := make([]testRow, n)
	for i := range rows {
		rows[i] = testRow{ID: r.Int64(), Name: strings.Repeat("x", r.IntN(40)), Score: r.NormFloat64(),
			At: time.Unix(r.Int64N(1<<34), r.Int64N(1e9)).UTC()}
		if r.IntN(3) == 0 {
			rows[i].Tags = []string{"a", strings.Repeat("b", r.IntN(5))}
		}
	}
	return rows
}

// randEnvelope returns a message of a random channel kind with random
// fields; Data messages (half of them) carry a batch for testKey or none.
func randEnvelope(r *rand.Rand) Envelope {
	kinds := []core.Kind{core.Data, core.Data, core.Data, core.EndOfInput, core.Watermark, core.Idle,
		core.Time, core.Barrier, core.Credit}
	small := func() int { return r.IntN(1 << uint(r.IntN(31))) }
	signed := func() int64 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return math.MinInt64
		}
		return r.Int64() - math.MaxInt64/2
	}
	e := Envelope{Job: testKey.Job, Epoch: r.Uint64N(1 << uint(r.IntN(64))),
		To: core.Addr{Vertex: testKey.Vertex, Instance: small()},
		Msg: core.Msg{Kind: kinds[r.IntN(len(kinds))], Edge: small(), Input: testKey.Input, Channel: small(),
			Records: small(), Bytes: signed(), Time: signed(), Backlog: small(),
			Grant:      backpressure.Grant{Credits: int(signed()), Batches: signed(), Records: signed(), Bytes: signed()},
			Checkpoint: r.Uint64()}}
	if e.Msg.Kind == core.Data && r.IntN(5) > 0 {
		n := r.IntN(50)
		if r.IntN(8) == 0 {
			n = 200 + r.IntN(600) // a frame over copyMax, queued by reference
		}
		b := &plan.Batch{Port: r.IntN(3)}
		if r.IntN(4) > 0 {
			b.Data = randRows(r, n)
		}
		if r.IntN(2) == 0 {
			b.Times = make([]int64, n)
			for i := range b.Times {
				b.Times[i] = signed()
			}
		}
		e.Msg.Batch = b
	}
	return e
}

// sameEnvelope reports whether got is want after a trip over the wire: the
// same fields, a nil and an empty []testRow being alike.
func sameEnvelope(got, want Envelope) bool {
	gb, wb := got.Msg.Batch, want.Msg.Batch
	got.Msg.Batch, want.Msg.Batch = nil, nil
	if got != want || (gb == nil) != (wb == nil) {
		return false
	}
	if gb == nil {
		return true
	}
	if gb.Port != wb.Port || !reflect.DeepEqual(gb.Times, wb.Times) || (gb.Data == nil) != (wb.Data == nil) {
		return false
	}
	if gb.Data == nil {
		return true
	}
	g, w := gb.Data.([]testRow), wb.Data.([]testRow)
	if len(g) != len(w) {
		return false
	}
	for i := range g {
		if g[i].ID != w[i].ID || g[i].Name != w[i].Name || g[i].Score != w[i].Score || !g[i].At.Equal(w[i].At) ||
			!reflect.DeepEqual(g[i].Tags, w[i].Tags) {
			return false
		}
	}
	return true
}

func TestFrameRoundTrip(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	codecs := testCodecs()
	for i := range 1000 {
		e := randEnvelope(r)
		frame, err := AppendFrame([]byte("prefix"), e, codecs)
		if err != nil {
			t.Fatalf("seed %d, message %d (%s): AppendFrame: %v", seed, i, e.Msg, err)
		}
		frame = frame[len("prefix"):]
		got, err := DecodeFrame(frame, codecs)
		if err != nil {
			t.Fatalf("seed %d, message %d (%s): DecodeFrame: %v", seed, i, e.Msg, err)
		}
		if !sameEnvelope(got, e) {
			t.Fatalf("seed %d, message %d: got\n%+v\nwant\n%+v", seed, i, got, e)
		}
		again, err := AppendFrame(nil, got, codecs)
		if err != nil || !bytes.Equal(again, frame) {
			t.Fatalf("seed %d, message %d: encoding the decoded message gave other bytes (err %v)", seed, i, err)
		}
		// Every truncation of the body (prefix fixed up) is an error.
		for cut := lenSize; cut < len(frame); cut += 1 + len(frame)/50 {
			short := binary.LittleEndian.AppendUint32(nil, uint32(cut-lenSize))
			short = append(short, frame[lenSize:cut]...)
			if _, err := DecodeFrame(short, codecs); err == nil {
				t.Fatalf("seed %d, message %d: a frame cut to %d of %d bytes decoded", seed, i, cut, len(frame))
			}
		}
	}
}

func dataEnvelope(rows any) Envelope {
	return Envelope{Job: testKey.Job, To: core.Addr{Vertex: testKey.Vertex, Instance: 2},
		Msg: core.Msg{Kind: core.Data, Input: testKey.Input, Channel: 1, Records: 2, Batch: &plan.Batch{Data: rows}}}
}

func TestAppendFrameRefuses(t *testing.T) {
	codecs := testCodecs()
	neg := dataEnvelope(nil)
	neg.To.Instance = -1
	wm := Envelope{Msg: core.Msg{Kind: core.Watermark, Batch: &plan.Batch{}}}
	other := dataEnvelope([]testRow{{}})
	other.Msg.Input = 9
	for _, tc := range []struct {
		name string
		e    Envelope
		want string
	}{
		{"not a channel kind", Envelope{Msg: core.Msg{Kind: core.Start}}, "a start message does not travel"},
		{"negative instance", neg, "negative instance -1"},
		{"batch on a watermark", wm, "a watermark message carries a batch"},
		{"edge without a codec", other, "no batch codec for the edge: job 7 vertex 3 input 9"},
		{"rows of another type", dataEnvelope([]int{1}), "a batch of []int on an edge of []transport.testRow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := AppendFrame(dst, tc.e, codecs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
			if string(got) != "keep" {
				t.Fatalf("dst became %q", got)
			}
		})
	}
}

func TestDecodeFrameSchemaMismatchNamesType(t *testing.T) {
	frame, err := AppendFrame(nil, dataEnvelope([]testRow{{ID: 1}, {ID: 2}}), testCodecs())
	if err != nil {
		t.Fatal(err)
	}
	var other CodecTable
	other.Set(testKey, MustCodecOf[otherRow]())
	_, err = DecodeFrame(frame, &other)
	var mm *codec.MismatchError
	if !errors.As(err, &mm) || !strings.Contains(err.Error(), "transport.otherRow") {
		t.Fatalf("got %v, want a *codec.MismatchError naming transport.otherRow", err)
	}
	if _, err := DecodeFrame(frame, nil); !errors.Is(err, ErrNoCodec) {
		t.Fatalf("with no codecs: got %v, want ErrNoCodec", err)
	}
}

func TestDecodeFrameCorrupt(t *testing.T) {
	codecs := testCodecs()
	good, err := AppendFrame(nil, Envelope{Msg: core.Msg{Kind: core.Watermark, Time: 5}}, codecs)
	if err != nil {
		t.Fatal(err)
	}
	frame := func(body ...byte) []byte {
		return append(binary.LittleEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	// The fields of a message frame, all zero, after its type.
	zeros := make([]byte, 16)
	// A Data frame's fields for testKey: job 7, vertex 3, input 1.
	dataFields := []byte{7, 0, 3, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	dataWith := func(tail ...byte) []byte {
		return frame(append(append([]byte{byte(core.Data)}, dataFields...), tail...)...)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"empty", nil, "the length prefix takes 4"},
		{"prefix too long", append(slicesClone(good), 0), "length prefix says"},
		{"empty body", frame(), "empty frame"},
		{"control type", frame(frameBye), "is no message"},
		{"unknown type", frame(0x42), "is no message"},
		{"truncated", frame(byte(core.Watermark), 0, 0), "truncated"},
		{"non-minimal varint", frame(append([]byte{byte(core.Watermark), 0x80, 0x00}, zeros[2:]...)...), "not minimal"},
		{"varint overflow", frame(append([]byte{byte(core.Idle)}, bytes.Repeat([]byte{0xff}, 11)...)...), "overflows 64 bits"},
		{"index over int", frame(append([]byte{byte(core.Idle), 0}, append([]byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, zeros[3:]...)...)...), "overflows int"},
		{"trailing byte", append(slicesClone(good[:lenSize]), append(slicesClone(good[lenSize:]), 0)...), ""},
		{"data without flags", dataWith(), "batch flags: truncated"},
		{"unknown flags", dataWith(0x08), "unknown bits"},
		{"times past the end", dataWith(batchPresent|batchTimes, 0, 2, 1, 2, 3), "2 event times, 3 bytes left"},
		{"bytes after no batch", dataWith(0, 1), "1 bytes after its fields"},
		{"rows that are no batch", dataWith(batchPresent|batchData, 0, 1, 2, 3), "codec: corrupt input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.frame
			if tc.name == "trailing byte" {
				binary.LittleEndian.PutUint32(f, uint32(len(f)-lenSize))
				tc.want = "1 bytes after its fields"
			}
			_, err := DecodeFrame(f, codecs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("%v wraps neither ErrCorrupt nor codec.ErrCorrupt", err)
			}
		})
	}
	// The times and the rows must agree.
	e := dataEnvelope(randRows(rand.New(rand.NewPCG(1, 2)), 3))
	e.Msg.Batch.Times = []int64{1, 2}
	f, err := AppendFrame(nil, e, codecs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeFrame(f, codecs); err == nil || !strings.Contains(err.Error(), "2 event times for 3 rows") {
		t.Fatalf("times for fewer rows: got %v", err)
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

func TestHelloRoundTrip(t *testing.T) {
	h := hello{node: "node-a-1733", build: "build-42"}
	f := appendHello(nil, h)
	got, err := decodeHello(f[lenSize:])
	if err != nil || got != h {
		t.Fatalf("got %+v, %v", got, err)
	}
	for cut := lenSize; cut < len(f); cut++ {
		if _, err := decodeHello(f[lenSize:cut]); err == nil {
			t.Fatalf("a hello cut to %d bytes decoded", cut)
		}
	}
}

// FuzzDecodeFrame: a frame either decodes to a message that encodes back to
// the same bytes (the format has one encoding per message), or is an error;
// never a panic.
func FuzzDecodeFrame(f *testing.F) {
	codecs := testCodecs()
	r := rand.New(rand.NewPCG(3, 4))
	for range 40 {
		frame, err := AppendFrame(nil, randEnvelope(r), codecs)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, frameBye})
	f.Add(appendHello(nil, hello{node: "a", build: "b"}))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, byte(core.Data)})
	f.Fuzz(func(t *testing.T, frame []byte) {
		e, err := DecodeFrame(frame, codecs)
		if err != nil {
			return
		}
		again, err := AppendFrame(nil, e, codecs)
		if err != nil {
			t.Fatalf("a decoded message does not encode: %v", err)
		}
		if !bytes.Equal(again, frame) {
			t.Fatalf("decoded and encoded again:\n%x\nwas\n%x", again, frame)
		}
	})
}

func ExampleAppendFrame() {
	var codecs CodecTable
	key := EdgeKey{Job: 1, Vertex: 2, Input: 0}
	codecs.Set(key, MustCodecOf[testRow]())
	e := Envelope{Job: 1, To: core.Addr{Vertex: 2, Instance: 0},
		Msg: core.Msg{Kind: core.Data, Input: 0, Channel: 3, Records: 1, Batch: &plan.Batch{Data: []testRow{{ID: 9, Name: "nine"}}}}}
	frame, err := AppendFrame(nil, e, &codecs)
	if err != nil {
		panic(err)
	}
	got, err := DecodeFrame(frame, &codecs)
	if err != nil {
		panic(err)
	}
	fmt.Println(got.To, got.Msg, got.Msg.Batch.Data.([]testRow)[0].Name)
	// Output: v2/0 data in0 ch3 edge0 1 records t=0 nine
}
