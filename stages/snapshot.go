package stages

import (
	"fmt"

	"github.com/sluice-data/sluice/codec"
	"github.com/sluice-data/sluice/plan"
)

// stateCodecs are the codecs of a keyed stage's state, its keys' and its
// values', chosen at graph-build time by codec.For (a type registered with
// codec.Register takes its own). A type without an encoding does not stop
// the job from running: its snapshot fails, naming the stage and the field.
type stateCodecs[K, V any] struct {
	k   codec.Codec[K]
	v   codec.Codec[V]
	err error
}

func codecsOf[K, V any](n *plan.Node) stateCodecs[K, V] {
	var c stateCodecs[K, V]
	var errK, errV error
	c.k, errK = codec.For[K]()
	c.v, errV = codec.For[V]()
	if err := firstErr(errK, errV); err != nil {
		c.err = fmt.Errorf("stage %s cannot be checkpointed: %w", n, err)
	}
	return c
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
