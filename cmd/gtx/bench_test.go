package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestBenchSaga(t *testing.T) {
	for _, mode := range []string{"code", "engine", "plain"} {
		t.Run(mode, func(t *testing.T) {
			// Long enough for sagas to finish on a loaded machine; the test
			// checks that some do, not how fast.
			c := sagaBenchConfig{Mode: mode, Concurrency: 2, Duration: 2 * time.Second}
			res, err := runSagaBench(t.Context(), c, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if res.Sagas == 0 || res.Errors != 0 {
				t.Fatalf("%d sagas, %d failed (first: %v): want some and none failed", res.Sagas, res.Errors, res.FirstErr)
			}
			var out bytes.Buffer
			res.print(&out, c)
			for _, want := range []string{"mode " + mode, "sagas/s", "p50", "p95", "p99"} {
				if !strings.Contains(out.String(), want) {
					t.Fatalf("output lacks %q:\n%s", want, out.String())
				}
			}
			out.Reset()
			if err := res.printJSON(&out, c); err != nil {
				t.Fatal(err)
			}
			var got struct {
				Mode  string  `json:"mode"`
				Sagas int     `json:"sagas"`
				P99   float64 `json:"p99_ms"`
			}
			if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Mode != mode || got.Sagas != res.Sagas || got.P99 <= 0 {
				t.Fatalf("JSON output %s (%v): want mode, sagas and p99", out.String(), err)
			}
		})
	}
}

func TestBenchSagaFlags(t *testing.T) {
	for _, c := range []sagaBenchConfig{
		{Mode: "both", Concurrency: 1, Duration: time.Second},
		{Mode: "code", Concurrency: 0, Duration: time.Second},
		{Mode: "code", Concurrency: 1},
	} {
		if _, err := runSagaBench(t.Context(), c, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.HasPrefix(err.Error(), "bench saga: ") {
			t.Errorf("%+v: %v, want a bench saga error", c, err)
		}
	}
}
