package actors_test

import (
	"context"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
)

// FuzzControl feeds a coordinator and a worker arbitrary control messages
// from their peers, well-formed and not: none may panic (a message the
// protocol does not expect is dropped or answered with an error).
func FuzzControl(f *testing.F) {
	for _, s := range []string{
		`{"op":"attempt","epoch":2,"place":[["a","b"],["a","a"]],"restore":0,"run":"r","fingerprint":"x"}`,
		`{"op":"attempt","epoch":2,"place":[["b"]],"restore":7}`,
		`{"op":"stop","epoch":1}`, `{"op":"call","seq":3,"action":{"Op":0,"At":{"Vertex":9,"Instance":-1}}}`,
		`{"op":"call","seq":4,"action":{"Op":255}}`, `{"op":"end","committed":true}`,
		`{"op":"report","epoch":1,"at":{"Vertex":1,"Instance":1},"done":true,"passed":[1],"snaps":[{"checkpoint":1,"data":"AAE="}]}`,
		`{"op":"stats","epoch":1,"stats":[{"at":{"Vertex":0,"Instance":1},"nodes":[5,5,5]}]}`,
		`{"op":"stats","epoch":1,"stats":[{"at":{"Vertex":7,"Instance":0}}]}`,
		`{"op":"fail","epoch":1,"err":"boom","config":true}`, `{"op":"stopped","epoch":1}`, `{"op":"reply","seq":1,"err":"x"}`,
		`{"op":"nonsense"}`, `{`, ``, `null`, `[]`,
	} {
		f.Add([]byte(s))
	}
	net := newLoopNet()
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	start := func(self string) *actors.Execution {
		p, _ := sumPipeline(-1, 10, func(x int64) int64 { return x }) // endless: it runs while fuzzed
		x, err := sluice.Start(ctx, p, sluice.Options{Parallelism: 2, Seed: 3, Cluster: &actors.Cluster{Self: self, Coordinator: "a",
			Net: endpoint{net, self}, Place: roundRobin("a", "b")}})
		if err != nil {
			f.Fatal(err)
		}
		net.mu.Lock()
		net.nodes[self] = x
		net.mu.Unlock()
		return x
	}
	worker := start("b")
	coord := start("a")
	f.Fuzz(func(t *testing.T, payload []byte) {
		_ = coord.ReceiveControl("b", payload)
		_ = coord.ReceiveControl("c", payload)
		_ = worker.ReceiveControl("a", payload)
		_ = worker.ReceiveControl("c", payload)
	})
}
