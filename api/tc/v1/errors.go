package tcv1

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the Domain of every errdetails.ErrorInfo the coordinator
// attaches to its gRPC errors.
const ErrorDomain = "gtx.io"

// Reasons of the errdetails.ErrorInfo the coordinator attaches to its
// FailedPrecondition errors. Clients decide on the reason and read the
// metadata; the message is for people and may change.
const (
	// ReasonLockConflict: RegisterBranch could not take a global row lock
	// because another transaction holds it. Metadata: MetaHolderXID,
	// MetaHolderBranch, MetaHolderStatus (when the coordinator knows it),
	// MetaTable and MetaPK.
	ReasonLockConflict = "LOCK_CONFLICT"
	// ReasonStatusConflict: the transaction's status does not allow the
	// call (a branch registering with a transaction no longer in BEGIN, a
	// commit of a transaction that is rolling back). Metadata: MetaXID and
	// MetaStatus, the status it is in.
	ReasonStatusConflict = "STATUS_CONFLICT"
	// ReasonTimedOut: a branch tried to register with a transaction past its
	// timeout, which the coordinator is about to roll back. No metadata.
	ReasonTimedOut = "TIMED_OUT"
)

// Metadata keys of the errdetails.ErrorInfo the coordinator attaches.
// Statuses are their GlobalStatus names ("ROLLBACKING"), branch IDs decimal.
const (
	// MetaXID is the transaction the call was about.
	MetaXID = "xid"
	// MetaStatus is that transaction's global status.
	MetaStatus = "status"
	// MetaHolderXID is the transaction holding a contended lock.
	MetaHolderXID = "holder_xid"
	// MetaHolderBranch is the branch holding a contended lock.
	MetaHolderBranch = "holder_branch"
	// MetaHolderStatus is the global status of the holder, empty or
	// GLOBAL_STATUS_UNSPECIFIED when not known.
	MetaHolderStatus = "holder_status"
	// MetaTable and MetaPK name a contended row in lock-key form.
	MetaTable = "table"
	MetaPK    = "pk"
)

// ErrorInfoOf returns the errdetails.ErrorInfo of ErrorDomain that the
// coordinator attached to err, a gRPC error, or nil when there is none.
func ErrorInfoOf(err error) *errdetails.ErrorInfo {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorDomain {
			return info
		}
	}
	return nil
}

// ParseGlobalStatus reads a global status by its name ("ROLLBACKING"), as
// the metadata carries it, and gives GLOBAL_STATUS_UNSPECIFIED for a name
// it does not know.
func ParseGlobalStatus(name string) GlobalStatus {
	return GlobalStatus(GlobalStatus_value[name])
}
