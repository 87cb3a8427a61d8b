package tc

import "context"

// releaseLocks is the one place the coordinator gives global row locks
// back: every lock of xid when branchID is 0, else those of that branch.
// Which locks go when is the core's decision (afterAttempt, onClaimed,
// locksOrphaned, a commit decided, a branch rolled back or refused); a
// release that fails is logged and left to the orphan sweep
// (releaseOrphanLocks), since releasing again is harmless. It reports
// whether the locks went.
func (s *Server) releaseLocks(ctx context.Context, why, xid string, branchID int64) bool {
	var err error
	if branchID == 0 {
		err = s.locks.ReleaseGlobalLocks(ctx, xid)
	} else {
		err = s.locks.ReleaseBranchLocks(ctx, xid, branchID)
	}
	if err != nil {
		s.log.Warn("release global row locks", "why", why, "xid", xid, "branch", branchID, "err", err)
		return false
	}
	return true
}
