package rm

import (
	"context"
	"crypto/rand"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// RegisterBranch enlists a branch of type t on resourceID in the global
// transaction xid and returns its branch ID. The coordinator takes the global
// row locks in lockKeys ("table:pk1,pk2;table2:pk3", empty for none)
// atomically, all or none; data comes back to the handler in phase 2.
//
// It fails with a *LockConflictError (ErrLockConflict) when another
// transaction holds one of the locks, a *NotActiveError
// (ErrTransactionNotActive) when the transaction is no longer in BEGIN,
// ErrTransactionNotFound when the coordinator does not know it,
// ErrInvalidArgument for bad input, and ErrCoordinatorUnavailable when no
// coordinator answered. It does not need Start. When a coordinator answers
// Unavailable (which may mean the registration's outcome is unknown) the
// call is retried on the next one with the same idempotency key, so it
// returns the branch the first attempt created instead of a second one.
//
// Options: AsyncCommit.
func (m *Manager) RegisterBranch(ctx context.Context, xid string, t tcv1.BranchType, resourceID, lockKeys string, data []byte, opts ...BranchOption) (int64, error) {
	if err := gtx.ValidateXID(xid); err != nil {
		return 0, fmt.Errorf("%w: register branch: %w", ErrInvalidArgument, err)
	}
	if err := validType(t); err != nil {
		return 0, err
	}
	if resourceID == "" {
		return 0, fmt.Errorf("%w: register branch of %s: empty resource ID", ErrInvalidArgument, xid)
	}
	// One key per registration, kept across the retries below: a
	// coordinator that answered Unavailable may have registered the branch
	// all the same, and the next one then returns that branch.
	req := &tcv1.RegisterBranchRequest{Xid: xid, BranchType: t, ResourceId: resourceID, LockKeys: lockKeys, ApplicationData: data,
		IdempotencyKey: rand.Text()}
	for _, o := range opts {
		o(req)
	}
	var id int64
	err := m.unary(ctx, func(ctx context.Context, c tcv1.CoordinatorClient) error {
		resp, err := c.RegisterBranch(ctx, req)
		id = resp.GetBranchId()
		return err
	})
	if err != nil {
		return 0, coordinatorError("register branch", xid, err)
	}
	return id, nil
}

// ReportBranch records the phase-1 outcome of a branch (PHASE1_DONE or
// PHASE1_FAILED), with data replacing its application data when not nil.
// Its errors are those of RegisterBranch, without lock conflicts.
func (m *Manager) ReportBranch(ctx context.Context, xid string, branchID int64, st tcv1.BranchStatus, data []byte) error {
	if err := gtx.ValidateXID(xid); err != nil {
		return fmt.Errorf("%w: report branch: %w", ErrInvalidArgument, err)
	}
	if branchID <= 0 {
		return fmt.Errorf("%w: report branch of %s: branch ID %d is not positive", ErrInvalidArgument, xid, branchID)
	}
	if _, ok := tcv1.BranchStatus_name[int32(st)]; !ok || st == tcv1.BranchStatus_BRANCH_STATUS_UNSPECIFIED {
		return fmt.Errorf("%w: report branch of %s: unknown branch status %v", ErrInvalidArgument, xid, st)
	}
	req := &tcv1.ReportBranchRequest{Xid: xid, BranchId: branchID, Status: st, ApplicationData: data}
	err := m.unary(ctx, func(ctx context.Context, c tcv1.CoordinatorClient) error {
		_, err := c.ReportBranch(ctx, req)
		return err
	})
	if err != nil {
		return coordinatorError("report branch", xid, err)
	}
	return nil
}

// unary calls f on the coordinators in turn, starting from the next in
// round-robin order, until one answers with anything but Unavailable.
func (m *Manager) unary(ctx context.Context, f func(ctx context.Context, c tcv1.CoordinatorClient) error) error {
	m.mu.Lock()
	conns := m.conns
	m.mu.Unlock()
	n := uint64(len(conns))
	if n == 0 {
		return status.Error(codes.Unavailable, "rm: discovery has found no coordinator yet")
	}
	start := m.next.Add(1)
	var err error
	for i := range n {
		err = f(ctx, conns[(start+i)%n].client)
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// BranchOption adjusts a branch registration.
type BranchOption func(*tcv1.RegisterBranchRequest)

// AsyncCommit lets the coordinator answer the TM's commit before this
// branch's phase-2 commit has run (it still runs, at least once, afterwards).
// The caller then learns "committed" while the branch's Confirm may not have
// landed yet; use it only where readers tolerate that window.
func AsyncCommit() BranchOption {
	return func(r *tcv1.RegisterBranchRequest) { r.AsyncCommit = true }
}
