// Package poll is the one helper gtx's tests use to wait for a condition:
// it checks the condition at a short interval until it holds or a deadline
// passes, so tests synchronize on observable state instead of sleeping.
package poll

import (
	"testing"
	"time"
)

// DefaultTimeout is how long Until waits when the caller passes 0.
const DefaultTimeout = 20 * time.Second

// interval is how often the condition is checked.
const interval = 5 * time.Millisecond

// Until calls cond until it returns true and fails t with what if it has not
// within timeout (DefaultTimeout when timeout is 0).
func Until(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !Wait(timeout, cond) {
		t.Fatalf("gave up after %v waiting for %s", orDefault(timeout), what)
	}
}

// Wait calls cond until it returns true or timeout passes (DefaultTimeout
// when timeout is 0) and reports whether cond held. It is for helpers that
// cannot fail a test themselves, such as code in a child process.
func Wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(orDefault(timeout))
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
	return true
}

func orDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}
