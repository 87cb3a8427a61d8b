package storetest

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// allStatuses are every global status a session can be in, for updates that
// must apply whatever the current status is.
var allStatuses = tcv1.GlobalStatuses()

// idSeq makes XIDs and branch IDs unique within one process, so that stores
// shared by several suite runs never see the same names twice.
var idSeq atomic.Int64

// newXID returns a well-formed XID that no other call returns.
func newXID(tag string) string {
	return fmt.Sprintf("storetest:%s:%d:%d", tag, time.Now().UnixNano(), idSeq.Add(1))
}

// newBranchID returns a branch ID that no other call returns.
func newBranchID() int64 {
	return time.Now().UnixNano()/1000 + idSeq.Add(1)
}

// baseTime is a whole-millisecond UTC time for building sessions.
func baseTime() time.Time {
	return time.Now().UTC().Truncate(time.Millisecond)
}

// newGlobal returns a session ready for CreateGlobal.
func newGlobal(tag string, begin time.Time, timeout time.Duration) *tc.GlobalSession {
	return &tc.GlobalSession{
		XID:         newXID(tag),
		Name:        "storetest-" + tag,
		Application: "storetest",
		Status:      tcv1.GlobalStatus_BEGIN,
		Timeout:     timeout,
		BeginTime:   begin,
		UpdateTime:  begin,
	}
}

// newBranch returns a branch of xid ready for AddBranch.
func newBranch(xid string, created time.Time, data []byte) *tc.BranchSession {
	return &tc.BranchSession{
		XID:             xid,
		BranchID:        newBranchID(),
		Type:            tcv1.BranchType_AT,
		ResourceID:      "jdbc:storetest/orders",
		LockKeys:        "orders:1,2;items:7",
		ApplicationData: data,
		Status:          tcv1.BranchStatus_REGISTERED,
		CreateTime:      created,
	}
}

// sameTime reports whether a and b are the same instant to the millisecond,
// with zero matching only zero.
func sameTime(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	d := a.Sub(b)
	return d > -time.Millisecond && d < time.Millisecond
}

// checkGlobal fails t when got differs from want in any stored field other
// than UpdateTime and Branches.
func checkGlobal(t *testing.T, want, got *tc.GlobalSession) {
	t.Helper()
	if got == nil {
		t.Fatalf("session %s: got nil", want.XID)
	}
	if got.XID != want.XID || got.Name != want.Name || got.Application != want.Application ||
		got.Status != want.Status || got.Timeout != want.Timeout || got.Attempts != want.Attempts ||
		got.LastError != want.LastError || got.Owner != want.Owner {
		t.Errorf("session %s:\n got %+v\nwant %+v", want.XID, *got, *want)
	}
	for _, c := range []struct {
		name      string
		got, want time.Time
	}{
		{"BeginTime", got.BeginTime, want.BeginTime},
		{"NextAttempt", got.NextAttempt, want.NextAttempt},
		{"LeaseUntil", got.LeaseUntil, want.LeaseUntil},
	} {
		if !sameTime(c.got, c.want) {
			t.Errorf("session %s: %s = %v, want %v", want.XID, c.name, c.got, c.want)
		}
	}
}

// checkBranch fails t when got differs from want in any stored field.
func checkBranch(t *testing.T, want, got *tc.BranchSession) {
	t.Helper()
	if got == nil {
		t.Fatalf("branch %d: got nil", want.BranchID)
	}
	if got.XID != want.XID || got.BranchID != want.BranchID || got.Type != want.Type ||
		got.ResourceID != want.ResourceID || got.LockKeys != want.LockKeys || got.Status != want.Status {
		t.Errorf("branch %d:\n got %+v\nwant %+v", want.BranchID, *got, *want)
	}
	if !bytes.Equal(got.ApplicationData, want.ApplicationData) {
		t.Errorf("branch %d: ApplicationData = %x, want %x", want.BranchID, got.ApplicationData, want.ApplicationData)
	}
	if !sameTime(got.CreateTime, want.CreateTime) {
		t.Errorf("branch %d: CreateTime = %v, want %v", want.BranchID, got.CreateTime, want.CreateTime)
	}
}

// xids returns the XIDs of sessions, in order.
func xids(ss []*tc.GlobalSession) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.XID
	}
	return out
}

// sameSet reports whether a and b hold the same strings, ignoring order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := make(map[string]int, len(a))
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
		if m[s] < 0 {
			return false
		}
	}
	return true
}
