package nats_test

import (
	"testing"

	"github.com/sluice-data/sluice/connectors/nats"
	"github.com/sluice-data/sluice/stages"
)

// TestOpenAt: a reader's position, passed to OpenAt, opens its partition
// after the last record it handed over, with the bound of a source read
// until empty kept: messages published after the first open are not read.
func TestOpenAt(t *testing.T) {
	url := startServer(t)
	js := client(t, url)
	createStream(t, js, "ORDERS", "orders.>")
	publish(t, js, orders(200))
	src := nats.Source[order](url, "ORDERS", nats.UntilEmpty())
	r := open(t, src, 0)
	first := readUntil(t, r, 70)
	pos, err := r.(stages.Positioner).Position()
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	publish(t, js, orders(250)[200:]) // after the bound
	splits, err := src.Splits(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	again, err := src.(stages.Seeker[order]).OpenAt(ctxT(t), stages.Instance{Job: t.Name(), Run: "r1", Stage: "nats", Parallelism: 1}, splits[0], pos)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	rest, _, err := drain(t, again)
	if err != nil {
		t.Fatal(err)
	}
	all := byID(append(first, rest...))
	if len(all) != 200 || all[0].ID != orders(1)[0].ID || all[199].ID != orders(200)[199].ID {
		t.Fatalf("%d records before the position (%s) and %d after, want 200 in all, each once", len(first), pos, len(rest))
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID == all[i-1].ID {
			t.Fatalf("order %d read twice", all[i].ID)
		}
	}
}
