package tm

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

type voter struct {
	calls atomic.Int32
	xid   atomic.Value
	err   error
}

func (v *voter) CanCommit(ctx context.Context, xid string) error {
	v.calls.Add(1)
	v.xid.Store(xid)
	if _, ok := gtx.XIDFromContext(ctx); !ok || !gtx.ThreePhaseFromContext(ctx) {
		return errors.New("voter asked without the XID and the three-phase mark")
	}
	return v.err
}

func TestThreePhase(t *testing.T) {
	m, fake, _ := newManager(t, nil)
	ctx := context.Background()
	errNo := errors.New("no room")
	tests := []struct {
		name       string
		voters     []*voter
		wantRan    bool
		wantErr    error
		wantStatus tcv1.GlobalStatus
	}{
		{"every yes commits", []*voter{{}, {}}, true, nil, tcv1.GlobalStatus_COMMITTED},
		{"no voters commits", nil, true, nil, tcv1.GlobalStatus_COMMITTED},
		{"one no rolls back before the function", []*voter{{}, {err: errNo}}, false, ErrVotedNo, tcv1.GlobalStatus_ROLLBACKED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var vs []Voter
			for _, v := range tt.voters {
				vs = append(vs, v)
			}
			var xid string
			ran, marked := false, false
			err := m.WithGlobalTx(ctx, "3pc", func(ctx context.Context) error {
				ran, marked = true, gtx.ThreePhaseFromContext(ctx)
				xid, _ = gtx.XIDFromContext(ctx)
				return nil
			}, ThreePhase(vs...))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("WithGlobalTx = %v, want %v", err, tt.wantErr)
			}
			if ran != tt.wantRan || ran && !marked {
				t.Fatalf("function ran %v (marked three-phase %v), want ran %v", ran, marked, tt.wantRan)
			}
			for i, v := range tt.voters {
				if v.calls.Load() != 1 {
					t.Fatalf("voter %d asked %d times, want once", i, v.calls.Load())
				}
			}
			if !ran && len(tt.voters) > 0 {
				xid, _ = tt.voters[0].xid.Load().(string)
			}
			if xid == "" || fake.tx(xid).status != tt.wantStatus {
				t.Fatalf("status %v, want %v", fake.tx(xid).status, tt.wantStatus)
			}
		})
	}
	if err := m.WithGlobalTx(ctx, "3pc", func(context.Context) error { return nil }, ThreePhase(nil)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil voter: %v", err)
	}
	// Joining a transaction leaves three phases to its starter.
	joined := false
	err := m.WithGlobalTx(gtx.ContextWithXID(ctx, "1"), "3pc", func(ctx context.Context) error {
		joined = !gtx.ThreePhaseFromContext(ctx)
		return nil
	}, ThreePhase(&voter{err: errNo}))
	if err != nil || !joined {
		t.Fatalf("join: %v, unmarked %v", err, joined)
	}
}
