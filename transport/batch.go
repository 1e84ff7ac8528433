package transport

import (
	"fmt"
	"sync"

	"github.com/sluice-data/sluice/plan"
)

// BatchCodec encodes the batches of one record type T without its caller
// knowing T: plan.Type's Wire codec, by which the executor finds an edge's.
// Make one with CodecOf. A BatchCodec is safe for concurrent use.
type BatchCodec = plan.WireCodec

// CodecOf returns the BatchCodec of T, built on codec.For[T]. It returns
// For's error (wrapping codec.ErrUnsupported, naming the field) for a type
// with no encoding. Like For, it is meant for graph-build time.
func CodecOf[T any]() (BatchCodec, error) { return plan.TypeOf[T]().Wire() }

// MustCodecOf is CodecOf that panics with CodecOf's error.
func MustCodecOf[T any]() BatchCodec {
	c, err := CodecOf[T]()
	if err != nil {
		panic(err)
	}
	return c
}

// EdgeKey names an edge of a running job as its receiver sees it: the
// receiving vertex and its input (plan.Edge's To and Input). Both ends of a
// connection find a Data message's codec by it.
type EdgeKey struct {
	Job    uint64
	Vertex int
	Input  int
}

func (k EdgeKey) String() string {
	return fmt.Sprintf("job %d vertex %d input %d", k.Job, k.Vertex, k.Input)
}

// Codecs finds the BatchCodec of an edge. Codec returns nil for an edge it
// does not know. Its methods are called from the goroutines of every
// connection at once.
type Codecs interface {
	Codec(k EdgeKey) BatchCodec
}

func lookup(cs Codecs, k EdgeKey) BatchCodec {
	if cs == nil {
		return nil
	}
	return cs.Codec(k)
}

// CodecTable is a Codecs the executor fills: the codec of every edge of a
// job that crosses nodes, set before the job's tasks start (a receiver's
// task announces credit only once it has started, so no Data frame of the
// job arrives before its codecs are set) and dropped when the job ends.
// The zero CodecTable is empty and ready to use.
type CodecTable struct {
	mu sync.RWMutex
	m  map[EdgeKey]BatchCodec
}

// Set makes c the codec of edge k.
func (t *CodecTable) Set(k EdgeKey, c BatchCodec) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[EdgeKey]BatchCodec{}
	}
	t.m[k] = c
}

// DropJob forgets the codecs of job.
func (t *CodecTable) DropJob(job uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.m {
		if k.Job == job {
			delete(t.m, k)
		}
	}
}

// Codec returns the codec of edge k, or nil.
func (t *CodecTable) Codec(k EdgeKey) BatchCodec {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.m[k]
}
