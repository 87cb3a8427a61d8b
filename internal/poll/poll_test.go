package poll

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	var n atomic.Int32
	if !Wait(time.Second, func() bool { return n.Add(1) >= 3 }) {
		t.Fatal("Wait gave up on a condition that becomes true on the third check")
	}
	if got := n.Load(); got != 3 {
		t.Fatalf("condition checked %d times, want 3", got)
	}
	if Wait(20*time.Millisecond, func() bool { return false }) {
		t.Fatal("Wait reported a condition that never held as met")
	}
}
