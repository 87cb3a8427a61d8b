package tc

import (
	"errors"
	"fmt"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

var (
	// ErrNotFound is returned when a global transaction or branch does not
	// exist (never begun, or finished and cleaned up).
	ErrNotFound = errors.New("tc: global transaction not found")
	// ErrDuplicateXID is returned by Store.CreateGlobal for an XID that exists.
	ErrDuplicateXID = errors.New("tc: xid already exists")
	// ErrStatusConflict is matched by a *StatusError: the transaction is not in
	// a status that allows the operation.
	ErrStatusConflict = errors.New("tc: global transaction status does not allow this")
	// ErrLockConflict is matched by a *LockConflictError.
	ErrLockConflict = errors.New("tc: global row lock held by another transaction")
	// ErrTimedOut is returned by Store.AddBranch for a session still in
	// BEGIN whose deadline (BeginTime plus Timeout) is before the branch's
	// CreateTime: the coordinator is about to roll it back.
	ErrTimedOut = errors.New("tc: global transaction timed out")
	// ErrBranchesChanged is returned by Decider.Decide when a branch
	// registered since the caller read the session: read it again and
	// decide on what it has now.
	ErrBranchesChanged = errors.New("tc: branches registered since the transaction was read")
	// ErrInvalidLockKeys is returned for lock keys not in the
	// "table:pk1,pk2;table2:pk3" form; it is tcv1.ErrInvalidLockKeys.
	ErrInvalidLockKeys = tcv1.ErrInvalidLockKeys
)

// StatusError says that a global transaction's status does not allow an
// operation. It matches ErrStatusConflict.
type StatusError struct {
	XID    string
	Status tcv1.GlobalStatus
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("tc: global transaction %s is %s", e.XID, e.Status)
}

// Is makes errors.Is(err, ErrStatusConflict) true.
func (e *StatusError) Is(target error) bool { return target == ErrStatusConflict }

// LockConflictError says that a global row lock is held by another
// transaction. It matches ErrLockConflict.
type LockConflictError struct {
	// Lock is the contended lock with its holder's XID and branch.
	Lock RowLock
	// HolderStatus is the holder's global status, when the coordinator knows it.
	HolderStatus tcv1.GlobalStatus
}

func (e *LockConflictError) Error() string {
	s := fmt.Sprintf("tc: global lock on %s %s:%s is held by %s branch %d", e.Lock.ResourceID, e.Lock.Table, e.Lock.PK, e.Lock.XID, e.Lock.BranchID)
	if e.HolderStatus != tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED {
		s += " (" + e.HolderStatus.String() + ")"
	}
	return s
}

// Is makes errors.Is(err, ErrLockConflict) true.
func (e *LockConflictError) Is(target error) bool { return target == ErrLockConflict }
