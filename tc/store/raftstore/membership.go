package raftstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Member is one server of the cluster's configuration.
type Member struct {
	ID      string
	Address string
	// Voter is false for a non-voter (which Raft replicates to but does not
	// count) and true otherwise.
	Voter bool
	// Leader is true for the member that leads.
	Leader bool
}

// AddVoter asks the cluster that the node at addr belongs to (any member;
// the call follows it to the leader) to add the node id, reachable at
// voterAddr, as a voter. Adding a voter that is there already with the
// same address succeeds and changes nothing.
func AddVoter(ctx context.Context, addr, id, voterAddr string) error {
	w := &writer{}
	w.str(id)
	w.str(voterAddr)
	_, err := admin(ctx, addr, fwdAdd, w.b)
	return err
}

// RemoveServer asks the cluster that the node at addr belongs to to remove
// the node id. Removing the leader makes it step down once the change is
// committed; removing an unknown ID succeeds.
func RemoveServer(ctx context.Context, addr, id string) error {
	w := &writer{}
	w.str(id)
	_, err := admin(ctx, addr, fwdRemove, w.b)
	return err
}

// Members returns the cluster's configuration, asked of its leader through
// the node at addr.
func Members(ctx context.Context, addr string) ([]Member, error) {
	b, err := admin(ctx, addr, fwdMembers, nil)
	if err != nil {
		return nil, err
	}
	r := &reader{b: b}
	out := make([]Member, r.count(3))
	for i := range out {
		out[i] = Member{ID: r.str(), Address: r.str(), Voter: r.bool(), Leader: r.bool()}
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return out, nil
}

// Members returns the cluster's configuration as its leader has it.
func (s *Store) Members(ctx context.Context) ([]Member, error) { return Members(ctx, s.addr) }

// adminTimeout bounds an administrative call whose context has no deadline.
const adminTimeout = 30 * time.Second

// admin sends a membership request to addr and follows the leader it names
// until one answers, or ctx ends.
func admin(ctx context.Context, addr string, kind byte, body []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, adminTimeout)
		defer cancel()
	}
	f := newForwarder()
	defer f.close()
	target, wait := addr, 10*time.Millisecond
	for {
		st, reply, err := f.call(ctx, target, kind, body)
		switch {
		case err != nil && !errors.Is(err, errNotSent):
			return nil, fmt.Errorf("raftstore: ask %s: %w", target, err)
		case err == nil && st == replyOK:
			return reply, nil
		case err == nil && st == replyError:
			return nil, fmt.Errorf("raftstore: %s: %s", target, reply)
		case err == nil && st == replyNotLeader && len(reply) > 0:
			target = string(reply)
			continue
		}
		// Not reachable, or no leader known yet: ask the first node again.
		target = addr
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// membership runs a membership request on this node, which leads.
func (s *Store) membership(ctx context.Context, kind byte, body []byte) ([]byte, bool, error) {
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	r := &reader{b: body}
	var f raft.Future
	switch kind {
	case fwdAdd:
		id, addr := r.str(), r.str()
		if err := r.done(); err != nil {
			return nil, false, err
		}
		if id == "" || addr == "" {
			return nil, false, fmt.Errorf("%w: add a voter: give its ID and address", ErrInvalidInput)
		}
		f = s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout)
		s.log.Info("adding voter", "id", id, "addr", addr)
	case fwdRemove:
		id := r.str()
		if err := r.done(); err != nil {
			return nil, false, err
		}
		f = s.raft.RemoveServer(raft.ServerID(id), 0, timeout)
		s.log.Info("removing server", "id", id)
	case fwdMembers:
		cf := s.raft.GetConfiguration()
		if err := cf.Error(); err != nil {
			return nil, errors.Is(err, raft.ErrNotLeader), err
		}
		_, leader := s.raft.LeaderWithID()
		w := &writer{}
		servers := cf.Configuration().Servers
		w.uint(uint64(len(servers)))
		for _, sv := range servers {
			w.str(string(sv.ID))
			w.str(string(sv.Address))
			w.bool(sv.Suffrage == raft.Voter)
			w.bool(sv.ID == leader)
		}
		return w.b, false, nil
	}
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return nil, true, nil
		}
		return nil, false, err
	}
	return nil, false, nil
}
