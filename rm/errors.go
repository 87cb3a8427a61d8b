package rm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
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
	switch e.HolderStatus {
	case tcv1.GlobalStatus_ROLLBACKING, tcv1.GlobalStatus_ROLLBACK_RETRYING,
		tcv1.GlobalStatus_TIMEOUT_ROLLBACKING, tcv1.GlobalStatus_TIMEOUT_ROLLBACK_RETRYING,
		tcv1.GlobalStatus_ROLLBACKED, tcv1.GlobalStatus_TIMEOUT_ROLLBACKED, tcv1.GlobalStatus_ROLLBACK_FAILED:
		return true
	}
	return false
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

// Reasons of the errdetails.ErrorInfo the coordinator attaches to
// FailedPrecondition errors.
const (
	reasonLockConflict   = "LOCK_CONFLICT"
	reasonStatusConflict = "STATUS_CONFLICT"
)

// coordinatorError maps an error from a coordinator call to this package's
// errors.
func coordinatorError(op, xid string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("rm: %s of %s: %w", op, xid, err)
	}
	info := errorInfo(st)
	switch st.Code() {
	case codes.FailedPrecondition:
		if info.GetReason() == reasonLockConflict || (info == nil && strings.HasPrefix(st.Message(), lockConflictPrefix)) {
			return lockConflict(xid, st, info, err)
		}
		return &NotActiveError{XID: xid, Status: parseStatus(info.GetMetadata()["status"]), Message: st.Message(), err: err}
	case codes.NotFound:
		return fmt.Errorf("%w: %s of %s: %w", ErrTransactionNotFound, op, xid, err)
	case codes.InvalidArgument:
		return fmt.Errorf("%w: %s of %s: %w", ErrInvalidArgument, op, xid, err)
	case codes.Unavailable:
		return fmt.Errorf("%w: %s of %s: %w", ErrCoordinatorUnavailable, op, xid, err)
	}
	return fmt.Errorf("rm: %s of %s: %w", op, xid, err)
}

func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// lockConflict builds a *LockConflictError from the ErrorInfo the
// coordinator attached or, failing that, from its message.
func lockConflict(xid string, st *status.Status, info *errdetails.ErrorInfo, err error) *LockConflictError {
	e := &LockConflictError{XID: xid, Message: st.Message(), err: err}
	if info != nil {
		md := info.GetMetadata()
		e.HolderXID = md["holder_xid"]
		e.HolderBranchID, _ = strconv.ParseInt(md["holder_branch"], 10, 64)
		e.HolderStatus = parseStatus(md["holder_status"])
		e.Table, e.PK = md["table"], md["pk"]
		return e
	}
	if m, ok := parseLockConflictMessage(st.Message()); ok {
		e.HolderXID, e.HolderBranchID, e.HolderStatus, e.Table, e.PK = m.holderXID, m.holderBranch, m.holderStatus, m.table, m.pk
	}
	return e
}

// parseStatus reads a global status by its name ("ROLLBACKING") or number.
func parseStatus(s string) tcv1.GlobalStatus {
	if v, ok := tcv1.GlobalStatus_value[s]; ok {
		return tcv1.GlobalStatus(v)
	}
	if n, err := strconv.ParseInt(s, 10, 32); err == nil {
		if _, ok := tcv1.GlobalStatus_name[int32(n)]; ok {
			return tcv1.GlobalStatus(n)
		}
	}
	return tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED
}

// lockConflictPrefix starts the coordinator's lock-conflict message:
// "tc: global lock on RESOURCE TABLE:PK is held by XID branch ID (STATUS)",
// the status part being optional.
const lockConflictPrefix = "tc: global lock on "

type lockConflictMessage struct {
	table, pk    string
	holderXID    string
	holderBranch int64
	holderStatus tcv1.GlobalStatus
}

// parseLockConflictMessage reads the coordinator's lock-conflict message, for
// a coordinator that sent no ErrorInfo. The resource ID may contain spaces,
// so the message is read from its end.
func parseLockConflictMessage(msg string) (lockConflictMessage, bool) {
	var m lockConflictMessage
	const held = " is held by "
	i := strings.LastIndex(msg, held)
	if !strings.HasPrefix(msg, lockConflictPrefix) || i < len(lockConflictPrefix) {
		return m, false
	}
	head, tail := msg[len(lockConflictPrefix):i], msg[i+len(held):]
	sp := strings.LastIndexByte(head, ' ')
	if sp < 0 {
		return m, false
	}
	var ok bool
	if m.table, m.pk, ok = strings.Cut(head[sp+1:], ":"); !ok {
		return m, false
	}
	f := strings.Fields(tail)
	if len(f) < 3 || f[1] != "branch" {
		return m, false
	}
	branch, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return m, false
	}
	m.holderXID, m.holderBranch = f[0], branch
	if len(f) == 4 && strings.HasPrefix(f[3], "(") && strings.HasSuffix(f[3], ")") {
		m.holderStatus = parseStatus(f[3][1 : len(f[3])-1])
	} else if len(f) != 3 {
		return m, false
	}
	return m, true
}
