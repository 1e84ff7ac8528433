package plan

import (
	"encoding/json"
	"testing"
)

// TestAsideJSON: an Aside goes through JSON (the API, and a cluster's
// workers reporting to their coordinator) with its reason by name.
func TestAsideJSON(t *testing.T) {
	for r := AsideLate; r < numAsideReasons; r++ {
		a := Aside{Reason: r, Rule: "why", Record: "{Key:1}", Port: 1, HasTime: true, EventTime: 5, Watermark: 9, AllowedLateness: 3,
			WindowStart: 0, WindowEnd: 10}
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var back Aside
		if err := json.Unmarshal(b, &back); err != nil || back != a {
			t.Errorf("%s: %s back as %+v (%v)", r, b, back, err)
		}
	}
	var r AsideReason
	if err := r.UnmarshalText([]byte("lost")); err == nil {
		t.Error(`"lost" read as a reason`)
	}
}
