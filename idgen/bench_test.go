package idgen

import (
	"testing"
	"time"

	"github.com/bwmarrin/snowflake"
)

// The benchmarks run gtx's generator beside github.com/bwmarrin/snowflake,
// which has the same layout and the same 4096-per-millisecond ceiling per
// node. Both settle at that ceiling once a run is long: bwmarrin spins until
// the next millisecond, gtx borrows up to MaxBorrow ahead and then sleeps.
// The Unbounded variants set MaxBorrow to its maximum, an hour, to show the
// cost of the compare-and-swap itself.

func newBenchGenerator(b *testing.B, maxBorrow time.Duration) *Generator {
	cfg := DefaultConfig()
	cfg.NodeID = 1
	cfg.MaxBorrow = maxBorrow
	g, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

func newBenchNode(b *testing.B) *snowflake.Node {
	n, err := snowflake.NewNode(1)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

var sink int64

func BenchmarkGTX(b *testing.B) {
	g := newBenchGenerator(b, DefaultMaxBorrow)
	for b.Loop() {
		sink = g.Next()
	}
}

func BenchmarkGTXParallel(b *testing.B) {
	g := newBenchGenerator(b, DefaultMaxBorrow)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			g.Next()
		}
	})
}

func BenchmarkGTXUnbounded(b *testing.B) {
	g := newBenchGenerator(b, time.Hour)
	for b.Loop() {
		sink = g.Next()
	}
}

func BenchmarkGTXUnboundedParallel(b *testing.B) {
	g := newBenchGenerator(b, time.Hour)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			g.Next()
		}
	})
}

func BenchmarkBwmarrin(b *testing.B) {
	n := newBenchNode(b)
	for b.Loop() {
		sink = n.Generate().Int64()
	}
}

func BenchmarkBwmarrinParallel(b *testing.B) {
	n := newBenchNode(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Generate()
		}
	})
}
