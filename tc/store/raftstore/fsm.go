package raftstore

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// state is the replicated state machine: every session, branch and row
// lock, in memory. apply is a pure function of (state, command, term):
// it reads no clock (the proposer's now travels in the command) and
// iterates no map where order would show, so every node that applies the
// same log holds the same state. Reads run concurrently with apply under
// mu.
type state struct {
	mu sync.RWMutex

	sessions map[string]*session
	// seq numbers sessions in creation order, for stable orderings.
	seq uint64
	// begun, phase2 and finished index sessions by status class, for the
	// background loops' scans.
	begun    map[*session]struct{}
	phase2   map[*session]struct{}
	finished map[*session]struct{}

	// locks maps a lock key (see lockKey) to its holder; held lists the
	// keys each XID holds.
	locks map[string]holder
	held  map[string][]heldLock

	names interner
}

// session is one global transaction, kept compact: times are nanoseconds
// since the epoch (0 for none), repeated strings are interned.
type session struct {
	xid, name, app   string
	lastError, owner string
	timeout          int64
	begin, update    int64
	next, leaseUntil int64
	// leaseTerm is the Raft term in which the lease was granted: a lease
	// from an older term binds no one, so a new leader resumes at once.
	leaseTerm uint64
	seq       uint64
	attempts  int32
	status    tcv1.GlobalStatus
	branches  []branch
}

// branch is one branch of a session.
type branch struct {
	id       int64
	created  int64
	resource string
	lockKeys string
	data     []byte
	typ      tcv1.BranchType
	status   tcv1.BranchStatus
	async    bool
}

type holder struct {
	xid    string
	branch int64
}

type heldLock struct {
	key    string
	branch int64
}

func newState() *state {
	return &state{
		sessions: make(map[string]*session),
		begun:    make(map[*session]struct{}),
		phase2:   make(map[*session]struct{}),
		finished: make(map[*session]struct{}),
		locks:    make(map[string]holder),
		held:     make(map[string][]heldLock),
		names:    interner{m: make(map[string]string)},
	}
}

// interner shares the backing arrays of strings that repeat across
// sessions (names, applications, resources, owners), up to a bound so
// that distinct values cannot grow it without limit.
type interner struct{ m map[string]string }

const maxInterned = 4096

func (in *interner) get(s string) string {
	if v, ok := in.m[s]; ok {
		return v
	}
	if len(in.m) < maxInterned {
		in.m[s] = s
	}
	return s
}

// lockKey encodes a row lock's key as one string: the three parts, each but
// the last length-prefixed, so no two keys collide whatever bytes they hold.
func lockKey(resource, table, pk string) string {
	b := make([]byte, 0, len(resource)+len(table)+len(pk)+4)
	b = binary.AppendUvarint(b, uint64(len(resource)))
	b = append(b, resource...)
	b = binary.AppendUvarint(b, uint64(len(table)))
	b = append(b, table...)
	b = append(b, pk...)
	return string(b)
}

// index puts g in the status-class index for its status.
func (s *state) index(g *session) {
	switch {
	case g.status == tcv1.GlobalStatus_BEGIN:
		s.begun[g] = struct{}{}
	case g.status.IsPhase2():
		s.phase2[g] = struct{}{}
	case g.status.IsDone():
		s.finished[g] = struct{}{}
	}
}

func (s *state) unindex(g *session) {
	delete(s.begun, g)
	delete(s.phase2, g)
	delete(s.finished, g)
}

func (s *state) setStatus(g *session, st tcv1.GlobalStatus) {
	s.unindex(g)
	g.status = st
	s.index(g)
}

// apply runs one command appended in term, under the write lock.
func (s *state) apply(c *command, term uint64) *result {
	switch c.op {
	case opCreate:
		return s.create(c)
	case opUpdateGlobal:
		return s.updateGlobal(c, term)
	case opAddBranch:
		return s.addBranch(c)
	case opUpdateBranch:
		return s.updateBranch(c)
	case opClaimDue:
		return s.claimDue(c, term)
	case opDeleteFinished:
		return s.deleteFinished(c)
	case opFinishEmpty:
		return s.finishEmpty(c)
	case opAcquireLocks:
		return &result{err: s.acquire(c.xid, c.branchID, c.locks)}
	case opReleaseBranchLocks:
		s.release(c.xid, func(l heldLock) bool { return l.branch == c.branchID })
		return &result{}
	case opReleaseGlobalLocks:
		s.release(c.xid, func(heldLock) bool { return true })
		return &result{}
	}
	return &result{err: fmt.Errorf("%w: %v is not a command", ErrInvalidInput, c.op)}
}

func (s *state) create(c *command) *result {
	if _, ok := s.sessions[c.xid]; ok {
		return &result{err: tc.ErrDuplicateXID}
	}
	s.seq++
	g := &session{
		xid: c.xid, name: s.names.get(c.name), app: s.names.get(c.application),
		timeout: c.timeout, begin: c.begin, update: c.now, seq: s.seq, status: tcv1.GlobalStatus_BEGIN,
	}
	s.sessions[g.xid] = g
	s.index(g)
	return &result{}
}

func (s *state) updateGlobal(c *command, term uint64) *result {
	g, ok := s.sessions[c.xid]
	if !ok {
		return &result{err: tc.ErrNotFound}
	}
	if !slices.Contains(c.from, g.status) {
		return &result{err: &tc.StatusError{XID: g.xid, Status: g.status}}
	}
	if c.branches >= 0 && int64(len(g.branches)) != c.branches {
		return &result{err: tc.ErrBranchesChanged}
	}
	s.setStatus(g, c.status)
	g.attempts = int32(c.attempts)
	g.next = c.nextAttempt
	g.lastError = c.lastError
	g.owner = s.names.get(c.owner)
	g.leaseUntil = c.leaseTill
	g.leaseTerm = term
	g.update = c.now
	return &result{}
}

// deadline is when g may no longer take branches.
func (g *session) deadline() int64 { return g.begin + g.timeout }

func (s *state) addBranch(c *command) *result {
	created := c.created
	if created == 0 {
		created = c.now
	}
	if len(c.locks) > 0 {
		if err := s.lockConflict(c.xid, c.locks); err != nil {
			return &result{err: err}
		}
	}
	g, ok := s.sessions[c.xid]
	switch {
	case !ok:
		return &result{err: tc.ErrNotFound}
	case g.status != tcv1.GlobalStatus_BEGIN:
		return &result{err: &tc.StatusError{XID: g.xid, Status: g.status}}
	case created > g.deadline():
		return &result{err: tc.ErrTimedOut}
	}
	for _, b := range g.branches {
		if b.id == c.branchID {
			return &result{err: fmt.Errorf("%w: branch %d of %s exists", ErrInvalidInput, c.branchID, c.xid)}
		}
	}
	if len(c.locks) > 0 {
		if err := s.acquire(c.xid, c.branchID, c.locks); err != nil {
			return &result{err: err}
		}
	}
	g.branches = append(g.branches, branch{
		id: c.branchID, created: created, resource: s.names.get(c.resource), lockKeys: c.lockKeys,
		data: nilIfEmpty(c.data), typ: c.branchType, status: c.branchStatus, async: c.async,
	})
	return &result{}
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func (s *state) updateBranch(c *command) *result {
	g, ok := s.sessions[c.xid]
	if !ok {
		return &result{err: tc.ErrNotFound}
	}
	for i := range g.branches {
		b := &g.branches[i]
		if b.id != c.branchID {
			continue
		}
		b.status = c.branchStatus
		if c.data != nil {
			b.data = nilIfEmpty(c.data)
		}
		return &result{}
	}
	return &result{err: tc.ErrNotFound}
}

// claimable reports whether owner may take g's phase 2 at now in term.
func claimable(g *session, owner string, now int64, term uint64) bool {
	return g.next <= now && (g.owner == "" || g.owner == owner || g.leaseUntil <= now || g.leaseTerm < term)
}

func (s *state) claimDue(c *command, term uint64) *result {
	var due []*session
	for g := range s.phase2 {
		if slices.Contains(c.statuses, g.status) && claimable(g, c.owner, c.now, term) {
			due = append(due, g)
		}
	}
	slices.SortFunc(due, func(a, b *session) int { return cmp.Or(cmp.Compare(a.next, b.next), cmp.Compare(a.seq, b.seq)) })
	if len(due) > int(c.limit) {
		due = due[:max(c.limit, 0)]
	}
	res := &result{sessions: make([]*tc.GlobalSession, len(due))}
	owner := s.names.get(c.owner)
	for i, g := range due {
		g.owner, g.leaseUntil, g.leaseTerm = owner, c.now+c.lease, term
		res.sessions[i] = g.export(true)
	}
	return res
}

func (s *state) deleteFinished(c *command) *result {
	var old []*session
	for g := range s.finished {
		if g.update < c.now {
			old = append(old, g)
		}
	}
	slices.SortFunc(old, func(a, b *session) int { return cmp.Or(cmp.Compare(a.update, b.update), cmp.Compare(a.seq, b.seq)) })
	if len(old) > int(c.limit) {
		old = old[:max(c.limit, 0)]
	}
	for _, g := range old {
		s.unindex(g)
		delete(s.sessions, g.xid)
	}
	return &result{n: len(old)}
}

func (s *state) finishEmpty(c *command) *result {
	g, ok := s.sessions[c.xid]
	if !ok || g.status != tcv1.GlobalStatus_BEGIN || len(g.branches) > 0 || g.deadline() < c.now {
		return &result{}
	}
	s.setStatus(g, c.status)
	g.update = c.now
	return &result{ok: true}
}

// checkLocks refuses empty key parts.
func checkLocks(locks []tc.RowLock) error {
	for _, l := range locks {
		if l.ResourceID == "" || l.Table == "" || l.PK == "" {
			return fmt.Errorf("%w: resource %q, table %q, primary key %q: none may be empty", tc.ErrInvalidLockKeys, l.ResourceID, l.Table, l.PK)
		}
	}
	return nil
}

// lockConflict returns a *tc.LockConflictError for the first of locks held
// by a transaction other than xid, or nil.
func (s *state) lockConflict(xid string, locks []tc.RowLock) error {
	if err := checkLocks(locks); err != nil {
		return err
	}
	for _, l := range locks {
		h, ok := s.locks[lockKey(l.ResourceID, l.Table, l.PK)]
		if !ok || h.xid == xid {
			continue
		}
		held := tc.RowLock{ResourceID: l.ResourceID, Table: l.Table, PK: l.PK, XID: h.xid, BranchID: h.branch}
		le := &tc.LockConflictError{Lock: held}
		if g, ok := s.sessions[h.xid]; ok {
			le.HolderStatus = g.status
		}
		return le
	}
	return nil
}

// acquire takes every lock of locks not yet held for (xid, branchID), or
// none when another transaction holds one.
func (s *state) acquire(xid string, branchID int64, locks []tc.RowLock) error {
	if err := s.lockConflict(xid, locks); err != nil {
		return err
	}
	if g, ok := s.sessions[xid]; ok {
		xid = g.xid // share the session's string
	}
	for _, l := range locks {
		k := lockKey(l.ResourceID, l.Table, l.PK)
		if _, ok := s.locks[k]; ok {
			continue // held by xid already (re-entry) or listed twice
		}
		s.locks[k] = holder{xid: xid, branch: branchID}
		s.held[xid] = append(s.held[xid], heldLock{key: k, branch: branchID})
	}
	return nil
}

// release gives back the locks of xid that match.
func (s *state) release(xid string, match func(heldLock) bool) {
	list, ok := s.held[xid]
	if !ok {
		return
	}
	kept := list[:0]
	for _, l := range list {
		if match(l) {
			delete(s.locks, l.key)
			continue
		}
		kept = append(kept, l)
	}
	if len(kept) == 0 {
		delete(s.held, xid)
		return
	}
	clear(list[len(kept):])
	s.held[xid] = kept
}

// export returns g as the tc package has it, with its branches when
// withBranches. It copies everything, so the caller may keep it.
func (g *session) export(withBranches bool) *tc.GlobalSession {
	out := &tc.GlobalSession{
		XID: g.xid, Name: g.name, Application: g.app, Status: g.status,
		Timeout: durationOf(g.timeout), BeginTime: fromUnixNano(g.begin), UpdateTime: fromUnixNano(g.update),
		Attempts: int(g.attempts), NextAttempt: fromUnixNano(g.next), LastError: g.lastError,
		Owner: g.owner, LeaseUntil: fromUnixNano(g.leaseUntil),
	}
	if withBranches && len(g.branches) > 0 {
		out.Branches = make([]*tc.BranchSession, len(g.branches))
		bs := make([]tc.BranchSession, len(g.branches))
		for i, b := range g.branches {
			bs[i] = tc.BranchSession{
				XID: g.xid, BranchID: b.id, Type: b.typ, ResourceID: b.resource, LockKeys: b.lockKeys,
				ApplicationData: slices.Clone(b.data), Status: b.status, CreateTime: fromUnixNano(b.created), AsyncCommit: b.async,
			}
			out.Branches[i] = &bs[i]
		}
	}
	return out
}

func durationOf(ns int64) time.Duration { return time.Duration(ns) }

// query runs a read-only command under the read lock.
func (s *state) query(c *command) *result {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch c.op {
	case opGet:
		g, ok := s.sessions[c.xid]
		if !ok {
			return &result{err: tc.ErrNotFound}
		}
		return &result{sessions: []*tc.GlobalSession{g.export(true)}}
	case opList:
		return s.list(c)
	case opTimedOut:
		var out []*session
		for g := range s.begun {
			if g.deadline() < c.now {
				out = append(out, g)
			}
		}
		slices.SortFunc(out, func(a, b *session) int {
			return cmp.Or(cmp.Compare(a.deadline(), b.deadline()), cmp.Compare(a.seq, b.seq))
		})
		return exportAll(out, c.limit)
	case opQueryLocks:
		return s.queryLocks(c.locks)
	case opPing:
		return &result{}
	case opLockHolders:
		var xids []string
		for x := range s.held {
			if x > c.after {
				xids = append(xids, x)
			}
		}
		slices.Sort(xids)
		if len(xids) > int(c.limit) {
			xids = xids[:max(c.limit, 0)]
		}
		return &result{xids: xids}
	}
	return &result{err: fmt.Errorf("%w: %v is not a query", ErrInvalidInput, c.op)}
}

func (s *state) list(c *command) *result {
	var out []*session
	for _, g := range s.sessions {
		if len(c.statuses) == 0 || slices.Contains(c.statuses, g.status) {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b *session) int { return cmp.Or(cmp.Compare(b.begin, a.begin), cmp.Compare(b.seq, a.seq)) })
	return exportAll(out, c.limit)
}

// exportAll exports up to limit sessions without branches.
func exportAll(list []*session, limit int64) *result {
	if len(list) > int(limit) {
		list = list[:max(limit, 0)]
	}
	res := &result{sessions: make([]*tc.GlobalSession, len(list))}
	for i, g := range list {
		res.sessions[i] = g.export(false)
	}
	return res
}

func (s *state) queryLocks(locks []tc.RowLock) *result {
	res := &result{}
	seen := make(map[string]bool, len(locks))
	for _, l := range locks {
		k := lockKey(l.ResourceID, l.Table, l.PK)
		if seen[k] {
			continue
		}
		seen[k] = true
		if h, ok := s.locks[k]; ok {
			res.locks = append(res.locks, tc.RowLock{ResourceID: l.ResourceID, Table: l.Table, PK: l.PK, XID: h.xid, BranchID: h.branch})
		}
	}
	return res
}
