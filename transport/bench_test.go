package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/backpressure"
	"github.com/sluice-data/sluice/codec"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
)

// The shuffle benchmarks run the receiving side in a second process: this
// test binary run again with peerEnv naming the side to play. The child
// prints "addr HOST:PORT" and serves until its stdin closes.
const peerEnv = "SLUICE_TRANSPORT_BENCH_PEER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(peerEnv); mode != "" {
		if err := runPeer(mode); err != nil {
			fmt.Fprintf(os.Stderr, "bench peer %s: %v\n", mode, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// orderUser is W1's joined row (examples.OrderUser, without its parquet
// tags): what its hash edge would carry between nodes.
type orderUser struct {
	UserID        int64
	OrderID       int64
	TS            int64
	Amount        float64
	Age           int32
	Country       string
	LifetimeValue float64
}

const batchRows = 1024

var (
	benchKey  = EdgeKey{Job: 1, Vertex: 2, Input: 0}
	countries = []string{"DE", "US", "FR", "JP", "BR", "IN", "GB", "NL"}
)

func orderRows() []orderUser {
	rows := make([]orderUser, batchRows)
	for i := range rows {
		rows[i] = orderUser{UserID: int64(i * 7919 % 100_000), OrderID: int64(i), TS: 1_700_000_000_000 + int64(i)*1000,
			Amount: float64(i%10_000) / 100, Age: int32(18 + i%60), Country: countries[i%len(countries)], LifetimeValue: float64(i) * 1.5}
	}
	return rows
}

func orderEnvelope(rows []orderUser) Envelope {
	return Envelope{Job: benchKey.Job, Epoch: 1, To: core.Addr{Vertex: benchKey.Vertex, Instance: 3},
		Msg: core.Msg{Kind: core.Data, Edge: 0, Input: benchKey.Input, Channel: 1, Records: len(rows),
			Bytes: int64(len(rows)) * 56, Time: 1_700_000_000_000_000_000, Batch: &plan.Batch{Data: rows}}}
}

func benchCodecs(c BatchCodec) *CodecTable {
	var t CodecTable
	t.Set(benchKey, c)
	return &t
}

// countingCodec reads a batch's header and row count and decodes no rows:
// the receiver of the pre-encoded benchmark measures the transport alone.
type countingCodec struct{ BatchCodec }

func (c countingCodec) DecodeBatch(src []byte) (any, int, error) {
	rest, err := codec.ReadHeader(src, c.Fingerprint(), c.Type())
	if err != nil {
		return nil, 0, err
	}
	n, k := binary.Uvarint(rest)
	if k <= 0 {
		return nil, 0, errors.New("bad row count")
	}
	return nil, int(n), nil
}

// The protoactor remote side of the benchmark, set by bench_remote_test.go.
var (
	remotePeer  func(ready func(addr string), untilStdinCloses func()) error
	remoteBench func(b *testing.B, frame []byte, rows int)
)

func runPeer(mode string) error {
	ready := func(addr string) { fmt.Printf("addr %s\n", addr) }
	untilStdinCloses := func() { _, _ = io.Copy(io.Discard, os.Stdin) }
	switch mode {
	case "raw":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ready(ln.Addr().String())
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		buf := make([]byte, 256<<10)
		for {
			var hdr [8]byte
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return nil // the sender is done
			}
			total := binary.LittleEndian.Uint64(hdr[:])
			for left := total; left > 0; {
				n, err := c.Read(buf[:min(uint64(len(buf)), left)])
				if err != nil {
					return err
				}
				left -= uint64(n)
			}
			if _, err := c.Write(hdr[:]); err != nil {
				return err
			}
		}
	case "frames", "rows":
		var bc BatchCodec = MustCodecOf[orderUser]()
		if mode == "frames" {
			bc = countingCodec{bc}
		}
		type reply struct {
			c *Conn
			g backpressure.Grant
		}
		replies := make(chan reply, 1)
		var got backpressure.Grant
		cfg := Config{Node: "bench-receiver", Build: "bench", Codecs: benchCodecs(bc), Deliver: func(c *Conn, e Envelope) {
			switch e.Msg.Kind {
			case core.Data:
				rows := e.Msg.Records
				if mode == "rows" {
					rows = len(e.Msg.Batch.Data.([]orderUser))
				}
				got.Batches++
				got.Records += int64(rows)
			case core.EndOfInput:
				replies <- reply{c, got}
				got = backpressure.Grant{}
			}
		}}
		l, err := Listen("127.0.0.1:0", cfg)
		if err != nil {
			return err
		}
		ready(l.Addr().String())
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			for r := range replies {
				_ = r.c.Send(Envelope{Job: benchKey.Job, To: core.Addr{Vertex: 1}, Msg: core.Msg{Kind: core.Credit, Grant: r.g}})
			}
		}()
		untilStdinCloses()
		c.Abort()
		return nil
	case "protoactor":
		if remotePeer == nil {
			return errors.New("built without protoactor remote")
		}
		return remotePeer(ready, untilStdinCloses)
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// startPeer starts the receiving process for mode and returns its address;
// the process ends with the benchmark.
func startPeer(b *testing.B, mode string) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), peerEnv+"="+mode)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	b.Cleanup(func() {
		stdin.Close()
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				b.Errorf("peer %s: %v\n%s", mode, err, stderr.String())
			}
		case <-time.After(deadline):
			_ = cmd.Process.Kill()
			<-exited
			b.Errorf("peer %s did not exit in %v; killed", mode, deadline)
		}
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		addr, ok := strings.CutPrefix(strings.TrimSpace(s), "addr ")
		if !ok {
			b.Fatalf("peer %s said %q\n%s", mode, s, stderr.String())
		}
		return addr
	case <-time.After(deadline):
		b.Fatalf("peer %s did not start in %v\n%s", mode, deadline, stderr.String())
	}
	return ""
}

func report(b *testing.B, bytesPerOp, rowsPerOp int) {
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)*float64(bytesPerOp)/s/(1<<20), "MiB/s")
	b.ReportMetric(float64(b.N)*float64(rowsPerOp)/s, "rows/s")
}

// BenchmarkShuffle moves batches of W1's rows (1024 rows, one frame each)
// from this process to a second one, four ways, in one run: raw loopback
// TCP writing the frames' bytes; protoactor remote with each frame in a
// BytesValue; the transport with frames encoded once (the transport alone:
// the receiver reads each batch's header, not its rows); and the whole path
// (each batch encoded by Send and decoded by the receiver). An op is one
// batch; every sub-benchmark counts the frame's bytes and rows.
func BenchmarkShuffle(b *testing.B) {
	rows := orderRows()
	env := orderEnvelope(rows)
	bc := MustCodecOf[orderUser]()
	frame, err := AppendFrame(nil, env, benchCodecs(bc))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("a batch of %d rows is a frame of %d bytes", len(rows), len(frame))

	b.Run("raw-tcp", func(b *testing.B) {
		b.ReportAllocs()
		c, err := net.Dial("tcp", startPeer(b, "raw"))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ResetTimer()
		var hdr [8]byte
		binary.LittleEndian.PutUint64(hdr[:], uint64(b.N)*uint64(len(frame)))
		if _, err := c.Write(hdr[:]); err != nil {
			b.Fatal(err)
		}
		for range b.N {
			if _, err := c.Write(frame); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		report(b, len(frame), len(rows))
	})

	b.Run("protoactor-remote", func(b *testing.B) {
		remoteBench(b, frame, len(rows))
	})

	transport := func(b *testing.B, mode string, send func(*Conn) error) {
		b.ReportAllocs()
		addr := startPeer(b, mode)
		granted := make(chan backpressure.Grant, 1)
		cfg := Config{Node: "bench-sender", Build: "bench", Codecs: benchCodecs(bc), Deliver: func(_ *Conn, e Envelope) {
			if e.Msg.Kind == core.Credit {
				granted <- e.Msg.Grant
			}
		}}
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		c, err := Dial(ctx, addr, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Abort()
		b.ResetTimer()
		for range b.N {
			if err := send(c); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.Send(Envelope{Job: benchKey.Job, To: env.To, Msg: core.Msg{Kind: core.EndOfInput}}); err != nil {
			b.Fatal(err)
		}
		var g backpressure.Grant
		select {
		case g = <-granted:
		case <-c.Done():
			b.Fatal(c.Err())
		}
		b.StopTimer()
		if g.Batches != int64(b.N) || g.Records != int64(b.N)*int64(len(rows)) {
			b.Fatalf("the receiver got %+v, want %d batches of %d rows", g, b.N, len(rows))
		}
		report(b, len(frame), len(rows))
	}
	b.Run("transport-frames", func(b *testing.B) {
		transport(b, "frames", func(c *Conn) error { return c.SendFrame(frame) })
	})
	b.Run("transport-rows", func(b *testing.B) {
		transport(b, "rows", func(c *Conn) error { return c.Send(env) })
	})
}
