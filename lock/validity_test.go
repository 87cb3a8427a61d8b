package lock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gtx-io/gtx/lock"
)

// stalledRenewals is a Backend whose renewals never answer before their
// context ends, as when the network to Redis is cut after the acquisition.
type stalledRenewals struct{ lock.Backend }

func (stalledRenewals) Renew(ctx context.Context, _, _ string, _ time.Duration) (time.Duration, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

func TestValidityAndDo(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	cfg := testConfig()
	p := newProc(t, prefix, cfg)
	lease, err := p.locks.Lock(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	if v := lease.Validity(); v <= cfg.TTL/2 || v > cfg.TTL {
		t.Fatalf("Validity right after Lock = %v, want in (TTL/2, TTL] of %v", v, cfg.TTL)
	}

	called := false
	err = lease.Do(ctx, 2*cfg.TTL, func(context.Context, int64) error { called = true; return nil })
	if !errors.Is(err, lock.ErrValidityShort) || called {
		t.Fatalf("Do asking for more than the TTL = %v (called %v), want ErrValidityShort without a call", err, called)
	}
	errWrite := errors.New("write failed")
	err = lease.Do(ctx, cfg.TTL/4, func(wctx context.Context, fence int64) error {
		if fence != lease.Fence() {
			t.Errorf("Do passed fence %d, want the lease's %d", fence, lease.Fence())
		}
		d, ok := wctx.Deadline()
		if !ok || time.Until(d) > cfg.TTL {
			t.Errorf("Do's context deadline = %v (set %v), want within the validity", time.Until(d), ok)
		}
		return errWrite
	})
	if !errors.Is(err, errWrite) {
		t.Fatalf("Do = %v, want fn's error", err)
	}
	if err := lease.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if v := lease.Validity(); v != 0 {
		t.Fatalf("Validity after Unlock = %v, want 0", v)
	}
	if err := lease.Do(ctx, 0, func(context.Context, int64) error { return nil }); !errors.Is(err, lock.ErrNotHeld) {
		t.Fatalf("Do after Unlock = %v, want ErrNotHeld", err)
	}
}

// TestValidityEndCancelsContext cuts off renewals: the lease's context is
// cancelled with ErrLockLost when the known validity ends, although no
// renewal ever reports a failure before that, and a Do running then sees
// its context end.
func TestValidityEndCancelsContext(t *testing.T) {
	prefix := newPrefix(t)
	ctx := context.Background()
	cfg := testConfig()
	cfg.TTL = 500 * time.Millisecond
	p := newProc(t, prefix, cfg)
	locks, err := lock.New(stalledRenewals{p.backend}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = locks.Close(ctx) })
	lease, err := locks.Lock(ctx, "cut")
	if err != nil {
		t.Fatal(err)
	}
	err = lease.Do(ctx, 0, func(wctx context.Context, _ int64) error {
		<-wctx.Done()
		return context.Cause(wctx)
	})
	if !errors.Is(err, lock.ErrLockLost) {
		t.Fatalf("Do's context ended with %v, want ErrLockLost", err)
	}
	<-lease.Context().Done()
	if cause := context.Cause(lease.Context()); !errors.Is(cause, lock.ErrLockLost) {
		t.Fatalf("cause = %v, want ErrLockLost", cause)
	}
	if v := lease.Validity(); v != 0 {
		t.Fatalf("Validity after the end = %v, want 0", v)
	}
	if err := lease.Do(ctx, 0, func(context.Context, int64) error { return nil }); !errors.Is(err, lock.ErrLockLost) {
		t.Fatalf("Do after the end = %v, want ErrLockLost", err)
	}
}
