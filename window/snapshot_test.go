package window

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

func appendVals(dst []byte, v *[]int64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(*v)))
	for _, x := range *v {
		dst = binary.AppendVarint(dst, x)
	}
	return dst
}

func decodeVals(src []byte, v *[]int64) ([]byte, error) {
	n, k := binary.Uvarint(src)
	if k <= 0 || n > uint64(len(src)) {
		return src, errors.New("bad length")
	}
	src = src[k:]
	*v = nil
	for range n {
		x, k := binary.Varint(src)
		if k <= 0 {
			return src, errors.New("bad value")
		}
		*v, src = append(*v, x), src[k:]
	}
	return src, nil
}

// TestKeyStateEncoding: a key's state with open windows, a closed one, a
// late phase, holds and processing-time deadlines decodes to a state that
// encodes to the same bytes and goes on as the original; every truncation
// is refused, and so is decoding into a key that holds state.
func TestKeyStateEncoding(t *testing.T) {
	s := Fixed(10).Trigger(AfterWatermark().Early(AfterProcessingTime(5)).Late(AfterCount(2))).
		AllowedLateness(20 * time.Nanosecond).Accumulating().OutputAt(Earliest)
	a, b := newRun(t, s), newRun(t, s)
	a.clock(1).input(1, 2, 12, 25).watermark(11).input(3).clock(30).input(31)
	enc := a.d.AppendKeyState(nil, &a.st, appendVals)
	clone := a.st.Clone()
	rest, err := b.d.DecodeKeyState(append(enc, 0xEE), &b.st, decodeVals)
	if err != nil || !bytes.Equal(rest, []byte{0xEE}) {
		t.Fatalf("decoding: rest %x, %v", rest, err)
	}
	if again := b.d.AppendKeyState(nil, &b.st, appendVals); !bytes.Equal(again, enc) {
		t.Fatalf("re-encoded\n %x\nwant %x", again, enc)
	}
	a.out.Reset()
	b.wm, b.pt = a.wm, a.pt
	a.input(4, 13).clock(40).watermark(60)
	b.input(4, 13).clock(40).watermark(60)
	if got, want := paneStrings(b.out.Panes), paneStrings(a.out.Panes); got != want {
		t.Fatalf("restored key's panes\n%s\nwant\n%s", got, want)
	}
	if got := a.d.AppendKeyState(nil, &clone, appendVals); !bytes.Equal(got, enc) {
		t.Fatal("the clone changed with the original")
	}
	for n := range len(enc) {
		var st KeyState[[]int64]
		if _, err := b.d.DecodeKeyState(enc[:n], &st, decodeVals); err == nil {
			t.Fatalf("decoding %d of %d bytes: no error", n, len(enc))
		}
	}
	if _, err := b.d.DecodeKeyState(enc, &b.st, decodeVals); !errors.Is(err, ErrKeyState) {
		t.Fatalf("decoding into a key with state: %v", err)
	}
}

func paneStrings(ps []Pane[[]int64]) string {
	var b bytes.Buffer
	for _, p := range ps {
		b.WriteString(p.Window.String() + " " + p.Info.Timing.String() + " ")
		b.WriteString(p.Timestamp.String())
		for _, v := range p.Value {
			b.WriteString(" " + Time(v).String())
		}
		b.WriteString("\n")
	}
	return b.String()
}
