package nexmark

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/sluice-data/sluice/stages"
)

// RateShape is how the event rate moves between Config.FirstEventRate and
// Config.NextEventRate over Config.RatePeriodSec (Beam's
// NexmarkUtils.RateShape). It matters only when the two rates differ.
type RateShape int

const (
	// Sine steps the rate through ten values of a cosine from the first
	// rate to the next and back: Beam's default.
	Sine RateShape = iota
	// Square spends half the period at each rate.
	Square
)

// String returns "sine" or "square".
func (s RateShape) String() string {
	switch s {
	case Sine:
		return "sine"
	case Square:
		return "square"
	}
	return fmt.Sprintf("RateShape(%d)", int(s))
}

// ParseRateShape reads "sine" or "square" (any case).
func ParseRateShape(s string) (RateShape, error) {
	switch strings.ToLower(s) {
	case "sine":
		return Sine, nil
	case "square":
		return Square, nil
	}
	return 0, fmt.Errorf("%w: rate shape %q is not sine or square", ErrConfig, s)
}

// steps is the number of rates the shape cycles through.
func (s RateShape) steps() int64 {
	if s == Square {
		return 2
	}
	return 10
}

// RateUnit is the unit of Config.FirstEventRate and Config.NextEventRate
// (Beam's NexmarkUtils.RateUnit).
type RateUnit int

const (
	// PerSecond counts events per second: Beam's default.
	PerSecond RateUnit = iota
	// PerMinute counts events per minute.
	PerMinute
)

// String returns "per-second" or "per-minute".
func (u RateUnit) String() string {
	switch u {
	case PerSecond:
		return "per-second"
	case PerMinute:
		return "per-minute"
	}
	return fmt.Sprintf("RateUnit(%d)", int(u))
}

// micros is the unit in microseconds.
func (u RateUnit) micros() int64 {
	if u == PerMinute {
		return 60_000_000
	}
	return 1_000_000
}

// Fixed constants of Beam's generator (GeneratorConfig, the model
// generators).
const (
	FirstPersonID   = 1000
	FirstAuctionID  = 1000
	FirstCategoryID = 10
	NumCategories   = 5
	// BaseTime is Beam's event time of event 0 without wall-clock event
	// time: 2015-07-15T00:00:00Z in unix milliseconds.
	BaseTime = 1_436_918_400_000

	personIDLead    = 10
	auctionIDLead   = 10
	hotSellerBatch  = 100 // Beam's HOT_SELLER_RATIO: the batch whose first person is the hot seller
	hotAuctionBatch = 100 // HOT_AUCTION_RATIO
	hotBidderBatch  = 100 // HOT_BIDDER_RATIO
	minStringLength = 3
)

// Limits of Config fields, beyond Beam's own (Java int fields, a divisor
// that must not be zero): they keep the arithmetic in range.
const (
	// MaxByteSize bounds the Avg*ByteSize fields.
	MaxByteSize = 1 << 24
	// MaxSplits bounds Config.Splits.
	MaxSplits = 1 << 20
	// DefaultSplitEvents is the split size the default split count aims at.
	DefaultSplitEvents = 16 << 10
	// DefaultMaxSplits caps the default split count.
	DefaultMaxSplits = 64
)

// Config is the generator's configuration: the fields of Beam's
// NexmarkConfiguration that the generator reads, with Beam's names and
// meanings, and the arguments Beam passes to GeneratorConfig (base time,
// first event id and number). The zero value is invalid; DefaultConfig is
// Beam's default.
type Config struct {
	// NumEvents is the number of events (Beam's numEvents); 0 asks for
	// Beam's "unbounded" maximum, MaxEvents.
	NumEvents int64
	// NumEventGenerators is the number of generators Beam would run side
	// by side. Each event's delay is multiplied by it, so that that many
	// generators together make the configured rate: one generator's
	// events, which this source gives, are NumEventGenerators times as
	// far apart in event time.
	NumEventGenerators int
	// RateShape is Sine (Beam's default) or Square.
	RateShape RateShape
	// FirstEventRate and NextEventRate are the overall rates, in events
	// per RateUnit, at the start of the period and half-way through.
	FirstEventRate, NextEventRate int
	// RateUnit is PerSecond (the default) or PerMinute.
	RateUnit RateUnit
	// RatePeriodSec is the period of the rate's shape, in seconds.
	RatePeriodSec int
	// OutOfOrderGroupSize permutes events within groups of that many
	// event numbers (Beam's outOfOrderGroupSize); 1 keeps them in order.
	// Group sizes g with 953 ≡ 1 (mod g) (2, 4, 7, 8, 14, 17, ...) permute
	// nothing, as in Beam.
	OutOfOrderGroupSize int64
	// BaseTime is the event time of event number 0, in unix milliseconds.
	BaseTime int64
	// FirstEventID is added to every event id (Beam's firstEventId).
	FirstEventID int64
	// FirstEventNumber is the event number of the first event (Beam's
	// firstEventNumber): a generator made by Beam's splitAtEventId starts
	// past 0.
	FirstEventNumber int64
	// PersonProportion, AuctionProportion and BidProportion are the shares
	// of each kind in every run of their sum of event ids: Beam's
	// constants 1, 3 and 46 (configurable in Flink's port).
	PersonProportion, AuctionProportion, BidProportion int
	// AvgPersonByteSize, AvgAuctionByteSize and AvgBidByteSize are the
	// sizes the entities' extra strings pad to on average.
	AvgPersonByteSize, AvgAuctionByteSize, AvgBidByteSize int
	// HotAuctionRatio, HotSellersRatio and HotBiddersRatio: a bid is on a
	// hot auction with probability 1 - 1/HotAuctionRatio, an auction by a
	// hot seller with 1 - 1/HotSellersRatio, a bid by a hot bidder with
	// 1 - 1/HotBiddersRatio.
	HotAuctionRatio, HotSellersRatio, HotBiddersRatio int
	// NumInFlightAuctions is how many recent auctions a bid picks from,
	// and sets the auctions' lengths.
	NumInFlightAuctions int
	// NumActivePeople is how many recent people a seller or bidder is
	// picked from.
	NumActivePeople int
	// Splits is the number of splits, contiguous ranges of events. Zero
	// picks NumEvents/DefaultSplitEvents rounded up, between 1 and
	// DefaultMaxSplits; more splits than events are reduced to one event
	// each. The events do not depend on it.
	Splits int
}

// DefaultConfig returns Beam's default configuration: 100,000 events of
// 100 generators at 10,000 events a second overall, from BaseTime.
func DefaultConfig() Config {
	return Config{
		NumEvents:           100_000,
		NumEventGenerators:  100,
		RateShape:           Sine,
		FirstEventRate:      10_000,
		NextEventRate:       10_000,
		RateUnit:            PerSecond,
		RatePeriodSec:       600,
		OutOfOrderGroupSize: 1,
		BaseTime:            BaseTime,
		PersonProportion:    1,
		AuctionProportion:   3,
		BidProportion:       46,
		AvgPersonByteSize:   200,
		AvgAuctionByteSize:  500,
		AvgBidByteSize:      100,
		HotAuctionRatio:     2,
		HotSellersRatio:     4,
		HotBiddersRatio:     4,
		NumInFlightAuctions: 100,
		NumActivePeople:     1000,
	}
}

// ErrConfig is wrapped by every problem Config.Validate reports.
var ErrConfig = fmt.Errorf("nexmark: %w", stages.ErrConfig)

// Validate reports every problem of c at once; each wraps ErrConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...)))
	}
	const maxInt32 = math.MaxInt32
	if c.NumEvents < 0 {
		bad("NumEvents %d must not be negative (0 asks for MaxEvents)", c.NumEvents)
	}
	if c.NumEventGenerators < 1 || c.NumEventGenerators > maxInt32 {
		bad("NumEventGenerators %d must be in [1, %d]", c.NumEventGenerators, maxInt32)
	}
	if c.RateShape != Sine && c.RateShape != Square {
		bad("RateShape %v must be Sine or Square", c.RateShape)
	}
	if c.RateUnit != PerSecond && c.RateUnit != PerMinute {
		bad("RateUnit %v must be PerSecond or PerMinute", c.RateUnit)
	}
	if c.FirstEventRate < 1 || c.FirstEventRate > maxInt32 {
		bad("FirstEventRate %d must be in [1, %d]", c.FirstEventRate, maxInt32)
	}
	if c.NextEventRate < 1 || c.NextEventRate > maxInt32 {
		bad("NextEventRate %d must be in [1, %d]", c.NextEventRate, maxInt32)
	}
	if c.RatePeriodSec < 1 || c.RatePeriodSec > maxInt32-10 {
		bad("RatePeriodSec %d must be in [1, %d]", c.RatePeriodSec, maxInt32-10)
	}
	if c.OutOfOrderGroupSize < 1 {
		bad("OutOfOrderGroupSize %d must be at least 1 (1 keeps events in order)", c.OutOfOrderGroupSize)
	}
	if c.FirstEventID < 0 {
		bad("FirstEventID %d must not be negative", c.FirstEventID)
	}
	if c.FirstEventNumber < 0 {
		bad("FirstEventNumber %d must not be negative", c.FirstEventNumber)
	}
	if c.PersonProportion < 1 || c.PersonProportion > 1<<20 {
		bad("PersonProportion %d must be in [1, %d]", c.PersonProportion, 1<<20)
	}
	if c.AuctionProportion < 1 || c.AuctionProportion > 1<<20 {
		bad("AuctionProportion %d must be in [1, %d]", c.AuctionProportion, 1<<20)
	}
	if c.BidProportion < 0 || c.BidProportion > 1<<20 {
		bad("BidProportion %d must be in [0, %d]", c.BidProportion, 1<<20)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"AvgPersonByteSize", c.AvgPersonByteSize}, {"AvgAuctionByteSize", c.AvgAuctionByteSize}, {"AvgBidByteSize", c.AvgBidByteSize}} {
		if f.v < 0 || f.v > MaxByteSize {
			bad("%s %d must be in [0, %d]", f.name, f.v, MaxByteSize)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"HotAuctionRatio", c.HotAuctionRatio}, {"HotSellersRatio", c.HotSellersRatio}, {"HotBiddersRatio", c.HotBiddersRatio}} {
		if f.v < 1 || f.v > maxInt32 {
			bad("%s %d must be in [1, %d] (1: nothing hot)", f.name, f.v, maxInt32)
		}
	}
	if c.NumInFlightAuctions < 0 || c.NumInFlightAuctions > maxInt32 {
		bad("NumInFlightAuctions %d must be in [0, %d]", c.NumInFlightAuctions, maxInt32)
	}
	if c.NumActivePeople < 0 || c.NumActivePeople > maxInt32 {
		bad("NumActivePeople %d must be in [0, %d]", c.NumActivePeople, maxInt32)
	}
	if c.Splits < 0 || c.Splits > MaxSplits {
		bad("Splits %d must be in [0, %d] (0 picks a default)", c.Splits, MaxSplits)
	}
	if len(errs) == 0 {
		if c.NumEvents == 0 && max(c.AvgPersonByteSize, c.AvgAuctionByteSize, c.AvgBidByteSize) == 0 {
			bad("NumEvents 0 asks for MaxEvents, which needs an Avg*ByteSize above 0")
		} else if c.FirstEventNumber > math.MaxInt64-c.MaxEvents() {
			bad("FirstEventNumber %d + %d events overflows", c.FirstEventNumber, c.MaxEvents())
		}
		if _, err := newTimeline(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// totalProportion is Beam's PROPORTION_DENOMINATOR.
func (c Config) totalProportion() int64 {
	return int64(c.PersonProportion) + int64(c.AuctionProportion) + int64(c.BidProportion)
}

// MaxEvents returns the number of events c makes: NumEvents, or for
// NumEvents 0 Beam's maximum, Long.MAX_VALUE / (total proportion × the
// largest average byte size). c must be valid.
func (c Config) MaxEvents() int64 {
	if c.NumEvents != 0 {
		return c.NumEvents
	}
	return math.MaxInt64 / (c.totalProportion() * int64(max(c.AvgPersonByteSize, c.AvgAuctionByteSize, c.AvgBidByteSize)))
}

// splitCount returns the number of splits c makes; c must be valid.
func (c Config) splitCount() int64 {
	events := c.MaxEvents()
	if events == 0 {
		return 0
	}
	n := int64(c.Splits)
	if n == 0 {
		n = min(DefaultMaxSplits, (events-1)/DefaultSplitEvents+1)
	}
	return max(1, min(n, events))
}

// splitRange returns the events [lo, hi) of split i of n over events: the
// first events%n splits have one event more than the others.
func splitRange(events, n, i int64) (lo, hi int64) {
	base, rem := events/n, events%n
	lo = i*base + min(i, rem)
	hi = lo + base
	if i < rem {
		hi++
	}
	return lo, hi
}
