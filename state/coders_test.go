package state

import "github.com/sluice-data/sluice/codec"

// The tests' coders are the codecs stages chooses: codec.For.
var (
	intC = codec.MustFor[int64]()
	accC = codec.MustFor[acc]()
)

// acc is a test accumulator: a sum and the list of values, so that an
// accumulator sharing memory is covered.
type acc struct {
	Sum  int64
	Vals []int64
}
