package checkpoints

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
)

// Op is an operation on a store, for fault injection.
type Op int

const (
	OpPut Op = iota
	OpGet
	OpList
	OpDelete
)

var opNames = [...]string{"put", "get", "list", "delete"}

func (o Op) String() string { return opNames[o] }

// Fault is what an injector makes of one operation.
type Fault int

const (
	// NoFault lets the operation through.
	NoFault Fault = iota
	// FailBefore fails the operation before it reaches the store.
	FailBefore
	// FailAfter carries out the operation and then reports a failure: the
	// writer cannot tell that its write landed (a lost acknowledgement).
	FailAfter
	// Torn writes the first half of a Put's data and reports a failure: a
	// store without atomic writes, a crash in the middle of one.
	Torn
	// Slow delays the operation by Faulty.Delay before carrying it out.
	Slow
)

var faultNames = [...]string{"none", "fail-before", "fail-after", "torn", "slow"}

func (f Fault) String() string { return faultNames[f] }

// ErrInjected is wrapped by every injected failure.
var ErrInjected = errors.New("injected fault")

// An Injector decides the fault of each operation. It must be safe for
// concurrent use.
type Injector interface {
	Fault(op Op, key string) Fault
}

// InjectorFunc is a function as an Injector.
type InjectorFunc func(op Op, key string) Fault

func (f InjectorFunc) Fault(op Op, key string) Fault { return f(op, key) }

// Faulty is a store with injected faults.
type Faulty struct {
	Store
	Inject Injector
	// Delay carries out a Slow fault: a sleep on the real clock in chaos
	// tests, on the virtual one under the deterministic executor. Nil: a
	// Slow fault delays nothing.
	Delay func(ctx context.Context) error

	mu       sync.Mutex
	injected map[Fault]int
}

// Injected returns how many faults of each kind were injected.
func (f *Faulty) Injected() map[Fault]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[Fault]int{}
	for k, v := range f.injected {
		out[k] = v
	}
	return out
}

func (f *Faulty) fault(ctx context.Context, op Op, key string) (Fault, error) {
	k := NoFault
	if f.Inject != nil {
		k = f.Inject.Fault(op, key)
	}
	if k == Torn && op != OpPut {
		k = FailBefore
	}
	if k != NoFault {
		f.mu.Lock()
		if f.injected == nil {
			f.injected = map[Fault]int{}
		}
		f.injected[k]++
		f.mu.Unlock()
	}
	switch k {
	case FailBefore:
		return k, fmt.Errorf("%s %s: %w (%s)", op, key, ErrInjected, k)
	case Slow:
		if f.Delay != nil {
			if err := f.Delay(ctx); err != nil {
				return k, err
			}
		}
	}
	return k, nil
}

func after(k Fault, op Op, key string, err error) error {
	if err == nil && (k == FailAfter || k == Torn) {
		return fmt.Errorf("%s %s: %w (%s)", op, key, ErrInjected, k)
	}
	return err
}

func (f *Faulty) Put(ctx context.Context, key string, data []byte, exclusive bool) error {
	k, err := f.fault(ctx, OpPut, key)
	if err != nil {
		return err
	}
	if k == Torn {
		data = data[:len(data)/2]
	}
	return after(k, OpPut, key, f.Store.Put(ctx, key, data, exclusive))
}

func (f *Faulty) Get(ctx context.Context, key string) ([]byte, error) {
	k, err := f.fault(ctx, OpGet, key)
	if err != nil {
		return nil, err
	}
	d, err := f.Store.Get(ctx, key)
	if err = after(k, OpGet, key, err); err != nil {
		return nil, err
	}
	return d, nil
}

func (f *Faulty) List(ctx context.Context, prefix string) ([]string, error) {
	k, err := f.fault(ctx, OpList, prefix)
	if err != nil {
		return nil, err
	}
	keys, err := f.Store.List(ctx, prefix)
	if err = after(k, OpList, prefix, err); err != nil {
		return nil, err
	}
	return keys, nil
}

func (f *Faulty) Delete(ctx context.Context, key string) error {
	k, err := f.fault(ctx, OpDelete, key)
	if err != nil {
		return err
	}
	return after(k, OpDelete, key, f.Store.Delete(ctx, key))
}

func (f *Faulty) String() string { return "faulty " + f.Store.String() }

// Random injects one of kinds into each operation of ops with probability
// p, from a source seeded by seed: the same sequence of operations gets the
// same faults.
func Random(seed uint64, p float64, ops []Op, kinds []Fault) Injector {
	r := &random{rng: rand.New(rand.NewPCG(seed, 0xfa017)), p: p, kinds: kinds, ops: map[Op]bool{}}
	for _, o := range ops {
		r.ops[o] = true
	}
	return r
}

type random struct {
	mu    sync.Mutex
	rng   *rand.Rand
	p     float64
	ops   map[Op]bool
	kinds []Fault
}

func (r *random) Fault(op Op, _ string) Fault {
	if !r.ops[op] || len(r.kinds) == 0 {
		return NoFault
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rng.Float64() >= r.p {
		return NoFault
	}
	return r.kinds[r.rng.IntN(len(r.kinds))]
}
