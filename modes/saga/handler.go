package saga

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gtx-io/gtx/rm"
)

// branchData is the application data of a saga branch: everything a
// compensation needs, so any instance can run it.
type branchData struct {
	Step         string `json:"step"`
	Compensation string `json:"compensation"`
	Data         []byte `json:"data,omitempty"`
}

// Handler is the rm.Handler of SAGA branches: a rollback runs the
// compensation the branch names, looked up in the Registry; a commit does
// nothing, since a saga's steps are final once done. Install it on every
// instance's rm.Manager with Handle(tcv1.BranchType_SAGA, h).
type Handler struct {
	reg *Registry
}

// NewHandler returns a Handler that runs compensations from reg.
func NewHandler(reg *Registry) *Handler {
	return &Handler{reg: reg}
}

// Commit implements rm.Handler; a saga step needs no second phase.
func (h *Handler) Commit(context.Context, rm.Branch) error { return nil }

// Rollback implements rm.Handler: it runs the branch's compensation. An
// unknown compensation is retried by the coordinator (another instance may
// know it); undecodable data is not.
func (h *Handler) Rollback(ctx context.Context, b rm.Branch) error {
	var d branchData
	if err := json.Unmarshal(b.ApplicationData, &d); err != nil || d.Step == "" {
		return rm.Unretryable(fmt.Errorf("%w: branch %d of %s: %v", ErrBadBranchData, b.BranchID, b.XID, err))
	}
	comp, ok := h.reg.Lookup(d.Compensation)
	if !ok {
		return fmt.Errorf("%w: %q for step %q of %s; register it on every instance", ErrUnknownCompensation, d.Compensation, d.Step, b.XID)
	}
	if err := comp(ctx, Call{XID: b.XID, Step: d.Step, Key: Key(b.XID, d.Step), Data: d.Data}); err != nil {
		return fmt.Errorf("saga: compensation %q of step %q of %s: %w", d.Compensation, d.Step, b.XID, err)
	}
	return nil
}

// Key returns the idempotency key of step in the saga xid.
func Key(xid, step string) string { return xid + "/" + step }
