package raftstore

import (
	"context"
	"fmt"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

var (
	_ tc.Store            = (*Store)(nil)
	_ tc.LockStore        = (*Store)(nil)
	_ tc.EmptyFinisher    = (*Store)(nil)
	_ tc.Decider          = (*Store)(nil)
	_ tc.LockingAdder     = (*Store)(nil)
	_ tc.LockHolderLister = (*Store)(nil)
	_ tc.Leader           = (*Store)(nil)
)

// defaultListLimit is ListGlobals' limit when the filter gives none.
const defaultListLimit = 100

// run calls c and returns its result's error, wrapped with what failed.
func (s *Store) run(ctx context.Context, c *command) (*result, error) {
	res, err := s.call(ctx, c)
	if err != nil {
		return nil, err
	}
	if res.err != nil {
		if c.xid != "" {
			return res, fmt.Errorf("raftstore: %v %s: %w", c.op, c.xid, res.err)
		}
		return res, fmt.Errorf("raftstore: %v: %w", c.op, res.err)
	}
	return res, nil
}

// CreateGlobal implements tc.Store.
func (s *Store) CreateGlobal(ctx context.Context, g *tc.GlobalSession) error {
	if g.XID == "" {
		return fmt.Errorf("raftstore: create: %w: empty XID", ErrInvalidInput)
	}
	now := s.now()
	begin := unixNano(g.BeginTime)
	if begin == 0 {
		begin = now
	}
	_, err := s.run(ctx, &command{op: opCreate, xid: g.XID, now: now, name: g.Name, application: g.Application,
		timeout: int64(g.Timeout), begin: begin})
	return err
}

// GetGlobal implements tc.Store.
func (s *Store) GetGlobal(ctx context.Context, xid string) (*tc.GlobalSession, error) {
	res, err := s.run(ctx, &command{op: opGet, xid: xid})
	if err != nil {
		return nil, err
	}
	if len(res.sessions) != 1 {
		return nil, fmt.Errorf("raftstore: get %s: %d sessions in the answer", xid, len(res.sessions))
	}
	return res.sessions[0], nil
}

// UpdateGlobal implements tc.Store.
func (s *Store) UpdateGlobal(ctx context.Context, xid string, from []tcv1.GlobalStatus, u tc.GlobalUpdate) error {
	return s.updateGlobal(ctx, xid, from, -1, u)
}

// Decide implements tc.Decider: UpdateGlobal from BEGIN that, in the same
// log entry, also requires the branch count.
func (s *Store) Decide(ctx context.Context, xid string, branches int, u tc.GlobalUpdate) error {
	if branches < 0 {
		return fmt.Errorf("raftstore: decide %s: %w: negative branch count %d", xid, ErrInvalidInput, branches)
	}
	return s.updateGlobal(ctx, xid, []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, branches, u)
}

func (s *Store) updateGlobal(ctx context.Context, xid string, from []tcv1.GlobalStatus, branches int, u tc.GlobalUpdate) error {
	_, err := s.run(ctx, &command{op: opUpdateGlobal, xid: xid, now: s.now(), from: from, branches: int64(branches),
		status: u.Status, attempts: int64(u.Attempts), nextAttempt: unixNano(u.NextAttempt), lastError: u.LastError,
		owner: u.Owner, leaseTill: unixNano(u.LeaseUntil)})
	return err
}

func branchCommand(b *tc.BranchSession, now int64) *command {
	return &command{op: opAddBranch, xid: b.XID, now: now, branchID: b.BranchID, branchType: b.Type, branchStatus: b.Status,
		resource: b.ResourceID, lockKeys: b.LockKeys, data: b.ApplicationData, async: b.AsyncCommit, created: unixNano(b.CreateTime)}
}

// AddBranch implements tc.Store.
func (s *Store) AddBranch(ctx context.Context, b *tc.BranchSession) error {
	_, err := s.run(ctx, branchCommand(b, s.now()))
	return err
}

// AddBranchLocked implements tc.LockingAdder: the branch and its locks are
// one log entry.
func (s *Store) AddBranchLocked(ctx context.Context, b *tc.BranchSession, locks []tc.RowLock) error {
	if err := checkLocks(locks); err != nil {
		return fmt.Errorf("raftstore: add branch to %s: %w", b.XID, err)
	}
	c := branchCommand(b, s.now())
	c.locks = locks
	_, err := s.run(ctx, c)
	return err
}

// UpdateBranch implements tc.Store.
func (s *Store) UpdateBranch(ctx context.Context, xid string, branchID int64, status tcv1.BranchStatus, data []byte) error {
	_, err := s.run(ctx, &command{op: opUpdateBranch, xid: xid, now: s.now(), branchID: branchID, branchStatus: status, data: data})
	return err
}

// ListGlobals implements tc.Store.
func (s *Store) ListGlobals(ctx context.Context, f tc.ListFilter) ([]*tc.GlobalSession, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("raftstore: list: %w: negative limit %d", ErrInvalidInput, f.Limit)
	}
	limit := f.Limit
	if limit == 0 {
		limit = defaultListLimit
	}
	res, err := s.run(ctx, &command{op: opList, statuses: f.Statuses, limit: int64(limit)})
	if err != nil {
		return nil, err
	}
	return res.sessions, nil
}

// ClaimDue implements tc.Store. A lease granted in an earlier Raft term
// binds no one: a new leader resumes every session at once.
func (s *Store) ClaimDue(ctx context.Context, owner string, statuses []tcv1.GlobalStatus, now time.Time, lease time.Duration, limit int) ([]*tc.GlobalSession, error) {
	if limit <= 0 || lease < 0 {
		return nil, fmt.Errorf("raftstore: claim: %w: limit %d and lease %v must be positive", ErrInvalidInput, limit, lease)
	}
	res, err := s.run(ctx, &command{op: opClaimDue, owner: owner, now: unixNano(now), statuses: statuses, lease: int64(lease), limit: int64(limit)})
	if err != nil {
		return nil, err
	}
	return res.sessions, nil
}

// ListTimedOut implements tc.Store.
func (s *Store) ListTimedOut(ctx context.Context, now time.Time, limit int) ([]*tc.GlobalSession, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("raftstore: list timed out: %w: limit %d is not positive", ErrInvalidInput, limit)
	}
	res, err := s.run(ctx, &command{op: opTimedOut, now: unixNano(now), limit: int64(limit)})
	if err != nil {
		return nil, err
	}
	return res.sessions, nil
}

// DeleteFinished implements tc.Store.
func (s *Store) DeleteFinished(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("raftstore: delete finished: %w: limit %d is not positive", ErrInvalidInput, limit)
	}
	res, err := s.run(ctx, &command{op: opDeleteFinished, now: unixNano(before), limit: int64(limit)})
	if err != nil {
		return 0, err
	}
	return res.n, nil
}

// FinishEmpty implements tc.EmptyFinisher.
func (s *Store) FinishEmpty(ctx context.Context, xid string, status tcv1.GlobalStatus, now time.Time) (bool, error) {
	res, err := s.run(ctx, &command{op: opFinishEmpty, xid: xid, now: unixNano(now), status: status})
	if err != nil {
		return false, err
	}
	return res.ok, nil
}

// Ping implements tc.Store: it succeeds once a leader answers a
// linearizable read.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.run(ctx, &command{op: opPing})
	return err
}

// AcquireLocks implements tc.LockStore.
func (s *Store) AcquireLocks(ctx context.Context, xid string, branchID int64, locks []tc.RowLock) error {
	if len(locks) == 0 {
		return nil
	}
	if err := checkLocks(locks); err != nil {
		return fmt.Errorf("raftstore: acquire locks for %s: %w", xid, err)
	}
	_, err := s.run(ctx, &command{op: opAcquireLocks, xid: xid, branchID: branchID, locks: locks})
	return err
}

// ReleaseBranchLocks implements tc.LockStore.
func (s *Store) ReleaseBranchLocks(ctx context.Context, xid string, branchID int64) error {
	_, err := s.run(ctx, &command{op: opReleaseBranchLocks, xid: xid, branchID: branchID})
	return err
}

// ReleaseGlobalLocks implements tc.LockStore.
func (s *Store) ReleaseGlobalLocks(ctx context.Context, xid string) error {
	_, err := s.run(ctx, &command{op: opReleaseGlobalLocks, xid: xid})
	return err
}

// QueryLocks implements tc.LockStore.
func (s *Store) QueryLocks(ctx context.Context, locks []tc.RowLock) ([]tc.RowLock, error) {
	if len(locks) == 0 {
		return nil, nil
	}
	res, err := s.run(ctx, &command{op: opQueryLocks, locks: locks})
	if err != nil {
		return nil, err
	}
	return res.locks, nil
}

// LockHolders implements tc.LockHolderLister.
func (s *Store) LockHolders(ctx context.Context, after string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("raftstore: lock holders: %w: limit %d is not positive", ErrInvalidInput, limit)
	}
	res, err := s.run(ctx, &command{op: opLockHolders, after: after, limit: int64(limit)})
	if err != nil {
		return nil, err
	}
	return res.xids, nil
}
