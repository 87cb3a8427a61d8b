package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
)

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := runDemo(t.Context(), &out, false, false); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"before: stock of A 100000, balance of u1 100000000 (frozen 0)",
		"mode=at fail=\"\" -> 200 committed",
		"mode=at fail=\"inventory\" -> 409 rolled_back",
		"mode=at fail=\"account\" -> 409 rolled_back",
		"mode=at fail=\"order\" -> 409 rolled_back",
		"mode=tcc fail=\"account\" -> 409 rolled_back",
		"TCC  branch",
		"on account.freeze: PHASE2_ROLLBACKED",
		"NATS nats://127.0.0.1:",
		"mode=saga fail=\"inventory\" -> 409 rolled_back",
		"mode=saga fail=\"account\" -> 409 rolled_back",
		"SAGA branch",
		"is ROLLBACKED",
		"is COMMITTED",
		"now: stock of A 99994, balance of u1 99999400 (frozen 0)",
		"summary: 3 orders committed (6 units of A, 600 cents from u1)",
		"invariants: PASS",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	if n := strings.Count(out.String(), "orders committed"); n != 1 {
		t.Errorf("the demo printed its summary %d times, want once:\n%s", n, out.String())
	}
	if _, err := os.Stat(demoDir(t, out.String())); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the demo left its files behind without --keep: %v", err)
	}
}

// demoDir is the directory the demo said it keeps its files in.
func demoDir(t *testing.T, out string) string {
	t.Helper()
	first, _, _ := strings.Cut(out, "\n")
	i := strings.LastIndex(first, " in ")
	dir := first[i+len(" in "):]
	if i < 0 || !strings.HasPrefix(dir, os.TempDir()) {
		t.Fatalf("the demo did not say where its files are:\n%s", out)
	}
	return dir
}

// cancelOn cancels when the output contains marker.
type cancelOn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	cancel context.CancelFunc
}

func (w *cancelOn) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.marker) {
		w.cancel()
	}
	return n, err
}

// With --keep the demo serves until its context ends and says what to try.
func TestDemoKeep(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := &cancelOn{marker: "gtx bench order", cancel: cancel}
	if err := runDemo(ctx, w, false, true); err != nil {
		t.Fatalf("demo --keep: %v\n%s", err, w.buf.String())
	}
	for _, want := range []string{"serving until interrupted", "curl -s -XPOST http://127.0.0.1:", "/v1/stock/B", "/v1/accounts/u2"} {
		if !strings.Contains(w.buf.String(), want) {
			t.Errorf("demo --keep output lacks %q:\n%s", want, w.buf.String())
		}
	}
	dir := demoDir(t, w.buf.String())
	t.Cleanup(func() { os.RemoveAll(dir) })
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("demo --keep removed its files: %v", err)
	}
}
