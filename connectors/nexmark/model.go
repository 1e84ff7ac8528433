package nexmark

import (
	"encoding/json"
	"fmt"
	"time"
)

// Person is a person who sells or bids (Beam's model.Person). JSON names
// are Beam's field names; times are unix milliseconds.
type Person struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	EmailAddress string `json:"emailAddress"`
	CreditCard   string `json:"creditCard"`
	City         string `json:"city"`
	State        string `json:"state"`
	DateTime     int64  `json:"dateTime"`
	Extra        string `json:"extra"`
}

// Auction is an item put up for auction (Beam's model.Auction).
type Auction struct {
	ID          int64  `json:"id"`
	ItemName    string `json:"itemName"`
	Description string `json:"description"`
	InitialBid  int64  `json:"initialBid"`
	Reserve     int64  `json:"reserve"`
	DateTime    int64  `json:"dateTime"`
	Expires     int64  `json:"expires"`
	Seller      int64  `json:"seller"`
	Category    int64  `json:"category"`
	Extra       string `json:"extra"`
}

// Bid is a bid on an auction (Beam's model.Bid).
type Bid struct {
	Auction  int64  `json:"auction"`
	Bidder   int64  `json:"bidder"`
	Price    int64  `json:"price"`
	DateTime int64  `json:"dateTime"`
	Extra    string `json:"extra"`
}

// Kind is the kind of an Event's entity.
type Kind int

const (
	// KindNone is the zero Event's: no entity.
	KindNone Kind = iota
	KindPerson
	KindAuction
	KindBid
)

// String returns "person", "auction", "bid" (the JSON "type"), or "none".
func (k Kind) String() string {
	switch k {
	case KindPerson:
		return "person"
	case KindAuction:
		return "auction"
	case KindBid:
		return "bid"
	}
	return "none"
}

// Event is one generated event: exactly one of NewPerson, NewAuction and
// Bid (Beam's model.Event), with what Beam's Generator.NextEvent says
// about it.
type Event struct {
	// N is the number of events the generator made before this one (Beam's
	// eventsCountSoFar): the event number less Config.FirstEventNumber.
	N int64
	// ID is Beam's event id: Config.FirstEventID plus the event number
	// permuted within its out-of-order group. It seeds the event's Random
	// and picks its kind.
	ID int64
	// Time is the event time in unix milliseconds (Beam's
	// NextEvent.eventTimestamp, the adjusted timestamp): the entity's
	// DateTime.
	Time int64
	// Watermark is the least Time of this event and every later one, in
	// unix milliseconds (Beam's NextEvent.watermark).
	Watermark int64
	// WallclockOffset is when, in milliseconds after its first event, a
	// generator pacing itself to the wall clock emits this one (Beam's
	// wallclockTimestamp less wallclockBaseTime): the unpermuted event
	// number's time less Config.BaseTime.
	WallclockOffset int64

	NewPerson  *Person
	NewAuction *Auction
	Bid        *Bid
}

// Kind returns which entity e holds.
func (e Event) Kind() Kind {
	switch {
	case e.NewPerson != nil:
		return KindPerson
	case e.NewAuction != nil:
		return KindAuction
	case e.Bid != nil:
		return KindBid
	}
	return KindNone
}

// EventTime returns e.Time as a time.Time, for stages.EventTime.
func (e Event) EventTime() time.Time { return time.UnixMilli(e.Time) }

// eventHeader is the JSON form's first keys, in the vectors' order.
type eventHeader struct {
	N               int64  `json:"n"`
	ID              int64  `json:"event_id"`
	Time            int64  `json:"event_ts"`
	Watermark       int64  `json:"watermark"`
	WallclockOffset int64  `json:"wallclock_offset_ms"`
	Type            string `json:"type"`
}

// MarshalJSON writes e as one flat object, the format of Beam's generator
// vectors (less their "config" key): n, event_id, event_ts, watermark,
// wallclock_offset_ms and type ("person", "auction" or "bid"), then the
// entity's fields under Beam's names in Beam's constructor order.
func (e Event) MarshalJSON() ([]byte, error) {
	h := eventHeader{N: e.N, ID: e.ID, Time: e.Time, Watermark: e.Watermark, WallclockOffset: e.WallclockOffset,
		Type: e.Kind().String()}
	switch {
	case e.NewPerson != nil:
		return json.Marshal(struct {
			eventHeader
			Person
		}{h, *e.NewPerson})
	case e.NewAuction != nil:
		return json.Marshal(struct {
			eventHeader
			Auction
		}{h, *e.NewAuction})
	case e.Bid != nil:
		return json.Marshal(struct {
			eventHeader
			Bid
		}{h, *e.Bid})
	}
	return json.Marshal(h)
}

// UnmarshalJSON reads what MarshalJSON writes (unknown keys, as "config",
// are ignored).
func (e *Event) UnmarshalJSON(b []byte) error {
	var f struct {
		eventHeader
		// Every entity's fields; the ones two share are decoded once.
		ID           int64  `json:"id"`
		Name         string `json:"name"`
		EmailAddress string `json:"emailAddress"`
		CreditCard   string `json:"creditCard"`
		City         string `json:"city"`
		State        string `json:"state"`
		DateTime     int64  `json:"dateTime"`
		Extra        string `json:"extra"`
		ItemName     string `json:"itemName"`
		Description  string `json:"description"`
		InitialBid   int64  `json:"initialBid"`
		Reserve      int64  `json:"reserve"`
		Expires      int64  `json:"expires"`
		Seller       int64  `json:"seller"`
		Category     int64  `json:"category"`
		Auction      int64  `json:"auction"`
		Bidder       int64  `json:"bidder"`
		Price        int64  `json:"price"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	h := f.eventHeader
	ev := Event{N: h.N, ID: h.ID, Time: h.Time, Watermark: h.Watermark, WallclockOffset: h.WallclockOffset}
	switch h.Type {
	case "person":
		ev.NewPerson = &Person{ID: f.ID, Name: f.Name, EmailAddress: f.EmailAddress, CreditCard: f.CreditCard,
			City: f.City, State: f.State, DateTime: f.DateTime, Extra: f.Extra}
	case "auction":
		ev.NewAuction = &Auction{ID: f.ID, ItemName: f.ItemName, Description: f.Description, InitialBid: f.InitialBid,
			Reserve: f.Reserve, DateTime: f.DateTime, Expires: f.Expires, Seller: f.Seller, Category: f.Category, Extra: f.Extra}
	case "bid":
		ev.Bid = &Bid{Auction: f.Auction, Bidder: f.Bidder, Price: f.Price, DateTime: f.DateTime, Extra: f.Extra}
	case "none":
	default:
		return fmt.Errorf("nexmark: event type %q is not person, auction or bid", h.Type)
	}
	*e = ev
	return nil
}
