package raftstore

import (
	"fmt"
	"io"

	"github.com/hashicorp/raft"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// snapshotMagic and snapshotVersion open every snapshot. A node refuses a
// version it does not know rather than guess (see docs/operations.md on
// rolling upgrades).
const (
	snapshotMagic   = "GTXRS"
	snapshotVersion = 1
)

// fsm adapts state to raft.FSM and raft.BatchingFSM.
type fsm struct{ st *state }

var _ raft.BatchingFSM = (*fsm)(nil)

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM: the commands are decoded first,
// then applied in log order under one write lock. A command that does not
// decode changes nothing and gives its proposer the error; it cannot be
// told apart from an honest one anywhere, so every node does the same.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	cmds := make([]*command, len(logs))
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		c, err := decodeCommand(l.Data)
		switch {
		case err != nil:
			out[i] = &result{err: fmt.Errorf("%w: %w", ErrInvalidInput, err)}
		case c.op >= opQuery:
			out[i] = &result{err: fmt.Errorf("%w: %v is a query, not a command", ErrInvalidInput, c.op)}
		default:
			cmds[i] = c
		}
	}
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	for i, c := range cmds {
		if c != nil {
			out[i] = f.st.apply(c, logs[i].Term)
		}
	}
	return out
}

// Snapshot implements raft.FSM. Raft calls it between applies; the state is
// encoded here, under the read lock, and only written out in Persist, which
// runs concurrently with later applies.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.st.mu.RLock()
	defer f.st.mu.RUnlock()
	return &snapshot{data: f.st.encodeSnapshot()}, nil
}

// Restore implements raft.FSM: it replaces the whole state with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("raftstore: read snapshot: %w", err)
	}
	st, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	f.st.sessions, f.st.seq = st.sessions, st.seq
	f.st.begun, f.st.phase2, f.st.finished = st.begun, st.phase2, st.finished
	f.st.locks, f.st.held, f.st.names = st.locks, st.held, st.names
	return nil
}

type snapshot struct{ data []byte }

// Persist implements raft.FSMSnapshot.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("raftstore: write snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *snapshot) Release() {}

// encodeSnapshot writes the whole state: the sessions with their branches,
// then the locks grouped by holder.
func (s *state) encodeSnapshot() []byte {
	w := &writer{b: make([]byte, 0, 256*len(s.sessions)+64*len(s.locks)+16)}
	w.b = append(w.b, snapshotMagic...)
	w.byte(snapshotVersion)
	w.uint(s.seq)
	w.uint(uint64(len(s.sessions)))
	for _, g := range s.sessions {
		w.str(g.xid)
		w.str(g.name)
		w.str(g.app)
		w.str(g.lastError)
		w.str(g.owner)
		w.int(g.timeout)
		w.int(g.begin)
		w.int(g.update)
		w.int(g.next)
		w.int(g.leaseUntil)
		w.uint(g.leaseTerm)
		w.uint(g.seq)
		w.int(int64(g.attempts))
		w.uint(uint64(g.status))
		w.uint(uint64(len(g.branches)))
		for _, b := range g.branches {
			w.int(b.id)
			w.int(b.created)
			w.str(b.resource)
			w.str(b.lockKeys)
			w.bytes(b.data)
			w.uint(uint64(b.typ))
			w.uint(uint64(b.status))
			w.bool(b.async)
		}
	}
	w.uint(uint64(len(s.held)))
	for xid, list := range s.held {
		w.str(xid)
		w.uint(uint64(len(list)))
		for _, l := range list {
			w.str(l.key)
			w.int(l.branch)
		}
	}
	return w.b
}

// decodeSnapshot reads what encodeSnapshot wrote into a new state.
func decodeSnapshot(b []byte) (*state, error) {
	if len(b) < len(snapshotMagic)+1 || string(b[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("raftstore: %w: not a raftstore snapshot", errCorrupt)
	}
	if v := b[len(snapshotMagic)]; v != snapshotVersion {
		return nil, fmt.Errorf("raftstore: %w: snapshot version %d, this node reads %d; upgrade it", errCorrupt, v, snapshotVersion)
	}
	r := &reader{b: b[len(snapshotMagic)+1:]}
	st := newState()
	st.seq = r.uint()
	for n := r.count(15); n > 0 && r.err == nil; n-- {
		g := &session{
			xid: r.str(), name: st.names.get(r.str()), app: st.names.get(r.str()),
			lastError: r.str(), owner: st.names.get(r.str()),
			timeout: r.int(), begin: r.int(), update: r.int(), next: r.int(), leaseUntil: r.int(),
			leaseTerm: r.uint(), seq: r.uint(), attempts: int32(r.int()), status: readStatus(r),
		}
		if nb := r.count(8); nb > 0 {
			g.branches = make([]branch, nb)
			for i := range g.branches {
				g.branches[i] = branch{id: r.int(), created: r.int(), resource: st.names.get(r.str()), lockKeys: r.str(),
					data: nilIfEmpty(r.bytes()), typ: tcv1.BranchType(readEnum(r)), status: tcv1.BranchStatus(readEnum(r)), async: r.bool()}
			}
		}
		if _, dup := st.sessions[g.xid]; dup {
			r.fail("session %q twice", g.xid)
		}
		st.sessions[g.xid] = g
		st.index(g)
	}
	for n := r.count(2); n > 0 && r.err == nil; n-- {
		xid := r.str()
		if _, dup := st.held[xid]; dup {
			r.fail("holder %q twice", xid)
		}
		if g, ok := st.sessions[xid]; ok {
			xid = g.xid
		}
		nl := r.count(2)
		list := make([]heldLock, 0, nl)
		for range nl {
			l := heldLock{key: r.str(), branch: r.int()}
			if _, dup := st.locks[l.key]; dup {
				r.fail("lock held twice")
			}
			st.locks[l.key] = holder{xid: xid, branch: l.branch}
			list = append(list, l)
		}
		if len(list) > 0 {
			st.held[xid] = list
		}
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("raftstore: snapshot: %w", err)
	}
	return st, nil
}
