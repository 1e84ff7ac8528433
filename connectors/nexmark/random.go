package nexmark

import "math"

// Random is java.util.Random: the 48-bit linear congruential generator the
// JDK's javadoc specifies, reproduced bit for bit, so that a Random seeded
// as Beam seeds one draws what the JVM draws. Beam's generator makes a
// fresh one per event, seeded with the event's id (Generator.Event).
//
// The zero value is a Random seeded with 0x5DEECE66D (the scrambled state
// of seed 0 is 0x5DEECE66D ^ 0x5DEECE66D = 0): use NewRandom. A Random is
// a small value: copying one forks its sequence. It is not safe for
// concurrent use.
type Random struct {
	seed uint64 // the 48-bit state
}

const (
	randMultiplier = 0x5DEECE66D
	randAddend     = 0xB
	randMask       = 1<<48 - 1
)

// NewRandom returns the Random of new java.util.Random(seed).
func NewRandom(seed int64) Random {
	var r Random
	r.SetSeed(seed)
	return r
}

// SetSeed is Random.setSeed: the state becomes (seed ^ 0x5DEECE66D)
// masked to 48 bits.
func (r *Random) SetSeed(seed int64) {
	r.seed = (uint64(seed) ^ randMultiplier) & randMask
}

// Next is Random.next(bits), 1 ≤ bits ≤ 32: it advances the state and
// returns its top bits as a signed 32-bit int (for bits = 32 it may be
// negative).
func (r *Random) Next(bits int) int32 {
	r.seed = (r.seed*randMultiplier + randAddend) & randMask
	return int32(r.seed >> (48 - bits))
}

// NextInt is Random.nextInt(): 32 random bits, of either sign.
func (r *Random) NextInt() int32 { return r.Next(32) }

// NextIntn is Random.nextInt(bound): uniform in [0, bound), by the JDK's
// rejection loop (a power-of-two bound takes the high bits). It panics if
// bound is not positive, as Java throws IllegalArgumentException.
func (r *Random) NextIntn(bound int32) int32 {
	if bound <= 0 {
		panic("nexmark: Random.NextIntn: bound must be positive")
	}
	x := r.Next(31)
	m := bound - 1
	if bound&m == 0 {
		return int32((int64(bound) * int64(x)) >> 31)
	}
	// for (int u = r; u - (r = u % bound) + m < 0; u = next(31)); the
	// sum overflows int32 for the values the loop rejects.
	for u := x; ; u = r.Next(31) {
		x = u % bound
		if u-x+m >= 0 {
			return x
		}
	}
}

// NextLong is Random.nextLong(): ((long) next(32) << 32) + next(32), the
// second draw sign-extended.
func (r *Random) NextLong() int64 {
	hi := int64(r.Next(32))
	lo := int64(r.Next(32))
	return hi<<32 + lo
}

// NextBoolean is Random.nextBoolean().
func (r *Random) NextBoolean() bool { return r.Next(1) != 0 }

// NextFloat is Random.nextFloat(): next(24) / 2^24.
func (r *Random) NextFloat() float32 { return float32(r.Next(24)) / (1 << 24) }

// NextDouble is Random.nextDouble(): (((long) next(26) << 27) + next(27))
// × 2^-53, in [0, 1).
func (r *Random) NextDouble() float64 {
	hi := int64(r.Next(26))
	lo := int64(r.Next(27))
	return float64(hi<<27+lo) * (1.0 / (1 << 53))
}

// javaRound is Java's Math.round(double): the closest long, ties toward
// positive infinity; NaN is 0 and values beyond the long range saturate.
func javaRound(x float64) int64 {
	if math.IsNaN(x) {
		return 0
	}
	f := math.Floor(x)
	if x-f >= 0.5 {
		f++
	}
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}
