package rm

import (
	"strings"
	"testing"
	"unicode"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// coordinatorMessage is the lock-conflict message the coordinator sends.
func coordinatorMessage(resourceID, table, pk, holder string, branch int64, st tcv1.GlobalStatus) string {
	return (&tc.LockConflictError{
		Lock:         tc.RowLock{ResourceID: resourceID, Table: table, PK: pk, XID: holder, BranchID: branch},
		HolderStatus: st,
	}).Error()
}

func TestParseLockConflictMessage(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		ok   bool
		want lockConflictMessage
	}{
		{
			name: "with status",
			msg:  coordinatorMessage("orders-db", "orders", "7", "127.0.0.1:8091:9", 3, tcv1.GlobalStatus_ROLLBACKING),
			ok:   true,
			want: lockConflictMessage{table: "orders", pk: "7", holderXID: "127.0.0.1:8091:9", holderBranch: 3, holderStatus: tcv1.GlobalStatus_ROLLBACKING},
		},
		{
			name: "without status",
			msg:  coordinatorMessage("orders-db", "orders", "1_2", "55", 4, tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED),
			ok:   true,
			want: lockConflictMessage{table: "orders", pk: "1_2", holderXID: "55", holderBranch: 4},
		},
		{
			name: "resource with spaces",
			msg:  coordinatorMessage("root@tcp(db 1)/shop", "t", "k", "x", 1, tcv1.GlobalStatus_BEGIN),
			ok:   true,
			want: lockConflictMessage{table: "t", pk: "k", holderXID: "x", holderBranch: 1, holderStatus: tcv1.GlobalStatus_BEGIN},
		},
		{name: "other message", msg: "tc: global transaction 1 is ROLLBACKED"},
		{name: "no branch number", msg: "tc: global lock on r t:k is held by x branch y"},
		{name: "trailing junk", msg: "tc: global lock on r t:k is held by x branch 1 (BEGIN) more"},
		{name: "no table", msg: "tc: global lock on r tk is held by x branch 1"},
		{name: "empty", msg: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseLockConflictMessage(tt.msg)
			if ok != tt.ok || (ok && got != tt.want) {
				t.Fatalf("parse %q = %+v, %v; want %+v, %v", tt.msg, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzParseLockConflictMessage checks that parsing never panics, and that a
// message the coordinator builds reads back to the fields it was built from
// (for fields the message can carry unambiguously).
func FuzzParseLockConflictMessage(f *testing.F) {
	f.Add("orders-db", "orders", "7", "127.0.0.1:8091:9", int64(3), int32(7))
	f.Add("db one", "t", "1_2", "9", int64(1), int32(0))
	f.Add("", ":", "", "", int64(-1), int32(99))
	f.Fuzz(func(t *testing.T, resourceID, table, pk, holder string, branch int64, st int32) {
		msg := coordinatorMessage(resourceID, table, pk, holder, branch, tcv1.GlobalStatus(st))
		got, ok := parseLockConflictMessage(msg)
		_, _ = parseLockConflictMessage(resourceID + table + pk + holder)
		carried := tcv1.GlobalStatus_name[st] != "" // an unknown status prints as a number
		clean := func(s string) bool {
			return s != "" && strings.IndexFunc(s, unicode.IsSpace) < 0 && !strings.Contains(s, ":")
		}
		if !clean(table) || !clean(pk) || !clean(holder) || !carried || strings.Contains(resourceID, " is held by ") {
			return
		}
		want := lockConflictMessage{table: table, pk: pk, holderXID: holder, holderBranch: branch, holderStatus: tcv1.GlobalStatus(st)}
		if !ok || got != want {
			t.Fatalf("parse %q = %+v, %v; want %+v", msg, got, ok, want)
		}
	})
}
