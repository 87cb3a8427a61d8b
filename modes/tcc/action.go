package tcc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm"
)

// reportTimeout bounds the report of a failed Try, which runs even when the
// caller's context is done: the report only spares the coordinator a
// Confirm that would fail, so it is not worth a long wait.
const reportTimeout = 5 * time.Second

// PhaseFunc is one phase of an action: its business work in the fenced
// local transaction tx, for the branch bc.
type PhaseFunc[Req any] func(ctx context.Context, tx Tx, bc *BranchContext[Req]) error

// Phases are the three phases of an action; all are required.
//
// Try reserves resources (checks and holds stock, freezes an amount) and may
// record values for the later phases with BranchContext.Set. Confirm uses
// what Try reserved; Cancel releases it. The fence runs each at most once
// per branch, in the same local transaction as its fence row; an error
// rolls that transaction back. A Confirm or Cancel error is retried by the
// coordinator, unless wrapped with rm.Unretryable.
type Phases[Req any] struct {
	Try     PhaseFunc[Req]
	Confirm PhaseFunc[Req]
	Cancel  PhaseFunc[Req]
}

// ActionOption adjusts an action.
type ActionOption func(*actionOptions)

type actionOptions struct {
	register []rm.BranchOption
}

// AsyncConfirm registers the action's branches with rm.AsyncCommit: when
// every branch of a global transaction allows it, the coordinator answers
// the commit before the Confirms have run, and runs them (at least once)
// afterwards. Commit latency drops to the coordinator's own write; the price
// is a window in which the caller has heard "committed" while the reserved
// resources are not confirmed yet (reads see the Try state). Use it where
// readers tolerate that window.
func AsyncConfirm() ActionOption {
	return func(o *actionOptions) { o.register = append(o.register, rm.AsyncCommit()) }
}

// Action is a TCC action taking requests of type Req, registered with a
// Participant. Req must survive a round trip through encoding/json: Confirm
// and Cancel get the request decoded from the branch's stored context.
type Action[Req any] struct {
	name   string
	p      *Participant
	fence  *Fence
	phases Phases[Req]
	opts   actionOptions
}

// Register adds an action named name to p, guarded by fence, and announces
// it to the coordinators as a TCC resource of p's rm.Manager. The name is the
// branches' resource ID: every instance serving the action registers it
// under the same name, and a name is registered once per Participant.
func Register[Req any](p *Participant, name string, fence *Fence, phases Phases[Req], opts ...ActionOption) (*Action[Req], error) {
	switch {
	case p == nil:
		return nil, fmt.Errorf("%w: nil participant for action %q", ErrInvalidArgument, name)
	case name == "" || len(name) > 128:
		return nil, fmt.Errorf("%w: action name %q must be 1 to 128 bytes", ErrInvalidArgument, name)
	case fence == nil:
		return nil, fmt.Errorf("%w: nil fence for action %q", ErrInvalidArgument, name)
	case phases.Try == nil || phases.Confirm == nil || phases.Cancel == nil:
		return nil, fmt.Errorf("%w: action %q needs Try, Confirm and Cancel", ErrInvalidArgument, name)
	}
	a := &Action[Req]{name: name, p: p, fence: fence, phases: phases}
	for _, o := range opts {
		o(&a.opts)
	}
	if err := p.add(name, a); err != nil {
		return nil, err
	}
	return a, nil
}

// Name returns the action's name, its branches' resource ID.
func (a *Action[Req]) Name() string { return a.name }

// Try runs the action's first phase in the global transaction of ctx, which
// must carry an XID (tm.WithGlobalTx puts it there; the gtx interceptors
// carry it into a remote service). It registers a TCC branch with the
// request as its context, then runs Phases.Try in a fenced local
// transaction. Values Try set are stored with the branch, before the local
// transaction commits. It returns the branch ID.
//
// When Try fails, the branch is reported as failed (it is then never
// confirmed) and the error is returned: roll the global transaction back,
// which cancels the branches that did try. A Try refused by the fence
// (ErrTryRefused) means the branch was cancelled first, typically because
// the global transaction timed out.
func (a *Action[Req]) Try(ctx context.Context, req Req) (int64, error) {
	xid, ok := gtx.XIDFromContext(ctx)
	if !ok {
		return 0, fmt.Errorf("%w: try %s", ErrNoTransaction, a.name)
	}
	raw, err := json.Marshal(req)
	if err != nil {
		return 0, fmt.Errorf("%w: try %s: encode request: %w", ErrInvalidArgument, a.name, err)
	}
	data, err := encodeContext(raw, nil)
	if err != nil {
		return 0, err
	}
	id, err := a.p.rm.RegisterBranch(ctx, xid, tcv1.BranchType_TCC, a.name, "", data, a.opts.register...)
	if err != nil {
		return 0, fmt.Errorf("tcc: try %s in %s: register branch: %w", a.name, xid, err)
	}
	return id, a.try(ctx, xid, id, raw, req)
}

// try runs the fenced Try of a registered branch.
func (a *Action[Req]) try(ctx context.Context, xid string, id int64, raw json.RawMessage, req Req) error {
	bc := &BranchContext[Req]{XID: xid, BranchID: id, Action: a.name, Request: req}
	err := a.fence.Try(ctx, xid, id, a.name, func(ctx context.Context, tx Tx) error {
		if err := a.phases.Try(ctx, tx, bc); err != nil {
			return err
		}
		if len(bc.values) == 0 {
			return nil
		}
		data, err := encodeContext(raw, bc.values)
		if err != nil {
			return err
		}
		if err := a.p.rm.ReportBranch(ctx, xid, id, tcv1.BranchStatus_PHASE1_DONE, data); err != nil {
			return fmt.Errorf("tcc: store the values Try set: %w", err)
		}
		return nil
	})
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrTryRefused) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
		rerr := a.p.rm.ReportBranch(rctx, xid, id, tcv1.BranchStatus_PHASE1_FAILED, nil)
		cancel()
		if rerr != nil {
			a.p.log.Warn("reporting a failed try failed; the global rollback cancels the branch anyway",
				"xid", xid, "branch_id", id, "action", a.name, "err", rerr)
		}
	}
	return fmt.Errorf("tcc: try %s (%s branch %d): %w", a.name, xid, id, err)
}

func (a *Action[Req]) confirm(ctx context.Context, b rm.Branch) error {
	bc, err := a.decode(b)
	if err != nil {
		return rm.Unretryable(err)
	}
	err = a.fence.Confirm(ctx, b.XID, b.BranchID, func(ctx context.Context, tx Tx) error {
		return a.phases.Confirm(ctx, tx, bc)
	})
	return phase2Error(err)
}

func (a *Action[Req]) cancel(ctx context.Context, b rm.Branch) error {
	bc, err := a.decode(b)
	if err != nil {
		return rm.Unretryable(err)
	}
	err = a.fence.Cancel(ctx, b.XID, b.BranchID, a.name, func(ctx context.Context, tx Tx) error {
		return a.phases.Cancel(ctx, tx, bc)
	})
	return phase2Error(err)
}

// phase2Error marks the fence conflicts, which retrying cannot fix.
func phase2Error(err error) error {
	if errors.Is(err, ErrFenceConflict) {
		return rm.Unretryable(err)
	}
	return err
}

func (a *Action[Req]) decode(b rm.Branch) (*BranchContext[Req], error) {
	var s storedContext
	if err := json.Unmarshal(b.ApplicationData, &s); err != nil || s.Request == nil {
		return nil, fmt.Errorf("%w: %s branch %d of %s: %q is not a TCC action context", ErrBadActionContext, b.XID, b.BranchID, a.name, b.ApplicationData)
	}
	bc := &BranchContext[Req]{XID: b.XID, BranchID: b.BranchID, Action: a.name, values: s.Values}
	if err := json.Unmarshal(s.Request, &bc.Request); err != nil {
		return nil, fmt.Errorf("%w: %s branch %d of %s: decode request: %w", ErrBadActionContext, b.XID, b.BranchID, a.name, err)
	}
	return bc, nil
}
