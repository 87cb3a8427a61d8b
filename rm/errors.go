package rm

import (
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

var (
	// ErrInvalidConfig is matched by the errors of Config.Validate and New.
	ErrInvalidConfig = errors.New("rm: invalid config")
	// ErrInvalidArgument is returned for bad input, either caught here
	// (nothing was sent) or refused by the coordinator.
	ErrInvalidArgument = errors.New("rm: invalid argument")
	// ErrLockConflict is matched by a *LockConflictError: a global row lock
	// the branch needs is held by another global transaction.
	ErrLockConflict = errors.New("rm: global row lock held by another transaction")
	// ErrTransactionNotActive is matched by a *NotActiveError: the global
	// transaction is no longer in BEGIN (it is committing, rolling back or
	// finished), so no branch can join or report.
	ErrTransactionNotActive = errors.New("rm: global transaction is not active")
	// ErrTransactionNotFound is returned when the coordinator does not know
	// the XID.
	ErrTransactionNotFound = errors.New("rm: global transaction not found")
	// ErrCoordinatorUnavailable is returned when no coordinator could be
	// reached; the call may be retried.
	ErrCoordinatorUnavailable = errors.New("rm: no coordinator available")
	// ErrStarted is returned by Start on a Manager already started.
	ErrStarted = errors.New("rm: manager already started")
	// ErrClosed is returned by the methods of a closed Manager.
	ErrClosed = errors.New("rm: manager closed")
)

// LockConflictError says that RegisterBranch could not take its global row
// locks because another global transaction holds one of them. It matches
// ErrLockConflict. When HolderRollingBack is true, waiting is pointless if
// the caller holds a local lock the holder's rollback needs: give up at once.
type LockConflictError struct {
	// XID is the caller's transaction.
	XID string
	// HolderXID and HolderBranchID name the branch holding the lock.
	HolderXID      string
	HolderBranchID int64
	// HolderStatus is the holder's global status, or
	// GLOBAL_STATUS_UNSPECIFIED when the coordinator did not say.
	HolderStatus tcv1.GlobalStatus
	// Table and PK name the contended row, when known.
	Table, PK string
	// Message is the coordinator's description of the conflict.
	Message string

	err error
}

func (e *LockConflictError) Error() string {
	return fmt.Sprintf("rm: register branch of %s: %s", e.XID, e.Message)
}

// Is makes errors.Is(err, ErrLockConflict) true.
func (e *LockConflictError) Is(target error) bool { return target == ErrLockConflict }

// Unwrap returns the coordinator's gRPC error.
func (e *LockConflictError) Unwrap() error { return e.err }

// HolderRollingBack reports whether the holder's transaction is rolling back
// or rolled back.
func (e *LockConflictError) HolderRollingBack() bool {
	return e.HolderStatus.IsRollbackDecided()
}

// NotActiveError says that a global transaction is not in BEGIN any more. It
// matches ErrTransactionNotActive. The local work of the branch must be
// rolled back.
type NotActiveError struct {
	XID string
	// Status is the transaction's status, or GLOBAL_STATUS_UNSPECIFIED when
	// the coordinator did not say.
	Status tcv1.GlobalStatus
	// Message is the coordinator's description.
	Message string

	err error
}

func (e *NotActiveError) Error() string {
	return fmt.Sprintf("rm: global transaction %s is not active (%s): %s; roll the local work back", e.XID, e.Status, e.Message)
}

// Is makes errors.Is(err, ErrTransactionNotActive) true.
func (e *NotActiveError) Is(target error) bool { return target == ErrTransactionNotActive }

// Unwrap returns the coordinator's gRPC error.
func (e *NotActiveError) Unwrap() error { return e.err }

// coordinatorError maps an error from a coordinator call to this package's
// errors. A FailedPrecondition is a lock conflict exactly when its ErrorInfo
// has reason tcv1.ReasonLockConflict; the message is never read.
func coordinatorError(op, xid string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("rm: %s of %s: %w", op, xid, err)
	}
	info := tcv1.ErrorInfoOf(err)
	switch st.Code() {
	case codes.FailedPrecondition:
		if info.GetReason() == tcv1.ReasonLockConflict {
			return lockConflict(xid, st, info.GetMetadata(), err)
		}
		return &NotActiveError{XID: xid, Status: tcv1.ParseGlobalStatus(info.GetMetadata()[tcv1.MetaStatus]), Message: st.Message(), err: err}
	case codes.NotFound:
		return fmt.Errorf("%w: %s of %s: %w", ErrTransactionNotFound, op, xid, err)
	case codes.InvalidArgument:
		return fmt.Errorf("%w: %s of %s: %w", ErrInvalidArgument, op, xid, err)
	case codes.Unavailable:
		return fmt.Errorf("%w: %s of %s: %w", ErrCoordinatorUnavailable, op, xid, err)
	}
	return fmt.Errorf("rm: %s of %s: %w", op, xid, err)
}

// lockConflict builds a *LockConflictError from the metadata of the
// coordinator's ErrorInfo.
func lockConflict(xid string, st *status.Status, md map[string]string, err error) *LockConflictError {
	e := &LockConflictError{XID: xid, Message: st.Message(), err: err}
	e.HolderXID = md[tcv1.MetaHolderXID]
	e.HolderBranchID, _ = strconv.ParseInt(md[tcv1.MetaHolderBranch], 10, 64)
	e.HolderStatus = tcv1.ParseGlobalStatus(md[tcv1.MetaHolderStatus])
	e.Table, e.PK = md[tcv1.MetaTable], md[tcv1.MetaPK]
	return e
}
