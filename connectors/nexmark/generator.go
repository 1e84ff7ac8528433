package nexmark

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// timeline maps event numbers to event times: Beam's GeneratorConfig
// (interEventDelayUs, stepLengthSec, eventsPerEpoch, epochPeriodMs) and
// its timestampAndInterEventDelayUsForEvent.
type timeline struct {
	base   int64
	delays []int64 // µs between one generator's events, per step of the shape
	counts []int64 // events in each step: stepLengthSec·10^6 / delay
	// eventsPerEpoch and epochPeriodMs are one cycle through the steps;
	// zero with a single delay.
	eventsPerEpoch, epochPeriodMs int64
}

// rateToPeriodUs is Beam's RateUnit.rateToPeriodUs: µs between events at
// rate, rounded to nearest.
func rateToPeriodUs(usPerUnit, rate int64) int64 { return (usPerUnit + rate/2) / rate }

func newTimeline(c Config) (*timeline, error) {
	g := int64(c.NumEventGenerators)
	us := c.RateUnit.micros()
	first, next := int64(c.FirstEventRate), int64(c.NextEventRate)
	t := &timeline{base: c.BaseTime}
	switch {
	case first == next:
		t.delays = []int64{rateToPeriodUs(us, first) * g}
		return t, nil
	case c.RateShape == Square:
		t.delays = []int64{rateToPeriodUs(us, first) * g, rateToPeriodUs(us, next) * g}
	default: // Sine
		mid := float64(first+next) / 2.0
		amp := float64(first-next) / 2.0 // may be negative
		n := Sine.steps()
		for i := range n {
			r := (2.0 * math.Pi * float64(i)) / float64(n)
			rate := mid + amp*math.Cos(r)
			t.delays = append(t.delays, rateToPeriodUs(us, javaRound(rate))*g)
		}
	}
	// stepLengthSec is a Java int: (ratePeriodSec + n - 1) / n.
	n := c.RateShape.steps()
	stepUs := ((int64(c.RatePeriodSec) + n - 1) / n) * 1_000_000
	for _, d := range t.delays {
		if d == 0 {
			return nil, fmt.Errorf("%w: a rate of over %d events per %v leaves no microsecond between one generator's events, which a changing rate needs",
				ErrConfig, 2*us/max(1, g), c.RateUnit)
		}
		k := stepUs / d
		t.counts = append(t.counts, k)
		t.eventsPerEpoch += k
		t.epochPeriodMs += (k * d) / 1000
	}
	if t.eventsPerEpoch == 0 {
		return nil, fmt.Errorf("%w: RatePeriodSec %d is too short for a single event at these rates (%d µs apart)",
			ErrConfig, c.RatePeriodSec, t.delays[0])
	}
	return t, nil
}

// at returns the event time of event number e, in unix milliseconds.
func (t *timeline) at(e int64) int64 {
	if len(t.delays) == 1 {
		return t.base + (e*t.delays[0])/1000
	}
	epoch, n := e/t.eventsPerEpoch, e%t.eventsPerEpoch
	var offsetMs int64
	for i, d := range t.delays {
		k := t.counts[i]
		if n < k {
			return t.base + epoch*t.epochPeriodMs + offsetMs + (n*d)/1000
		}
		n -= k
		offsetMs += (k * d) / 1000
	}
	panic("nexmark: eventsPerEpoch is wrong") // unreachable, as in Beam
}

// Generator makes the events of a Config: Beam's Generator, but a pure
// function of the number of events made before (Event), so that any range
// of events can be made anywhere. It is immutable and safe for concurrent
// use.
type Generator struct {
	cfg       Config
	t         *timeline
	maxEvents int64
	total     int64 // Beam's PROPORTION_DENOMINATOR
	person    int64 // PERSON_PROPORTION
	auction   int64 // AUCTION_PROPORTION
}

// New validates cfg and returns its Generator.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t, err := newTimeline(cfg)
	if err != nil {
		return nil, err
	}
	return &Generator{cfg: cfg, t: t, maxEvents: cfg.MaxEvents(), total: cfg.totalProportion(),
		person: int64(cfg.PersonProportion), auction: int64(cfg.AuctionProportion)}, nil
}

// Config returns the generator's configuration.
func (g *Generator) Config() Config { return g.cfg }

// Events returns the number of events the generator makes: Event(n) is
// defined for n in [0, Events()).
func (g *Generator) Events() int64 { return g.maxEvents }

// InterEventDelays returns the microseconds between one generator's
// consecutive events at each step of the rate's shape (Beam's
// interEventDelayUs): one value for a constant rate.
func (g *Generator) InterEventDelays() []int64 { return append([]int64(nil), g.t.delays...) }

// Timestamp returns the event time of event number e in unix
// milliseconds (Beam's timestampAndInterEventDelayUsForEvent).
func (g *Generator) Timestamp(e int64) int64 { return g.t.at(e) }

// Disorder bounds how far an event's time may be behind the time of an
// event made before it: zero for OutOfOrderGroupSize 1, otherwise
// (OutOfOrderGroupSize - 1) times the longest delay between events, in
// whole milliseconds rounded up. The watermark of Read trails the greatest
// time seen by this much, and no event is late.
func (g *Generator) Disorder() time.Duration {
	step := (slices.Max(g.t.delays) + 999) / 1000
	return time.Duration((g.cfg.OutOfOrderGroupSize-1)*step) * time.Millisecond
}

// adjusted returns the event number whose time and id event number e
// takes: e permuted within its group of OutOfOrderGroupSize (Beam's
// nextAdjustedEventNumber).
func (g *Generator) adjusted(e int64) int64 {
	n := g.cfg.OutOfOrderGroupSize
	return (e/n)*n + (e*953)%n
}

// Event returns the event Beam's Generator makes after making n events
// (its eventsCountSoFar = n): event number FirstEventNumber + n. It does
// not check that n is in [0, Events()).
func (g *Generator) Event(n int64) Event {
	e := g.cfg.FirstEventNumber + n
	adjusted := g.adjusted(e)
	group := g.cfg.OutOfOrderGroupSize
	ts := g.t.at(adjusted)
	ev := Event{
		N:               n,
		ID:              g.cfg.FirstEventID + adjusted,
		Time:            ts,
		Watermark:       g.t.at((e / group) * group),
		WallclockOffset: g.t.at(e) - g.t.base,
	}
	rnd := NewRandom(ev.ID)
	switch rem := ev.ID % g.total; {
	case rem < g.person:
		ev.NewPerson = g.newPerson(ev.ID, &rnd, ts)
	case rem < g.person+g.auction:
		ev.NewAuction = g.newAuction(adjusted, ev.ID, &rnd, ts)
	default:
		ev.Bid = g.newBid(ev.ID, &rnd, ts)
	}
	return ev
}

// Fill sets dst[j] to Event(first+j) for every j.
func (g *Generator) Fill(dst []Event, first int64) {
	for j := range dst {
		dst[j] = g.Event(first + int64(j))
	}
}

// The id helpers of Beam's PersonGenerator and AuctionGenerator.

// lastBase0PersonID is the last person id made by event id (base 0).
func (g *Generator) lastBase0PersonID(id int64) int64 {
	epoch, offset := id/g.total, id%g.total
	if offset >= g.person {
		offset = g.person - 1
	}
	return epoch*g.person + offset
}

// lastBase0AuctionID is the last auction id made by event id (base 0):
// for a person, the last auction of the previous epoch.
func (g *Generator) lastBase0AuctionID(id int64) int64 {
	epoch, offset := id/g.total, id%g.total
	switch {
	case offset < g.person:
		epoch--
		offset = g.auction - 1
	case offset >= g.person+g.auction:
		offset = g.auction - 1
	default:
		offset -= g.person
	}
	return epoch*g.auction + offset
}

// nextBase0PersonID picks one of the active people, or a few ahead.
func (g *Generator) nextBase0PersonID(id int64, rnd *Random) int64 {
	people := g.lastBase0PersonID(id) + 1
	active := min(people, int64(g.cfg.NumActivePeople))
	n := nextLong(rnd, active+personIDLead)
	return people - active + n
}

// nextBase0AuctionID picks one of the auctions in flight, or a few ahead.
func (g *Generator) nextBase0AuctionID(id int64, rnd *Random) int64 {
	last := g.lastBase0AuctionID(id)
	lo := max(last-int64(g.cfg.NumInFlightAuctions), 0)
	return lo + nextLong(rnd, last-lo+1+auctionIDLead)
}

// nextLong is Beam's LongGenerator.nextLong: [0, n), skewed for n at or
// above 2^31 - 1 as Beam's is.
func nextLong(rnd *Random, n int64) int64 {
	if n < math.MaxInt32 {
		return int64(rnd.NextIntn(int32(n)))
	}
	x := rnd.NextLong() % n
	if x < 0 {
		x = -x
	}
	return x
}

// nextPrice is Beam's PriceGenerator.nextPrice: cents, 100 to 10^8,
// log-uniform.
func nextPrice(rnd *Random) int64 {
	return javaRound(math.Pow(10.0, rnd.NextDouble()*6.0) * 100.0)
}

var (
	usStates   = []string{"AZ", "CA", "ID", "OR", "WA", "WY"}
	usCities   = []string{"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"}
	firstNames = []string{"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"}
	lastNames  = []string{"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"}
)

// pick returns xs[rnd.nextInt(len(xs))].
func pick(rnd *Random, xs []string) string { return xs[rnd.NextIntn(int32(len(xs)))] }

// nextString is Beam's StringsGenerator.nextString: 3 to maxLength-1
// letters and spaces, trimmed as Java's String.trim does.
func nextString(rnd *Random, maxLength int32) string {
	n := minStringLength + rnd.NextIntn(maxLength-minStringLength)
	b := make([]byte, 0, n)
	for ; n > 0; n-- {
		if rnd.NextIntn(13) == 0 {
			b = append(b, ' ')
		} else {
			b = append(b, byte('a'+rnd.NextIntn(26)))
		}
	}
	return strings.TrimFunc(string(b), func(r rune) bool { return r <= ' ' })
}

// nextExactString is Beam's StringsGenerator.nextExactString: six
// characters from each nextInt(), by a remainder that may be negative (so
// 'H' to 'z').
func nextExactString(rnd *Random, length int32) string {
	b := make([]byte, length)
	var x, left int32
	for i := range b {
		if left == 0 {
			x = rnd.NextInt()
			left = 6
		}
		b[i] = byte('a' + x%26)
		x /= 26
		left--
	}
	return string(b)
}

// nextExtra is Beam's StringsGenerator.nextExtra: a string that pads
// currentSize to averageSize on average, ±20%.
func nextExtra(rnd *Random, currentSize, averageSize int32) string {
	if currentSize > averageSize {
		return ""
	}
	averageSize -= currentSize
	delta := int32(javaRound(float64(averageSize) * 0.2))
	size := averageSize - delta
	if delta != 0 {
		size += rnd.NextIntn(2 * delta)
	}
	return nextExactString(rnd, size)
}

// newPerson is Beam's PersonGenerator.nextPerson.
func (g *Generator) newPerson(id int64, rnd *Random, ts int64) *Person {
	p := &Person{ID: g.lastBase0PersonID(id) + FirstPersonID, DateTime: ts}
	p.Name = pick(rnd, firstNames) + " " + pick(rnd, lastNames)
	p.EmailAddress = nextString(rnd, 7) + "@" + nextString(rnd, 5) + ".com"
	var cc [19]byte
	for i := range 4 {
		v := rnd.NextIntn(10000)
		at := i * 5
		if i > 0 {
			cc[at-1] = ' '
		}
		for j := 3; j >= 0; j-- {
			cc[at+j] = byte('0' + v%10)
			v /= 10
		}
	}
	p.CreditCard = string(cc[:])
	p.City = pick(rnd, usCities)
	p.State = pick(rnd, usStates)
	size := 8 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State)
	p.Extra = nextExtra(rnd, int32(size), int32(g.cfg.AvgPersonByteSize))
	return p
}

// newAuction is Beam's AuctionGenerator.nextAuction for the event of
// adjusted event number adjusted.
func (g *Generator) newAuction(adjusted, id int64, rnd *Random, ts int64) *Auction {
	a := &Auction{ID: g.lastBase0AuctionID(id) + FirstAuctionID, DateTime: ts}
	if rnd.NextIntn(int32(g.cfg.HotSellersRatio)) > 0 {
		a.Seller = (g.lastBase0PersonID(id) / hotSellerBatch) * hotSellerBatch
	} else {
		a.Seller = g.nextBase0PersonID(id, rnd)
	}
	a.Seller += FirstPersonID
	a.Category = FirstCategoryID + int64(rnd.NextIntn(NumCategories))
	a.InitialBid = nextPrice(rnd)
	// nextAuctionLengthMs: a length whose mean is the time until
	// NumInFlightAuctions more auctions have been made.
	ahead := (int64(g.cfg.NumInFlightAuctions) * g.total) / g.auction
	horizon := g.t.at(adjusted+ahead) - ts
	a.Expires = ts + 1 + nextLong(rnd, max(horizon*2, 1))
	a.ItemName = nextString(rnd, 20)
	a.Description = nextString(rnd, 100)
	a.Reserve = a.InitialBid + nextPrice(rnd)
	size := 8 + len(a.ItemName) + len(a.Description) + 8 + 8 + 8 + 8 + 8
	a.Extra = nextExtra(rnd, int32(size), int32(g.cfg.AvgAuctionByteSize))
	return a
}

// newBid is Beam's BidGenerator.nextBid.
func (g *Generator) newBid(id int64, rnd *Random, ts int64) *Bid {
	b := &Bid{DateTime: ts}
	if rnd.NextIntn(int32(g.cfg.HotAuctionRatio)) > 0 {
		b.Auction = (g.lastBase0AuctionID(id) / hotAuctionBatch) * hotAuctionBatch
	} else {
		b.Auction = g.nextBase0AuctionID(id, rnd)
	}
	b.Auction += FirstAuctionID
	if rnd.NextIntn(int32(g.cfg.HotBiddersRatio)) > 0 {
		// The second person of the batch, so that hot bidders are not
		// the hot sellers.
		b.Bidder = (g.lastBase0PersonID(id)/hotBidderBatch)*hotBidderBatch + 1
	} else {
		b.Bidder = g.nextBase0PersonID(id, rnd)
	}
	b.Bidder += FirstPersonID
	b.Price = nextPrice(rnd)
	b.Extra = nextExtra(rnd, 8+8+8+8, int32(g.cfg.AvgBidByteSize))
	return b
}
