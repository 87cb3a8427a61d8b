package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gtx-io/gtx/samples/order-inventory/load"
)

// A short run against the embedded sample reports the numbers and passes
// the invariant check.
func TestBenchOrder(t *testing.T) {
	c := orderBenchConfig{
		Load:   load.Config{Concurrency: 4, Orders: 60, FailRatio: 0.3},
		Modes:  "at,tcc,saga",
		Settle: 30 * time.Second,
	}
	var out bytes.Buffer
	if err := runOrderBench(t.Context(), c, &out, io.Discard); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"placed      60 orders", "orders/s", "committed", "rolled back", "p50", "p95", "p99", "invariants: PASS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBenchOrderFlags(t *testing.T) {
	for _, c := range []orderBenchConfig{
		{Load: load.Config{Concurrency: 1, Orders: 1}, Modes: "at,2pc"},
		{Load: load.Config{Concurrency: 0, Orders: 1}, Modes: "at"},
		{Load: load.Config{Concurrency: 1}, Modes: "at"},
		{Load: load.Config{Concurrency: 1, Orders: 1, FailRatio: 2}, Modes: "at"},
		{Load: load.Config{Concurrency: 1, Orders: 1}, Modes: "at", OrderURL: "http://127.0.0.1:1"},
	} {
		if err := runOrderBench(t.Context(), c, io.Discard, io.Discard); err == nil || !strings.HasPrefix(err.Error(), "bench order: ") {
			t.Errorf("%+v: %v, want a bench order error", c, err)
		}
	}
}
