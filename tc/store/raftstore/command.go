package raftstore

import (
	"fmt"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// commandVersion is the first byte of every encoded command and query. A
// node refuses a version it does not know, so during a rolling upgrade the
// new version must be written only once every node reads it (see
// docs/operations.md).
const commandVersion = 1

// op names what a command does. Commands (below opQuery) change the state
// machine and are entries of the Raft log; queries (from opQuery) only read
// it and travel only from a follower to the leader.
type op byte

const (
	opCreate op = iota + 1
	opUpdateGlobal
	opAddBranch
	opUpdateBranch
	opClaimDue
	opDeleteFinished
	opFinishEmpty
	opAcquireLocks
	opReleaseBranchLocks
	opReleaseGlobalLocks
)

const (
	opQuery op = iota + 64
	opGet
	opList
	opTimedOut
	opQueryLocks
	opLockHolders
	opPing
)

func (o op) String() string {
	names := map[op]string{
		opCreate: "create", opUpdateGlobal: "update-global", opAddBranch: "add-branch", opUpdateBranch: "update-branch",
		opClaimDue: "claim-due", opDeleteFinished: "delete-finished", opFinishEmpty: "finish-empty",
		opAcquireLocks: "acquire-locks", opReleaseBranchLocks: "release-branch-locks", opReleaseGlobalLocks: "release-global-locks",
		opGet: "get", opList: "list", opTimedOut: "timed-out", opQueryLocks: "query-locks", opLockHolders: "lock-holders", opPing: "ping",
	}
	if n, ok := names[o]; ok {
		return n
	}
	return fmt.Sprintf("op(%d)", byte(o))
}

// command is one change or query, as it travels in the log and between
// nodes. Which fields an op uses is written down in encodeCommand; the
// others stay zero. Times are nanoseconds since the epoch (0 for the zero
// time), so that applying a command reads no clock: now is the proposer's
// clock when it proposed.
type command struct {
	op  op
	now int64
	xid string

	// opCreate.
	name, application string
	timeout, begin    int64

	// opUpdateGlobal (and Decide, with branches >= 0), opFinishEmpty.
	from                   []tcv1.GlobalStatus
	branches               int64
	status                 tcv1.GlobalStatus
	attempts               int64
	nextAttempt, leaseTill int64
	lastError, owner       string

	// opAddBranch, opUpdateBranch, opAcquireLocks, opReleaseBranchLocks.
	branchID     int64
	branchType   tcv1.BranchType
	branchStatus tcv1.BranchStatus
	resource     string
	lockKeys     string
	data         []byte // opUpdateBranch: nil keeps the data
	async        bool
	created      int64
	locks        []tc.RowLock // ResourceID, Table, PK only

	// opClaimDue, opDeleteFinished, opList, opTimedOut, opLockHolders.
	statuses []tcv1.GlobalStatus
	lease    int64
	limit    int64
	after    string
}

// encodeCommand returns c in the versioned binary form decodeCommand reads.
func encodeCommand(c *command) []byte {
	w := &writer{b: make([]byte, 0, 64+len(c.xid)+len(c.data)+len(c.lockKeys)+32*len(c.locks))}
	w.byte(commandVersion)
	w.byte(byte(c.op))
	switch c.op {
	case opCreate:
		w.str(c.xid)
		w.int(c.now)
		w.str(c.name)
		w.str(c.application)
		w.int(c.timeout)
		w.int(c.begin)
	case opUpdateGlobal:
		w.str(c.xid)
		w.int(c.now)
		writeStatuses(w, c.from)
		w.int(c.branches)
		w.uint(uint64(c.status))
		w.int(c.attempts)
		w.int(c.nextAttempt)
		w.str(c.lastError)
		w.str(c.owner)
		w.int(c.leaseTill)
	case opAddBranch:
		w.str(c.xid)
		w.int(c.now)
		w.int(c.branchID)
		w.uint(uint64(c.branchType))
		w.uint(uint64(c.branchStatus))
		w.str(c.resource)
		w.str(c.lockKeys)
		w.bytes(c.data)
		w.bool(c.async)
		w.int(c.created)
		writeLocks(w, c.locks)
	case opUpdateBranch:
		w.str(c.xid)
		w.int(c.now)
		w.int(c.branchID)
		w.uint(uint64(c.branchStatus))
		w.optBytes(c.data)
	case opClaimDue:
		w.str(c.owner)
		w.int(c.now)
		writeStatuses(w, c.statuses)
		w.int(c.lease)
		w.int(c.limit)
	case opDeleteFinished:
		w.int(c.now)
		w.int(c.limit)
	case opFinishEmpty:
		w.str(c.xid)
		w.int(c.now)
		w.uint(uint64(c.status))
	case opAcquireLocks:
		w.str(c.xid)
		w.int(c.branchID)
		writeLocks(w, c.locks)
	case opReleaseBranchLocks:
		w.str(c.xid)
		w.int(c.branchID)
	case opReleaseGlobalLocks, opGet:
		w.str(c.xid)
	case opList:
		writeStatuses(w, c.statuses)
		w.int(c.limit)
	case opTimedOut:
		w.int(c.now)
		w.int(c.limit)
	case opQueryLocks:
		writeLocks(w, c.locks)
	case opLockHolders:
		w.str(c.after)
		w.int(c.limit)
	case opPing:
	}
	return w.b
}

// decodeCommand reads a command encodeCommand wrote. Bad input gives an
// error wrapping errCorrupt, never a panic, and allocates at most about the
// input's size.
func decodeCommand(b []byte) (*command, error) {
	r := &reader{b: b}
	if v := r.byte(); r.err == nil && v != commandVersion {
		return nil, fmt.Errorf("%w: command version %d, this node reads %d; upgrade it", errCorrupt, v, commandVersion)
	}
	c := &command{op: op(r.byte())}
	switch c.op {
	case opCreate:
		c.xid = r.str()
		c.now = r.int()
		c.name = r.str()
		c.application = r.str()
		c.timeout = r.int()
		c.begin = r.int()
	case opUpdateGlobal:
		c.xid = r.str()
		c.now = r.int()
		c.from = readStatuses(r)
		c.branches = r.int()
		c.status = readStatus(r)
		c.attempts = r.int()
		c.nextAttempt = r.int()
		c.lastError = r.str()
		c.owner = r.str()
		c.leaseTill = r.int()
	case opAddBranch:
		c.xid = r.str()
		c.now = r.int()
		c.branchID = r.int()
		c.branchType = tcv1.BranchType(readEnum(r))
		c.branchStatus = tcv1.BranchStatus(readEnum(r))
		c.resource = r.str()
		c.lockKeys = r.str()
		c.data = r.bytes()
		c.async = r.bool()
		c.created = r.int()
		c.locks = readLocks(r)
	case opUpdateBranch:
		c.xid = r.str()
		c.now = r.int()
		c.branchID = r.int()
		c.branchStatus = tcv1.BranchStatus(readEnum(r))
		c.data = r.optBytes()
	case opClaimDue:
		c.owner = r.str()
		c.now = r.int()
		c.statuses = readStatuses(r)
		c.lease = r.int()
		c.limit = r.int()
	case opDeleteFinished:
		c.now = r.int()
		c.limit = r.int()
	case opFinishEmpty:
		c.xid = r.str()
		c.now = r.int()
		c.status = readStatus(r)
	case opAcquireLocks:
		c.xid = r.str()
		c.branchID = r.int()
		c.locks = readLocks(r)
	case opReleaseBranchLocks:
		c.xid = r.str()
		c.branchID = r.int()
	case opReleaseGlobalLocks, opGet:
		c.xid = r.str()
	case opList:
		c.statuses = readStatuses(r)
		c.limit = r.int()
	case opTimedOut:
		c.now = r.int()
		c.limit = r.int()
	case opQueryLocks:
		c.locks = readLocks(r)
	case opLockHolders:
		c.after = r.str()
		c.limit = r.int()
	case opPing:
	default:
		if r.err == nil {
			return nil, fmt.Errorf("%w: unknown op %d", errCorrupt, byte(c.op))
		}
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return c, nil
}

// maxEnum bounds the enum values a decoder accepts, far above any the
// protocol defines, so a status always fits the state machine's byte.
const maxEnum = 255

func readEnum(r *reader) int32 {
	v := r.uint()
	if v > maxEnum {
		r.fail("enum value %d out of range", v)
		return 0
	}
	return int32(v)
}

func readStatus(r *reader) tcv1.GlobalStatus { return tcv1.GlobalStatus(readEnum(r)) }

func writeStatuses(w *writer, ss []tcv1.GlobalStatus) {
	w.uint(uint64(len(ss)))
	for _, s := range ss {
		w.uint(uint64(s))
	}
}

func readStatuses(r *reader) []tcv1.GlobalStatus {
	n := r.count(1)
	if n == 0 {
		return nil
	}
	out := make([]tcv1.GlobalStatus, n)
	for i := range out {
		out[i] = readStatus(r)
	}
	return out
}

func writeLocks(w *writer, locks []tc.RowLock) {
	w.uint(uint64(len(locks)))
	for _, l := range locks {
		w.str(l.ResourceID)
		w.str(l.Table)
		w.str(l.PK)
	}
}

func readLocks(r *reader) []tc.RowLock {
	n := r.count(3)
	if n == 0 {
		return nil
	}
	out := make([]tc.RowLock, n)
	for i := range out {
		out[i] = tc.RowLock{ResourceID: r.str(), Table: r.str(), PK: r.str()}
	}
	return out
}
