package state

import (
	"encoding/binary"
	"errors"
)

var errShort = errors.New("short input")

// intCoder encodes int64 as a zig-zag varint.
type intCoder struct{}

func (intCoder) Append(dst []byte, v *int64) []byte { return binary.AppendVarint(dst, *v) }
func (intCoder) Decode(src []byte, v *int64) ([]byte, error) {
	x, n := binary.Varint(src)
	if n <= 0 {
		return src, errShort
	}
	*v = x
	return src[n:], nil
}

// acc is a test accumulator: a sum and the list of values, so that an
// accumulator sharing memory is covered.
type acc struct {
	Sum  int64
	Vals []int64
}

type accCoder struct{}

func (accCoder) Append(dst []byte, v *acc) []byte {
	dst = binary.AppendVarint(dst, v.Sum)
	dst = binary.AppendUvarint(dst, uint64(len(v.Vals)))
	for _, x := range v.Vals {
		dst = binary.AppendVarint(dst, x)
	}
	return dst
}

func (accCoder) Decode(src []byte, v *acc) ([]byte, error) {
	var err error
	if src, err = (intCoder{}).Decode(src, &v.Sum); err != nil {
		return src, err
	}
	n, k := binary.Uvarint(src)
	if k <= 0 || n > uint64(len(src)) {
		return src, errShort
	}
	src = src[k:]
	v.Vals = make([]int64, n)
	for i := range v.Vals {
		if src, err = (intCoder{}).Decode(src, &v.Vals[i]); err != nil {
			return src, err
		}
	}
	return src, nil
}
