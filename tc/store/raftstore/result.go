package raftstore

import (
	"errors"
	"fmt"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// result is what applying a command or running a query gives: the error
// the tc.Store method returns, and its values. The state machine returns it
// from Apply; the leader sends it encoded to a follower that forwarded the
// command.
type result struct {
	err      error
	ok       bool
	n        int
	sessions []*tc.GlobalSession
	locks    []tc.RowLock
	xids     []string
}

// Error kinds of an encoded result: every error a command or query gives
// travels as one of these, so a forwarded call fails exactly as a local one.
const (
	errKindNone byte = iota
	errKindNotFound
	errKindDuplicate
	errKindStatus
	errKindTimedOut
	errKindBranchesChanged
	errKindLockConflict
	errKindInvalidLockKeys
	errKindInvalidInput
	errKindNotLeader
	errKindOther
)

func encodeResult(res *result) []byte {
	w := &writer{}
	var (
		se *tc.StatusError
		lc *tc.LockConflictError
	)
	switch err := res.err; {
	case err == nil:
		w.byte(errKindNone)
	case errors.As(err, &lc):
		w.byte(errKindLockConflict)
		writeRowLock(w, lc.Lock)
		w.uint(uint64(lc.HolderStatus))
	case errors.As(err, &se):
		w.byte(errKindStatus)
		w.str(se.XID)
		w.uint(uint64(se.Status))
	case errors.Is(err, tc.ErrNotFound):
		w.byte(errKindNotFound)
	case errors.Is(err, tc.ErrDuplicateXID):
		w.byte(errKindDuplicate)
	case errors.Is(err, tc.ErrTimedOut):
		w.byte(errKindTimedOut)
	case errors.Is(err, tc.ErrBranchesChanged):
		w.byte(errKindBranchesChanged)
	case errors.Is(err, tc.ErrInvalidLockKeys):
		w.byte(errKindInvalidLockKeys)
		w.str(err.Error())
	case errors.Is(err, ErrInvalidInput):
		w.byte(errKindInvalidInput)
		w.str(err.Error())
	case errors.Is(err, ErrNoLeader):
		w.byte(errKindNotLeader)
		w.str(err.Error())
	default:
		w.byte(errKindOther)
		w.str(err.Error())
	}
	w.bool(res.ok)
	w.int(int64(res.n))
	w.uint(uint64(len(res.sessions)))
	for _, g := range res.sessions {
		writeSession(w, g)
	}
	w.uint(uint64(len(res.locks)))
	for _, l := range res.locks {
		writeRowLock(w, l)
	}
	w.uint(uint64(len(res.xids)))
	for _, x := range res.xids {
		w.str(x)
	}
	return w.b
}

// remoteError is an error the leader reported that has no sentinel here,
// such as a failed disk write; its text is the leader's.
type remoteError struct{ msg string }

func (e *remoteError) Error() string { return "raftstore: leader: " + e.msg }

// wrapped carries an error's text from the leader while matching the
// sentinel it matched there.
type wrapped struct {
	msg      string
	sentinel error
}

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.sentinel }

func decodeResult(b []byte) (*result, error) {
	r := &reader{b: b}
	res := &result{}
	switch k := r.byte(); k {
	case errKindNone:
	case errKindLockConflict:
		lock := readRowLock(r)
		res.err = &tc.LockConflictError{Lock: lock, HolderStatus: readStatus(r)}
	case errKindStatus:
		xid := r.str()
		res.err = &tc.StatusError{XID: xid, Status: readStatus(r)}
	case errKindNotFound:
		res.err = tc.ErrNotFound
	case errKindDuplicate:
		res.err = tc.ErrDuplicateXID
	case errKindTimedOut:
		res.err = tc.ErrTimedOut
	case errKindBranchesChanged:
		res.err = tc.ErrBranchesChanged
	case errKindInvalidLockKeys:
		res.err = &wrapped{msg: r.str(), sentinel: tc.ErrInvalidLockKeys}
	case errKindInvalidInput:
		res.err = &wrapped{msg: r.str(), sentinel: ErrInvalidInput}
	case errKindNotLeader:
		res.err = &wrapped{msg: r.str(), sentinel: ErrNoLeader}
	case errKindOther:
		res.err = &remoteError{msg: r.str()}
	default:
		r.fail("unknown error kind %d", k)
	}
	res.ok = r.bool()
	res.n = int(r.int())
	if n := r.count(8); n > 0 {
		res.sessions = make([]*tc.GlobalSession, n)
		for i := range res.sessions {
			res.sessions[i] = readSession(r)
		}
	}
	if n := r.count(5); n > 0 {
		res.locks = make([]tc.RowLock, n)
		for i := range res.locks {
			res.locks[i] = readRowLock(r)
		}
	}
	if n := r.count(1); n > 0 {
		res.xids = make([]string, n)
		for i := range res.xids {
			res.xids[i] = r.str()
		}
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("decode result: %w", err)
	}
	return res, nil
}

func writeRowLock(w *writer, l tc.RowLock) {
	w.str(l.ResourceID)
	w.str(l.Table)
	w.str(l.PK)
	w.str(l.XID)
	w.int(l.BranchID)
}

func readRowLock(r *reader) tc.RowLock {
	return tc.RowLock{ResourceID: r.str(), Table: r.str(), PK: r.str(), XID: r.str(), BranchID: r.int()}
}

// writeSession writes g with its branches.
func writeSession(w *writer, g *tc.GlobalSession) {
	w.str(g.XID)
	w.str(g.Name)
	w.str(g.Application)
	w.uint(uint64(g.Status))
	w.int(int64(g.Timeout))
	w.time(g.BeginTime)
	w.time(g.UpdateTime)
	w.int(int64(g.Attempts))
	w.time(g.NextAttempt)
	w.str(g.LastError)
	w.str(g.Owner)
	w.time(g.LeaseUntil)
	w.uint(uint64(len(g.Branches)))
	for _, b := range g.Branches {
		w.int(b.BranchID)
		w.uint(uint64(b.Type))
		w.str(b.ResourceID)
		w.str(b.LockKeys)
		w.bytes(b.ApplicationData)
		w.uint(uint64(b.Status))
		w.time(b.CreateTime)
		w.bool(b.AsyncCommit)
	}
}

func readSession(r *reader) *tc.GlobalSession {
	g := &tc.GlobalSession{
		XID:         r.str(),
		Name:        r.str(),
		Application: r.str(),
		Status:      readStatus(r),
		Timeout:     durationOf(r.int()),
		BeginTime:   r.time(),
		UpdateTime:  r.time(),
		Attempts:    int(r.int()),
		NextAttempt: r.time(),
		LastError:   r.str(),
		Owner:       r.str(),
		LeaseUntil:  r.time(),
	}
	if n := r.count(8); n > 0 {
		g.Branches = make([]*tc.BranchSession, n)
		for i := range g.Branches {
			b := &tc.BranchSession{XID: g.XID, BranchID: r.int(), Type: tcv1.BranchType(readEnum(r)),
				ResourceID: r.str(), LockKeys: r.str(), ApplicationData: r.bytes()}
			b.Status = tcv1.BranchStatus(readEnum(r))
			b.CreateTime = r.time()
			b.AsyncCommit = r.bool()
			g.Branches[i] = b
		}
	}
	return g
}
