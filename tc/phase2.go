package tc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// driveClaimed drives a session the recovery loop claimed. The claim may
// have raced with this replica's own synchronous phase 2, so the session is
// read again once no one else here drives it.
func (s *Server) driveClaimed(ctx context.Context, xid string) error {
	if _, busy := s.driving.LoadOrStore(xid, true); busy {
		return nil
	}
	defer s.driving.Delete(xid)
	g, err := s.store.GetGlobal(ctx, xid)
	if err != nil {
		return err
	}
	act := onClaimed(g, s.cfg.ServerID, s.now())
	if !act.Drive {
		return nil
	}
	if act.ReleaseLocks {
		s.releaseLocks(ctx, "commit resumed", xid, 0)
	}
	_, err = s.attempt(ctx, g)
	return err
}

// attempt runs one phase-2 attempt for g (loaded with branches) in its
// current status and records the result durably. It returns the status
// reached. The caller holds g's slot in s.driving.
func (s *Server) attempt(parent context.Context, g *GlobalSession) (tcv1.GlobalStatus, error) {
	started := s.now()
	ctx, cancel := context.WithTimeout(parent, s.cfg.Lease/2)
	defer cancel()
	var (
		out    outcome
		reason string
	)
	before := make([]tcv1.BranchStatus, len(g.Branches))
	for i, b := range g.Branches {
		before[i] = b.Status
	}
	if g.Status.IsCommitting() {
		out, reason = s.commitBranches(ctx, g)
	} else {
		out, reason = s.rollbackBranches(ctx, g)
	}
	rec := afterAttempt(&s.cfg, g, out, reason, parent.Err() != nil, s.now())
	u, next := rec.Update, rec.Update.Status
	// The update must land even when ctx ran out: a finished attempt is
	// recorded so it is never repeated needlessly.
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.BranchTimeout)
	defer wcancel()
	if out != outcomeDone {
		s.recordProgress(wctx, g, before)
	}
	if err := s.store.UpdateGlobal(wctx, g.XID, []tcv1.GlobalStatus{g.Status}, u); err != nil {
		return g.Status, fmt.Errorf("record phase 2 of %s: %w", g.XID, err)
	}
	s.obs.attempted(g, next, s.now().Sub(started))
	if rec.ReleaseLocks {
		s.releaseLocks(wctx, "rolled back", g.XID, 0)
	}
	level := s.log.Debug
	if out != outcomeDone {
		level = s.log.Warn
	}
	level("phase 2", "xid", g.XID, "from", g.Status.String(), "to", next.String(), "attempt", u.Attempts, "error", u.LastError)
	return next, nil
}

// recordProgress stores the statuses that branches of g reached in an
// attempt that did not finish the transaction, so the next attempt skips
// them, and releases the locks of the branches it rolled back. A finished
// transaction needs neither: its final status says every branch finished
// (see branchView), and all its locks go at once.
func (s *Server) recordProgress(ctx context.Context, g *GlobalSession, before []tcv1.BranchStatus) {
	for i, b := range g.Branches {
		if b.Status == before[i] {
			continue
		}
		if err := s.store.UpdateBranch(ctx, b.XID, b.BranchID, b.Status, nil); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.Warn("record branch status", "xid", b.XID, "branch", b.BranchID, "status", b.Status.String(), "err", err)
		}
		if b.Status == tcv1.BranchStatus_PHASE2_ROLLBACKED {
			s.releaseLocks(ctx, "branch rolled back", b.XID, b.BranchID)
		}
	}
}

// commitBranches commits every branch not yet committed, all at once: commit
// order does not matter once the decision is made.
func (s *Server) commitBranches(ctx context.Context, g *GlobalSession) (outcome, string) {
	type result struct {
		out    outcome
		reason string
	}
	var todo []*BranchSession
	for _, b := range g.Branches {
		if b.Status != tcv1.BranchStatus_PHASE2_COMMITTED && b.Status != tcv1.BranchStatus_PHASE1_FAILED {
			todo = append(todo, b)
		}
	}
	results := make(chan result, len(todo))
	for _, b := range todo {
		go func() {
			out, reason := s.branch(ctx, tcv1.BranchAction_BRANCH_COMMIT, b)
			results <- result{out, reason}
		}()
	}
	total := outcomeDone
	var reasons []string
	for range todo {
		r := <-results
		if r.out > total {
			total = r.out
		}
		if r.reason != "" {
			reasons = append(reasons, r.reason)
		}
	}
	return total, strings.Join(reasons, "; ")
}

// rollbackBranches rolls back branches newest first, stopping at the first
// that fails: compensation runs in reverse order of registration.
func (s *Server) rollbackBranches(ctx context.Context, g *GlobalSession) (outcome, string) {
	for i := len(g.Branches) - 1; i >= 0; i-- {
		b := g.Branches[i]
		if b.Status == tcv1.BranchStatus_PHASE2_ROLLBACKED {
			continue
		}
		if out, reason := s.branch(ctx, tcv1.BranchAction_BRANCH_ROLLBACK, b); out != outcomeDone {
			return out, reason
		}
	}
	return outcomeDone, ""
}

// branch sends one command and sets the branch's new status in b; attempt
// stores it when the attempt does not finish the transaction.
func (s *Server) branch(ctx context.Context, action tcv1.BranchAction, b *BranchSession) (outcome, string) {
	ctx, span := s.obs.startBranch(ctx, action, b)
	defer span.End()
	bctx, cancel := context.WithTimeout(ctx, s.cfg.BranchTimeout)
	defer cancel()
	res, err := s.command(bctx, action, b)
	if err != nil {
		return outcomeRetry, fmt.Sprintf("branch %d (%s): %v", b.BranchID, b.ResourceID, err)
	}
	out, known := branchOutcome(action, res.GetStatus())
	switch {
	case !known:
		return out, fmt.Sprintf("branch %d (%s): resource manager answered %s to %s", b.BranchID, b.ResourceID, res.GetStatus(), action)
	case out == outcomeDone:
		b.Status = res.GetStatus()
		return out, ""
	default:
		b.Status = res.GetStatus()
		return out, fmt.Sprintf("branch %d (%s): %s", b.BranchID, b.ResourceID, logValue(res.GetMessage()))
	}
}

// startPhase2 records the decision for seen, a session the caller read in
// BEGIN (CAS from BEGIN to to, owned by this replica), and drives the first
// attempt. It returns the status reached. A branch registering at the same
// moment either made it in before the decision (and is driven) or is
// refused: a Decider store refuses the decision when the branches are not
// the ones seen (ErrBranchesChanged), and otherwise the branches are read
// again after it. An asynchronous commit is answered at once and driven by
// a background committer of this replica, or, when all Workers are busy,
// left to the recovery loop.
func (s *Server) startPhase2(ctx context.Context, seen *GlobalSession, to tcv1.GlobalStatus) (tcv1.GlobalStatus, error) {
	xid := seen.XID
	// Hold the slot from before the decision, so the recovery loop, which
	// may claim the session the moment it leaves BEGIN, leaves the first
	// attempt to this call. Without the slot (a concurrent call for the
	// same XID), the CAS below decides who goes on.
	_, busy := s.driving.LoadOrStore(xid, true)
	held := !busy
	// Whether this replica drives an asynchronous commit itself must be
	// known before the decision, which records the owner: so a committer's
	// token is taken now, and held across the decision write.
	background := to == tcv1.GlobalStatus_ASYNC_COMMITTING && held && s.takeCommitter()
	defer func() {
		if held {
			s.driving.Delete(xid)
		}
		if background {
			s.giveCommitter()
		}
	}()
	// Owned by this replica, and not due for the recovery loop while the
	// first attempt (bounded by Lease/2) runs; after a crash, the replica
	// restarted with the same ServerID resumes it from then on, any other
	// once the lease ends. An asynchronous commit this replica cannot
	// drive now is left unowned and due, for the recovery loop.
	now := s.now()
	u := GlobalUpdate{Status: to, Owner: s.cfg.ServerID, LeaseUntil: now.Add(s.cfg.Lease), NextAttempt: now.Add(s.cfg.Lease / 2)}
	if to == tcv1.GlobalStatus_ASYNC_COMMITTING && !background {
		u = GlobalUpdate{Status: to}
	}
	g, decided, err := s.decide(ctx, seen, u)
	if !decided {
		return 0, err
	}
	if err != nil {
		return to, err
	}
	// The decision is durable: the first attempt goes on even when the
	// caller gives up (attempt bounds it by the lease).
	ctx = context.WithoutCancel(ctx)
	if to.IsCommitting() {
		// The decision is durable and every branch's local data is final, so
		// nothing the locks protect can change any more.
		s.releaseLocks(ctx, "commit decided", xid, 0)
	}
	// A branch that registered between the caller's read and the decision
	// may not allow an early answer: then commit it before answering.
	if to == tcv1.GlobalStatus_ASYNC_COMMITTING && len(g.Branches) > 0 && canCommitAsync(g) {
		if !background {
			// Free the slot first, or the recovery loop may skip the
			// session as driven here and sleep until its next round.
			s.driving.Delete(xid)
			held = false
			s.wake()
			return to, nil
		}
		// The committer takes over this call's slot and token.
		held, background = false, false
		go s.commitInBackground(g)
		return to, nil
	}
	return s.attempt(ctx, g)
}

// decide records u, a decision from BEGIN, for seen, which it consumes, and
// returns the session as decided, with the branches to drive. decided is
// false when nothing was recorded (err says why: ErrStatusConflict or
// ErrBranchesChanged when another caller or a registration came first); an
// error with decided true means the decision is durable but the session
// could not be read back.
//
// With a Decider store the decision requires the branches seen and needs no
// read back: only the set of branches is the one decided on, while their
// statuses and data are as seen (a ReportBranch racing the decision is
// seen by the next attempt). A Decider refusal with as many branches
// stored as seen means the store's count disagrees with its branches: the
// decision is then made as for other stores, by UpdateGlobal and a read
// back, instead of being refused for ever.
func (s *Server) decide(ctx context.Context, seen *GlobalSession, u GlobalUpdate) (g *GlobalSession, decided bool, err error) {
	xid := seen.XID
	if d, ok := s.store.(Decider); ok {
		err := d.Decide(ctx, xid, len(seen.Branches), u)
		if err == nil {
			return seen.updated(u), true, nil
		}
		if !errors.Is(err, ErrBranchesChanged) {
			return nil, false, err
		}
		stored, rerr := s.store.GetGlobal(ctx, xid)
		if rerr != nil || len(stored.Branches) != len(seen.Branches) {
			return nil, false, err
		}
		s.log.Warn("the store's branch count disagrees with its branches; deciding without it", "xid", xid, "branches", len(seen.Branches))
	}
	if err := s.store.UpdateGlobal(ctx, xid, []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, u); err != nil {
		return nil, false, err
	}
	if g, err = s.store.GetGlobal(context.WithoutCancel(ctx), xid); err != nil {
		return nil, true, fmt.Errorf("read %s after deciding %s: %w", xid, u.Status, err)
	}
	return g, true, nil
}

// takeCommitter takes a background committer's token, and reports false
// when all Workers are busy or the coordinator is not running.
func (s *Server) takeCommitter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runCtx == nil || s.runCtx.Err() != nil {
		return false
	}
	select {
	case s.committers <- struct{}{}:
		s.wg.Add(1)
		return true
	default:
		return false
	}
}

// giveCommitter returns a token takeCommitter took.
func (s *Server) giveCommitter() {
	<-s.committers
	s.wg.Done()
}

// commitInBackground drives the first attempt of g, decided
// ASYNC_COMMITTING and owned by this replica, until done or Close. It
// holds g's slot in s.driving and a committer token, and gives both back.
func (s *Server) commitInBackground(g *GlobalSession) {
	defer s.giveCommitter()
	defer s.driving.Delete(g.XID)
	if _, err := s.attempt(s.runCtx, g); err != nil && s.runCtx.Err() == nil {
		s.log.Error("phase 2", "xid", g.XID, "err", err)
	}
}

// raced reports whether a decision failed because another caller changed
// the session first: its status, or its branches.
func raced(err error) bool {
	return errors.Is(err, ErrStatusConflict) || errors.Is(err, ErrBranchesChanged)
}

// maxLastError caps GlobalSession.LastError, which joins one reason per
// failed branch.
const maxLastError = 4096

// now is the time by the coordinator's clock, Config.Clock.
func (s *Server) now() time.Time { return s.cfg.Clock.Now() }
