package nexmark_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/connectors/nexmark"
)

func newGenerator(t *testing.T, cfg nexmark.Config) *nexmark.Generator {
	t.Helper()
	g, err := nexmark.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestTimeline pins the inter-event delays and a few timestamps of each
// rate shape, worked out by hand from Beam's formulas (NEXMARK.md §3.1-2).
func TestTimeline(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(*nexmark.Config)
		delays []int64
		at     map[int64]int64 // event number → ms after BaseTime
	}{
		{"constant, 1 generator", func(c *nexmark.Config) { c.NumEventGenerators = 1 },
			[]int64{100}, map[int64]int64{0: 0, 9: 0, 10: 1, 12_345: 1234}},
		{"constant, 100 generators", func(c *nexmark.Config) {},
			[]int64{10_000}, map[int64]int64{0: 0, 1: 10, 1000: 10_000}},
		{"constant, per minute", func(c *nexmark.Config) {
			c.NumEventGenerators, c.RateUnit, c.FirstEventRate, c.NextEventRate = 1, nexmark.PerMinute, 7, 7
		},
			// (60e6 + 3) / 7 = 8571429 µs
			[]int64{8_571_429}, map[int64]int64{1: 8571, 2: 17_142, 7: 60_000}},
		{"square", func(c *nexmark.Config) { c.NumEventGenerators, c.RateShape, c.NextEventRate = 1, nexmark.Square, 5000 },
			// steps of 300 s: 3,000,000 events 100 µs apart, then
			// 1,500,000 200 µs apart; an epoch is 4.5 M events, 600 s.
			[]int64{100, 200}, map[int64]int64{1: 0, 10: 1, 3_000_000: 300_000, 3_000_005: 300_001,
				4_500_000: 600_000, 4_500_010: 600_001, 7_500_000: 900_000}},
		{"sine", func(c *nexmark.Config) { c.NumEventGenerators, c.RateShape, c.NextEventRate = 1, nexmark.Sine, 5000 },
			// rates 7500 + 2500·cos(2πi/10) rounded: 10000, 9523, 8273,
			// 6727, 5477, 5000, 5477, 6727, 8273, 9523; steps of 60 s.
			[]int64{100, 105, 121, 149, 183, 200, 183, 149, 121, 105},
			// 600,000 events in the first step; the second starts at 60 s
			// (571,428 events of 105 µs: 59,999.94 ms).
			map[int64]int64{599_999: 59_999, 600_000: 60_000, 600_001: 60_000, 600_010: 60_001}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := nexmark.DefaultConfig()
			tc.edit(&cfg)
			g := newGenerator(t, cfg)
			if got := g.InterEventDelays(); !slices.Equal(got, tc.delays) {
				t.Errorf("delays %v µs, want %v", got, tc.delays)
			}
			for e, want := range tc.at {
				if got := g.Timestamp(e) - nexmark.BaseTime; got != want {
					t.Errorf("event %d at %d ms, want %d", e, got, want)
				}
			}
			prev := g.Timestamp(0)
			for e := range int64(20_000) {
				if ts := g.Timestamp(e * 997); ts < prev {
					t.Fatalf("event %d at %d, before %d", e*997, ts, prev)
				} else {
					prev = ts
				}
			}
		})
	}
}

// TestOutOfOrder: groups of OutOfOrderGroupSize permute the ids and times
// within the group, the watermark is never after a later event's time,
// and Disorder bounds how far an event falls behind the greatest time
// before it.
func TestOutOfOrder(t *testing.T) {
	for _, size := range []int64{1, 4, 10, 33} {
		cfg := nexmark.DefaultConfig()
		cfg.NumEvents = 5000
		cfg.OutOfOrderGroupSize = size
		cfg.RateShape, cfg.NextEventRate, cfg.RatePeriodSec = nexmark.Sine, 1000, 2
		g := newGenerator(t, cfg)
		events := generated(t, cfg)
		ids := map[int64]bool{}
		disordered := 0
		greatest := int64(0)
		for i, e := range events {
			ids[e.ID] = true
			if e.ID/size != int64(i)/size {
				t.Fatalf("size %d: event %d has id %d, outside its group", size, i, e.ID)
			}
			if e.ID != int64(i) {
				disordered++
			}
			if behind := time.Duration(greatest-e.Time) * time.Millisecond; behind > g.Disorder() {
				t.Fatalf("size %d: event %d is %v behind an earlier one; Disorder is %v", size, i, behind, g.Disorder())
			}
			greatest = max(greatest, e.Time)
			for _, later := range events[i:min(len(events), i+int(size)+1)] {
				if later.Time < e.Watermark {
					t.Fatalf("size %d: event %d's watermark %d is after event %d's time %d", size, i, e.Watermark, later.N, later.Time)
				}
			}
		}
		if len(ids) != len(events) {
			t.Errorf("size %d: %d distinct ids of %d events", size, len(ids), len(events))
		}
		// 953 ≡ 1 (mod 4): groups of 4 are not permuted (NEXMARK.md §3.3).
		if wantDisorder := size != 1 && size != 4; (disordered > 0) != wantDisorder {
			t.Errorf("size %d: %d events out of order", size, disordered)
		}
	}
}

// TestFirstEvents checks NEXMARK.md §6's observations, which hold without
// the vector files.
func TestFirstEvents(t *testing.T) {
	cfg := nexmark.DefaultConfig()
	cfg.NumEvents = 1000
	events := generated(t, cfg)
	if p := events[0].NewPerson; p == nil || p.ID != 1000 || p.Name != "Peter Jones" || p.EmailAddress != "nhd@xcat.com" {
		t.Errorf("event 0 is %+v, want person 1000 Peter Jones", events[0].NewPerson)
	}
	for i := 1; i <= 3; i++ {
		if a := events[i].NewAuction; a == nil || a.ID != int64(999+i) {
			t.Errorf("event %d is %+v, want auction %d", i, a, 999+i)
		}
	}
	if b := events[4].Bid; b == nil || b.Auction != 1000 || b.Bidder != 1001 {
		t.Errorf("event 4 is %+v, want a bid on auction 1000 by bidder 1001", b)
	}
	for _, e := range events {
		var dt int64
		switch e.Kind() {
		case nexmark.KindPerson:
			dt = e.NewPerson.DateTime
		case nexmark.KindAuction:
			dt = e.NewAuction.DateTime
			if a := e.NewAuction; a.Expires <= a.DateTime || a.Reserve < a.InitialBid || a.Category < 10 || a.Category > 14 {
				t.Errorf("event %d: auction %+v", e.N, a)
			}
		case nexmark.KindBid:
			dt = e.Bid.DateTime
			if p := e.Bid.Price; p < 100 || p > 100_000_000 {
				t.Errorf("event %d: price %d", e.N, p)
			}
		default:
			t.Fatalf("event %d has no entity", e.N)
		}
		if dt != e.Time {
			t.Errorf("event %d: dateTime %d, event time %d", e.N, dt, e.Time)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*nexmark.Config)
		want []string // every problem reported, in order
	}{
		{"default", func(*nexmark.Config) {}, nil},
		{"zero events is Beam's maximum", func(c *nexmark.Config) { c.NumEvents = 0 }, nil},
		{"zero", func(c *nexmark.Config) { *c = nexmark.Config{} }, []string{"NumEventGenerators 0", "FirstEventRate 0", "NextEventRate 0",
			"RatePeriodSec 0", "OutOfOrderGroupSize 0", "PersonProportion 0", "AuctionProportion 0",
			"HotAuctionRatio 0", "HotSellersRatio 0", "HotBiddersRatio 0"}},
		{"negative", func(c *nexmark.Config) {
			c.NumEvents, c.FirstEventID, c.FirstEventNumber, c.AvgBidByteSize, c.NumActivePeople, c.Splits = -1, -2, -3, -4, -5, -6
		}, []string{"NumEvents -1", "FirstEventID -2", "FirstEventNumber -3", "AvgBidByteSize -4", "NumActivePeople -5", "Splits -6"}},
		{"shape", func(c *nexmark.Config) { c.RateShape, c.RateUnit = 7, 9 }, []string{"RateShape RateShape(7)", "RateUnit RateUnit(9)"}},
		{"too fast to change", func(c *nexmark.Config) { c.NumEventGenerators, c.FirstEventRate = 1, 10_000_000 }, []string{"no microsecond"}},
		{"period too short", func(c *nexmark.Config) {
			c.NumEventGenerators, c.FirstEventRate, c.NextEventRate, c.RatePeriodSec = 1000, 1, 2, 1
		},
			[]string{"RatePeriodSec 1 is too short"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := nexmark.DefaultConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, nexmark.ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("%d problems reported, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("problem %d is %q, want it to mention %q", i, lines[i], w)
				}
			}
			if _, err := nexmark.New(cfg); !errors.Is(err, nexmark.ErrConfig) {
				t.Errorf("New: error %v, want ErrConfig", err)
			}
		})
	}
}

func TestMaxEvents(t *testing.T) {
	cfg := nexmark.DefaultConfig()
	cfg.NumEvents = 0
	// Long.MAX_VALUE / (50 · 500)
	if got, want := cfg.MaxEvents(), int64(9223372036854775807/25000); got != want {
		t.Errorf("MaxEvents %d, want %d", got, want)
	}
}

func TestParseRateShape(t *testing.T) {
	for s, want := range map[string]nexmark.RateShape{"sine": nexmark.Sine, "SQUARE": nexmark.Square} {
		if got, err := nexmark.ParseRateShape(s); err != nil || got != want {
			t.Errorf("ParseRateShape(%q) = %v, %v", s, got, err)
		}
		if want.String() != strings.ToLower(s) {
			t.Errorf("%v.String() = %q", want, want.String())
		}
	}
	if _, err := nexmark.ParseRateShape("zipf"); !errors.Is(err, nexmark.ErrConfig) {
		t.Errorf("zipf: %v", err)
	}
}

// BenchmarkEvents measures how fast a generator makes events.
func BenchmarkEvents(b *testing.B) {
	g, err := nexmark.New(nexmark.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]nexmark.Event, 1024)
	b.ReportAllocs()
	var n int64
	for b.Loop() {
		g.Fill(buf, n%(g.Events()-1024))
		n += int64(len(buf))
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
