// Package nexmark is the Nexmark benchmark's event generator, as Apache
// Beam's Java generator makes it (sdks/java/testing/nexmark, Generator and
// the model generators), bit for bit: the same persons, auctions and bids,
// with the same ids, strings, prices and event times, for the same
// configuration. Beam's own output is the test oracle
// (../shared/conformance/nexmark).
//
//	p := stages.NewPipeline("q0")
//	events := nexmark.Read(p, nexmark.DefaultConfig())
//
// # How an event is made
//
// Event N (the number of events made before it; the event number is
// Config.FirstEventNumber + N) is a pure function of N and the Config:
//
//   - its event number is permuted within groups of OutOfOrderGroupSize
//     (by e·953 mod the group size), which gives its id
//     (FirstEventID + the permuted number) and its time;
//   - its time is BaseTime plus the sum of the inter-event delays before
//     that number: the delay is 1/rate, times NumEventGenerators, and
//     steps through the rate's shape (Sine or Square) over RatePeriodSec;
//   - its kind is the id modulo 50: 1 person, 3 auctions, 46 bids;
//   - its fields are drawn, in Beam's order, from a java.util.Random
//     (Random) seeded with its id. Ids of the persons and auctions that
//     auctions and bids refer to follow from the id, a few of them hot.
//
// So any range of events can be made anywhere, in any order: splits are
// ranges of N, a reader's checkpoint position is the next N, and the same
// events come out at any parallelism.
//
// # Differences from Beam
//
// This package is one Beam Generator over the whole event range; Beam's
// bounded source instead splits the range into NumEventGenerators
// generators with distinct id ranges and parallel timelines
// (GeneratorConfig.split). Their union holds the same ids with other
// times. Wall-clock pacing (isRateLimited), wall-clock event time and the
// randomly delayed "LATE" events of Beam's unbounded source, which are not
// deterministic, are not reproduced: Event.WallclockOffset says when a
// paced source would emit an event. Proportions, fixed in Beam, are
// configurable (as in Flink's port), with Beam's as the default.
//
// Beam's arithmetic is Java's: integer overflow wraps alike, Math.round
// is reproduced; Math.pow and Math.cos are Go's math.Pow and math.Cos,
// which may differ from the JVM's in the last bit (no price of the
// vectors does).
package nexmark
