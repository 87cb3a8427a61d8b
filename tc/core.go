package tc

import (
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// The coordinator's deterministic core: what to do, as pure functions of a
// session, an event and the time now, with no store, network or clock of
// their own. The server and the stores are the shell that reads the
// state, asks the core and carries out its answer; the core's table tests
// (core_test.go) run without either.

// outcome is how one phase-2 attempt ended.
type outcome int

const (
	outcomeDone        outcome = iota // every branch finished
	outcomeRetry                      // some branch failed, try again later
	outcomeUnretryable                // a branch said retrying cannot help
)

// Clock tells the coordinator the time. Config.Clock is one; tests pass a
// clock they move by hand.
type Clock interface {
	Now() time.Time
}

// SystemClock is the Clock of the operating system, DefaultConfig's.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// expired reports whether g, in BEGIN, is past its timeout at now.
func expired(g *GlobalSession, now time.Time) bool {
	return now.After(g.BeginTime.Add(g.Timeout))
}

// budgetSpent reports whether a failed attempt of g at now is its last:
// MaxAttempts reached or RetryBudget since Begin used up.
func budgetSpent(cfg *Config, g *GlobalSession, now time.Time) bool {
	if cfg.MaxAttempts > 0 && g.Attempts+1 >= cfg.MaxAttempts {
		return true
	}
	return cfg.RetryBudget > 0 && now.Sub(g.BeginTime) > cfg.RetryBudget
}

// nextStatus is the status a phase-2 attempt of g with outcome out, ended
// at now, leads to.
func nextStatus(cfg *Config, g *GlobalSession, out outcome, now time.Time) tcv1.GlobalStatus {
	committing := g.Status.IsCommitting()
	timeout := g.Status.IsTimeoutRollingBack()
	if out == outcomeRetry && budgetSpent(cfg, g, now) {
		out = outcomeUnretryable
	}
	switch {
	case out == outcomeDone && committing:
		return tcv1.GlobalStatus_COMMITTED
	case out == outcomeDone && timeout:
		return tcv1.GlobalStatus_TIMEOUT_ROLLBACKED
	case out == outcomeDone:
		return tcv1.GlobalStatus_ROLLBACKED
	case out == outcomeUnretryable && committing:
		return tcv1.GlobalStatus_COMMIT_FAILED
	case out == outcomeUnretryable:
		return tcv1.GlobalStatus_ROLLBACK_FAILED
	case g.Status == tcv1.GlobalStatus_ASYNC_COMMITTING:
		return tcv1.GlobalStatus_ASYNC_COMMITTING
	case committing:
		return tcv1.GlobalStatus_COMMIT_RETRYING
	case timeout:
		return tcv1.GlobalStatus_TIMEOUT_ROLLBACK_RETRYING
	default:
		return tcv1.GlobalStatus_ROLLBACK_RETRYING
	}
}

// attemptRecord is what the shell records after a phase-2 attempt.
type attemptRecord struct {
	// Update is written with a CAS from the status the attempt ran in.
	Update GlobalUpdate
	// ReleaseLocks says every lock of the transaction goes once Update is
	// durable.
	ReleaseLocks bool
}

// afterAttempt decides what a phase-2 attempt of g that ended at now with
// outcome out (reason says why it did not finish) leaves behind.
// interrupted says the coordinator was shutting down: a retry outcome is
// then no failure of the branches and spends none of the budget.
func afterAttempt(cfg *Config, g *GlobalSession, out outcome, reason string, interrupted bool, now time.Time) attemptRecord {
	attempts, next := g.Attempts+1, tcv1.GlobalStatus(0)
	if interrupted && out == outcomeRetry {
		attempts, next, reason = g.Attempts, g.Status, "interrupted by coordinator shutdown"
	} else {
		next = nextStatus(cfg, g, out, now)
	}
	u := GlobalUpdate{Status: next, Attempts: attempts, LastError: truncate(reason, maxLastError)}
	if out == outcomeRetry && !next.IsFinal() {
		u.NextAttempt = now.Add(cfg.backoff(max(attempts, 1)))
	}
	// A commit released its locks at the decision (and the orphan sweep
	// releases any a failed release left), so only a rollback has locks to
	// release here: also those of a registration that failed half way,
	// which no branch names.
	return attemptRecord{Update: u, ReleaseLocks: next == tcv1.GlobalStatus_ROLLBACKED || next == tcv1.GlobalStatus_TIMEOUT_ROLLBACKED}
}

// branchOutcome reads a resource manager's answer st to action: the
// attempt's outcome for the branch, and whether st is a status to store
// for it (an answer that fits no outcome of action is not).
func branchOutcome(action tcv1.BranchAction, st tcv1.BranchStatus) (out outcome, store bool) {
	done, retryable, unretryable := action.Phase2Outcomes()
	switch st {
	case done:
		return outcomeDone, true
	case unretryable:
		return outcomeUnretryable, true
	case retryable:
		return outcomeRetry, true
	}
	return outcomeRetry, false
}

// claimedAction is what the shell does with a session the recovery loop
// claimed, read again.
type claimedAction struct {
	// Drive says run a phase-2 attempt now.
	Drive bool
	// ReleaseLocks says release every lock first: the replica that decided
	// commit may have died before it did.
	ReleaseLocks bool
}

// onClaimed decides for g, claimed by serverID and read again at now.
// Finished sessions, ones not due, and ones another replica leased since
// the claim are left alone.
func onClaimed(g *GlobalSession, serverID string, now time.Time) claimedAction {
	if !g.Status.IsPhase2() || g.NextAttempt.After(now) || (g.Owner != serverID && g.LeaseUntil.After(now)) {
		return claimedAction{}
	}
	return claimedAction{Drive: true, ReleaseLocks: g.Status.IsCommitting()}
}

// locksOrphaned reports whether the locks of a transaction in st are no
// longer needed: it is finished (but for ROLLBACK_FAILED, whose rows stay
// guarded until an operator acts) or committing (its locks went at the
// decision). Locks of a transaction in BEGIN or rolling back stay; those of
// one the store does not know are orphaned whatever its status was.
func locksOrphaned(st tcv1.GlobalStatus) bool {
	return !(st == tcv1.GlobalStatus_BEGIN || st == tcv1.GlobalStatus_ROLLBACK_FAILED || st.IsRollingBack())
}
