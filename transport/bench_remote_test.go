// The protoactor-remote side of BenchmarkShuffle: the same payloads as
// protoactor remote messages (DESIGN.md: 130-300 MiB/s), in a file of its
// own since it alone links protoactor's remote and gRPC.

package transport

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// protoactor remote's settings (DESIGN.md): the receiver's gRPC limit
// raised over the writer's batches, the batches capped; the sender keeps
// remoteWindow messages in flight on acknowledgements of its own, since
// remote's writer queue has no bound.
const (
	remoteMaxMsg   = 64 << 20
	remoteBatch    = 64
	remoteWindow   = 256
	remoteAckEvery = 32
)

func init() {
	remotePeer = runRemotePeer
	remoteBench = benchRemote
}

func quietLogger(*actor.ActorSystem) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startRemote() (*actor.ActorSystem, *remote.Remote) {
	system := actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(quietLogger)))
	r := remote.NewRemote(system, remote.Configure("127.0.0.1", 0,
		remote.WithServerOptions(grpc.MaxRecvMsgSize(remoteMaxMsg)),
		remote.WithEndpointWriterBatchSize(remoteBatch)))
	r.Start()
	return system, r
}

// runRemotePeer is the receiving process: an actor "sink" that counts
// BytesValues, acknowledges every remoteAckEvery-th to their sender, and
// answers a StringValue with its count.
func runRemotePeer(ready func(addr string), untilStdinCloses func()) error {
	system, r := startRemote()
	var count int64
	_, err := system.Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case *wrapperspb.BytesValue:
			count++
			if count%remoteAckEvery == 0 && c.Sender() != nil {
				c.Send(c.Sender(), wrapperspb.Int64(count))
			}
		case *wrapperspb.StringValue:
			c.Respond(wrapperspb.Int64(count))
			count = 0
		}
	}), "sink")
	if err != nil {
		return err
	}
	ready(system.Address())
	untilStdinCloses()
	r.Shutdown(false)
	return nil
}

func benchRemote(b *testing.B, frame []byte, rows int) {
	b.ReportAllocs()
	sink := actor.NewPID(startPeer(b, "protoactor"), "sink")
	system, r := startRemote()
	defer func() { r.Shutdown(false); system.Shutdown() }()
	acks := make(chan int64, 1024)
	ackPID := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*wrapperspb.Int64Value); ok {
			acks <- m.Value
		}
	}))
	msg := &wrapperspb.BytesValue{Value: frame}
	b.ResetTimer()
	var acked int64
	for i := range int64(b.N) {
		for i-acked >= remoteWindow {
			acked = max(acked, <-acks)
		}
		system.Root.RequestWithCustomSender(sink, msg, ackPID)
	}
	res, err := system.Root.RequestFuture(sink, wrapperspb.String("flush"), time.Minute).Result()
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if n := res.(*wrapperspb.Int64Value).Value; n != int64(b.N) {
		b.Fatalf("the sink got %d of %d messages", n, b.N)
	}
	report(b, len(frame), rows)
}
