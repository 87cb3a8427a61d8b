package rm

import (
	"errors"
	"strconv"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// FuzzCoordinatorError checks that any FailedPrecondition the coordinator
// could send maps without panicking, that the reason alone decides whether
// it is a lock conflict, and that the metadata of a lock conflict reads
// back into its fields.
func FuzzCoordinatorError(f *testing.F) {
	f.Add(tcv1.ReasonLockConflict, "127.0.0.1:8091:9", "3", "ROLLBACKING", "orders", "7", "tc: global lock on db orders:7 is held by 9 branch 3")
	f.Add(tcv1.ReasonStatusConflict, "", "", "TIMEOUT_ROLLBACKING", "", "", "tc: global transaction 1 is TIMEOUT_ROLLBACKING")
	f.Add("", "x", "-1", "99", "", "", "")
	f.Fuzz(func(t *testing.T, reason, holder, branch, st, table, pk, msg string) {
		md := map[string]string{
			tcv1.MetaHolderXID: holder, tcv1.MetaHolderBranch: branch, tcv1.MetaHolderStatus: st,
			tcv1.MetaTable: table, tcv1.MetaPK: pk, tcv1.MetaStatus: st,
		}
		s, err := status.New(codes.FailedPrecondition, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: tcv1.ErrorDomain, Metadata: md})
		if err != nil {
			t.Skip(err)
		}
		got := coordinatorError("register branch", xid, s.Err())
		var lc *LockConflictError
		isLC := errors.As(got, &lc)
		if isLC != (reason == tcv1.ReasonLockConflict) {
			t.Fatalf("reason %q mapped to %v", reason, got)
		}
		if !isLC {
			var na *NotActiveError
			if !errors.As(got, &na) || na.Status != tcv1.ParseGlobalStatus(st) {
				t.Fatalf("reason %q mapped to %v, want a *NotActiveError with status %q", reason, got, st)
			}
			return
		}
		wantBranch, _ := strconv.ParseInt(branch, 10, 64)
		if lc.HolderXID != holder || lc.HolderBranchID != wantBranch || lc.HolderStatus != tcv1.ParseGlobalStatus(st) ||
			lc.Table != table || lc.PK != pk || lc.Message != msg {
			t.Fatalf("metadata %v read back as %+v", md, lc)
		}
	})
}
