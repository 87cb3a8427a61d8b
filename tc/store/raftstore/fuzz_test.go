package raftstore

import (
	"bytes"
	"errors"
	"testing"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// seedCommands are one command of every op, for the fuzzers' corpus and
// the round-trip test.
func seedCommands() []*command {
	locks := []tc.RowLock{{ResourceID: "db", Table: "orders", PK: "1"}, {ResourceID: "db", Table: "items", PK: "日本"}}
	return []*command{
		{op: opCreate, xid: "1", now: 5, name: "n", application: "a", timeout: 60e9, begin: 4},
		{op: opUpdateGlobal, xid: "1", now: 6, from: []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, branches: 2,
			status: tcv1.GlobalStatus_COMMITTING, attempts: 3, nextAttempt: 7, lastError: "e", owner: "o", leaseTill: 8},
		{op: opAddBranch, xid: "1", now: 6, branchID: 9, branchType: tcv1.BranchType_TCC, branchStatus: tcv1.BranchStatus_REGISTERED,
			resource: "r", lockKeys: "orders:1", data: []byte{0, 1, 2}, async: true, created: 6, locks: locks},
		{op: opUpdateBranch, xid: "1", now: 7, branchID: 9, branchStatus: tcv1.BranchStatus_PHASE1_DONE, data: []byte{}},
		{op: opClaimDue, owner: "o", now: 8, statuses: tcv1.Phase2Statuses(), lease: 60e9, limit: 16},
		{op: opDeleteFinished, now: 9, limit: 1000},
		{op: opFinishEmpty, xid: "1", now: 9, status: tcv1.GlobalStatus_COMMITTED},
		{op: opAcquireLocks, xid: "1", branchID: 9, locks: locks},
		{op: opReleaseBranchLocks, xid: "1", branchID: 9},
		{op: opReleaseGlobalLocks, xid: "1"},
		{op: opGet, xid: "1"},
		{op: opList, statuses: []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, limit: 100},
		{op: opTimedOut, now: 10, limit: 1000},
		{op: opQueryLocks, locks: locks},
		{op: opLockHolders, after: "0", limit: 500},
		{op: opPing},
	}
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range seedCommands() {
		t.Run(c.op.String(), func(t *testing.T) {
			b := encodeCommand(c)
			got, err := decodeCommand(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if again := encodeCommand(got); !bytes.Equal(again, b) {
				t.Fatalf("re-encoded differs:\n%x\n%x", again, b)
			}
			// Every strict prefix is refused.
			for i := range b {
				if _, err := decodeCommand(b[:i]); !errors.Is(err, errCorrupt) {
					t.Fatalf("prefix of %d bytes: %v, want errCorrupt", i, err)
				}
			}
		})
	}
}

// FuzzDecodeCommand checks that any bytes decode to a command that encodes
// back to the same bytes, or to an error; never a panic, never more memory
// than the input can describe.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range seedCommands() {
		f.Add(encodeCommand(c))
	}
	f.Add([]byte{commandVersion, byte(opAcquireLocks), 1, '1', 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommand(b)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("error %v does not wrap errCorrupt", err)
			}
			return
		}
		if len(c.locks) > len(b) || len(c.from)+len(c.statuses) > len(b) {
			t.Fatalf("decoded %d locks and %d statuses from %d bytes", len(c.locks), len(c.from)+len(c.statuses), len(b))
		}
		if _, err := decodeCommand(encodeCommand(c)); err != nil {
			t.Fatalf("a decoded command does not decode again: %v", err)
		}
		// Applying whatever decodes must not panic either.
		st := newState()
		if c.op < opQuery {
			st.apply(c, 1)
		} else {
			st.query(c)
		}
	})
}

// FuzzDecodeSnapshot checks that a snapshot decodes or fails with an error.
func FuzzDecodeSnapshot(f *testing.F) {
	st := newState()
	for _, c := range seedCommands() {
		if c.op < opQuery {
			st.apply(c, 1)
		}
	}
	st.apply(&command{op: opCreate, xid: "2", timeout: 1e9}, 1)
	st.apply(&command{op: opAddBranch, xid: "2", branchID: 1, locks: []tc.RowLock{{ResourceID: "r", Table: "t", PK: "k"}}}, 1)
	f.Add(st.encodeSnapshot())
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeSnapshot(b)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("error %v does not wrap errCorrupt", err)
			}
			return
		}
		if _, err := decodeSnapshot(got.encodeSnapshot()); err != nil {
			t.Fatalf("a decoded snapshot does not decode again: %v", err)
		}
	})
}

// FuzzDecodeResult checks the decoder of what a leader answers a follower.
func FuzzDecodeResult(f *testing.F) {
	f.Add(encodeResult(&result{ok: true, n: 3, xids: []string{"a"}, locks: []tc.RowLock{{ResourceID: "r", Table: "t", PK: "k", XID: "x", BranchID: 1}},
		sessions: []*tc.GlobalSession{{XID: "x", Branches: []*tc.BranchSession{{XID: "x", BranchID: 1, ApplicationData: []byte("d")}}}}}))
	f.Add(encodeResult(&result{err: &tc.LockConflictError{Lock: tc.RowLock{XID: "h"}, HolderStatus: tcv1.GlobalStatus_BEGIN}}))
	f.Add(encodeResult(&result{err: &tc.StatusError{XID: "x", Status: tcv1.GlobalStatus_COMMITTED}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := decodeResult(b)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("error %v does not wrap errCorrupt", err)
			}
			return
		}
		if _, err := decodeResult(encodeResult(res)); err != nil {
			t.Fatalf("a decoded result does not decode again: %v", err)
		}
	})
}
