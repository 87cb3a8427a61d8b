package tc

import (
	"context"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// Store keeps global and branch sessions durably. Every method returns only
// after its change is durable. Implementations live in tc/store/...; the
// conformance suite in tc/store/storetest checks each of them.
//
// Several coordinator replicas may share one Store, so every change that
// depends on the current state is conditional and atomic in the store.
type Store interface {
	// CreateGlobal stores a new session in status BEGIN. It fails with
	// ErrDuplicateXID when the XID exists.
	CreateGlobal(ctx context.Context, g *GlobalSession) error
	// GetGlobal returns the session with its branches (oldest first), or
	// ErrNotFound.
	GetGlobal(ctx context.Context, xid string) (*GlobalSession, error)
	// UpdateGlobal applies u only when the current status is one of from.
	// When the status is not one of from it changes nothing and returns a
	// *StatusError carrying the current status; an unknown XID gives
	// ErrNotFound.
	UpdateGlobal(ctx context.Context, xid string, from []tcv1.GlobalStatus, u GlobalUpdate) error
	// AddBranch stores a branch only while its global session is in BEGIN and
	// b.CreateTime is not after the session's deadline (BeginTime plus
	// Timeout); otherwise it changes nothing and returns a *StatusError,
	// ErrTimedOut or ErrNotFound.
	AddBranch(ctx context.Context, b *BranchSession) error
	// UpdateBranch sets a branch's status, and its application data when data
	// is not nil. An unknown branch gives ErrNotFound.
	UpdateBranch(ctx context.Context, xid string, branchID int64, status tcv1.BranchStatus, data []byte) error
	// ListGlobals returns sessions (without branches), newest first.
	ListGlobals(ctx context.Context, f ListFilter) ([]*GlobalSession, error)
	// ClaimDue leases to owner, until now+lease, up to limit sessions whose
	// status is one of statuses, whose NextAttempt is at or before now, and
	// that no other owner holds an unexpired lease on. It returns them with
	// their branches.
	ClaimDue(ctx context.Context, owner string, statuses []tcv1.GlobalStatus, now time.Time, lease time.Duration, limit int) ([]*GlobalSession, error)
	// ListTimedOut returns up to limit sessions in BEGIN whose BeginTime plus
	// Timeout is before now (without branches).
	ListTimedOut(ctx context.Context, now time.Time, limit int) ([]*GlobalSession, error)
	// DeleteFinished deletes sessions, with their branches, in a final status
	// (COMMITTED, ROLLBACKED, TIMEOUT_ROLLBACKED) last updated before before,
	// at most limit of them, and returns how many it deleted.
	DeleteFinished(ctx context.Context, before time.Time, limit int) (int, error)
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
}

// EmptyFinisher is an optional Store capability: ending a transaction that
// has no branch in one atomic write, which makes the common empty commit and
// rollback cost one statement. The coordinator uses it when its Store has it.
type EmptyFinisher interface {
	// FinishEmpty moves xid from BEGIN to status when, atomically, it has no
	// branch and its deadline (BeginTime plus Timeout) is not before now, and
	// reports whether it did. It changes nothing and returns false
	// otherwise, also for an unknown XID.
	FinishEmpty(ctx context.Context, xid string, status tcv1.GlobalStatus, now time.Time) (bool, error)
}

// Decider is an optional Store capability with which the coordinator
// records a decision without reading the branches again afterwards: the
// decision holds only while the transaction has exactly the branches the
// coordinator read before it. Branches are only ever added to a session in
// BEGIN, so the same number means the same branches.
type Decider interface {
	// Decide is UpdateGlobal from BEGIN that also requires xid to have
	// exactly branches (not negative) branches. When xid has another number
	// it changes nothing and returns ErrBranchesChanged; otherwise it fails
	// as UpdateGlobal does.
	Decide(ctx context.Context, xid string, branches int, u GlobalUpdate) error
}

// LockingAdder is an optional Store capability, for a Store that is also
// the coordinator's LockStore: registering a branch and taking its row
// locks in one atomic write, so that a registration costs one write and no
// lock outlives a refused branch. The coordinator uses it when the same
// value is its Store and its LockStore.
type LockingAdder interface {
	// AddBranchLocked does AcquireLocks(b.XID, b.BranchID, locks) and
	// AddBranch(b) as one: both happen, or neither. It fails as either
	// would.
	AddBranchLocked(ctx context.Context, b *BranchSession, locks []RowLock) error
}

// LockHolderLister is an optional LockStore capability with which the
// coordinator finds global row locks that outlived their transaction: taken
// by a replica that died before it stored the branch, or not released
// because a replica died right after the final status.
type LockHolderLister interface {
	// LockHolders returns up to limit distinct XIDs that hold locks, in
	// ascending order, starting after the XID after ("" for the first).
	LockHolders(ctx context.Context, after string, limit int) ([]string, error)
}

// Leader is an optional Store capability of a replicated store whose every
// node runs a coordinator: the background work (phase-2 recovery, timeouts,
// cleanup, orphan locks) runs only on the node that leads, and a node that
// becomes leader starts it at once, so it resumes every transaction in
// flight. Without it the work runs on every replica, which the store's
// conditional changes and leases make safe.
type Leader interface {
	// Leading reports whether this node leads now, and returns a channel
	// that is closed at the next change.
	Leading() (bool, <-chan struct{})
}

// ListFilter selects sessions for Store.ListGlobals.
type ListFilter struct {
	// Statuses, when not empty, keeps only these statuses.
	Statuses []tcv1.GlobalStatus
	// Limit caps the result; 0 means 100.
	Limit int
}

// RowLock is one global row lock: a primary key of a table of a resource,
// held by a branch of a global transaction.
type RowLock struct {
	ResourceID string
	Table      string
	PK         string
	XID        string
	BranchID   int64
}

// LockStore keeps global row locks. Implementations must make AcquireLocks
// atomic: every lock of the call is taken, or none.
type LockStore interface {
	// AcquireLocks takes every lock in locks for (xid, branchID). Locks the
	// same xid already holds count as taken (re-entry). When any key is held
	// by another transaction it takes none and returns a *LockConflictError
	// naming the holder.
	AcquireLocks(ctx context.Context, xid string, branchID int64, locks []RowLock) error
	// ReleaseBranchLocks releases the locks of one branch.
	ReleaseBranchLocks(ctx context.Context, xid string, branchID int64) error
	// ReleaseGlobalLocks releases every lock of a global transaction.
	ReleaseGlobalLocks(ctx context.Context, xid string) error
	// QueryLocks returns the locks held on the given keys (XID and BranchID
	// of the arguments are ignored), with their holders.
	QueryLocks(ctx context.Context, locks []RowLock) ([]RowLock, error)
}
