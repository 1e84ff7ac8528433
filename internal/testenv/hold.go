package testenv

import (
	"context"
	"io"

	"github.com/sluice-data/sluice/stages"
)

// HoldSource is an unbounded source of one split for streaming tests: it
// gives the IDs 0 to N-1, 200 at a time with no data for three polls
// between (so that checkpoints complete, and publish, while it reads),
// then has no data until Release is closed, then ends.
type HoldSource struct {
	N       int64
	Release chan struct{}
}

func (s HoldSource) Splits(context.Context) ([]stages.Split, error) {
	return []stages.Split{{Index: 0, Records: s.N, Bytes: -1, Desc: "hold", Unbounded: true}}, nil
}

func (s HoldSource) Open(context.Context, stages.Instance, stages.Split) (stages.Reader[int64], error) {
	return &holdReader{s: s}, nil
}

type holdReader struct {
	s     HoldSource
	next  int64
	polls int
}

func (r *holdReader) Read(buf []int64) (int, error) {
	if r.next == r.s.N {
		select {
		case <-r.s.Release:
			return 0, io.EOF
		default:
			return 0, stages.ErrNoData
		}
	}
	if r.polls++; r.polls%4 != 0 {
		return 0, stages.ErrNoData
	}
	n := 0
	for ; n < min(len(buf), 200) && r.next < r.s.N; n++ {
		buf[n] = r.next
		r.next++
	}
	return n, nil
}

func (r *holdReader) Close() error { return nil }
