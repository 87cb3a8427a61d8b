package tm

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// Tx is a global transaction begun by Manager.Begin. Its methods are safe for
// concurrent use; Commit and Rollback are serialized.
type Tx struct {
	m    *Manager
	xid  string
	name string
	ctx  context.Context

	mu   sync.Mutex
	done bool
}

// XID returns the transaction's XID.
func (t *Tx) XID() string { return t.xid }

// Context returns the context given to Begin, carrying the XID: pass it to
// the work that belongs to the transaction.
func (t *Tx) Context() context.Context { return t.ctx }

// Commit asks the coordinator to commit and returns the status reached.
// COMMITTED, and the statuses in which the coordinator still finishes phase 2
// (COMMITTING, COMMIT_RETRYING, ASYNC_COMMITTING), count as success: the
// decision is durable. A commit that ends in a rollback (the coordinator
// timed the transaction out first) gives a *RolledBackError; COMMIT_FAILED
// gives a *Phase2FailedError.
//
// When the answer is lost in transport, Commit never guesses: it asks the
// coordinator for the status, with backoff, for up to
// Config.StatusPollTimeout, even after ctx is done, and sends Commit again
// while the status is still BEGIN. If the status stays unknown it fails with
// ErrOutcomeUnknown, and Commit may be called again. A ctx already done when
// Commit is called sends nothing and fails with ctx's error.
func (t *Tx) Commit(ctx context.Context) (tcv1.GlobalStatus, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED, fmt.Errorf("%w: %s", ErrTxDone, t.xid)
	}
	hooks := t.m.cfg.Hooks
	if hooks.BeforeCommit != nil {
		hooks.BeforeCommit(ctx, t.xid)
	}
	st, err := t.m.finish(ctx, t.xid, commitOp(t.m.client, t.xid))
	t.done = st != tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED
	if hooks.AfterCommit != nil {
		hooks.AfterCommit(ctx, t.xid, st, err)
	}
	return st, err
}

// Rollback asks the coordinator to roll back, recording reason for
// operators, and returns the status reached. Every rollback status,
// including those in which the coordinator still finishes phase 2, counts as
// success; ROLLBACK_FAILED gives a *Phase2FailedError, and a transaction
// already committed gives an error matching ErrCommitted. A lost answer is
// resolved as in Commit.
func (t *Tx) Rollback(ctx context.Context, reason string) (tcv1.GlobalStatus, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED, fmt.Errorf("%w: %s", ErrTxDone, t.xid)
	}
	hooks := t.m.cfg.Hooks
	if hooks.BeforeRollback != nil {
		hooks.BeforeRollback(ctx, t.xid)
	}
	st, err := t.m.finish(ctx, t.xid, rollbackOp(t.m.client, t.xid, reason))
	t.done = st != tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED
	if hooks.AfterRollback != nil {
		hooks.AfterRollback(ctx, t.xid, st, err)
	}
	return st, err
}

// decision is commit or rollback: how to ask for it, and what a status
// means for it. outcome is only given statuses for which known is true.
type decision struct {
	name    string
	send    func(ctx context.Context) (tcv1.GlobalStatus, error)
	outcome func(st tcv1.GlobalStatus) error
}

func commitOp(c tcv1.CoordinatorClient, xid string) decision {
	return decision{
		name: "commit",
		send: func(ctx context.Context) (tcv1.GlobalStatus, error) {
			resp, err := c.Commit(ctx, &tcv1.CommitRequest{Xid: xid})
			return resp.GetStatus(), err
		},
		outcome: func(st tcv1.GlobalStatus) error {
			switch {
			case st == tcv1.GlobalStatus_COMMIT_FAILED:
				return &Phase2FailedError{XID: xid, Status: st}
			case st.IsRollbackDecided():
				return &RolledBackError{XID: xid, Status: st}
			}
			return nil // COMMITTED, or committing: the decision is durable
		},
	}
}

func rollbackOp(c tcv1.CoordinatorClient, xid, reason string) decision {
	return decision{
		name: "rollback",
		send: func(ctx context.Context) (tcv1.GlobalStatus, error) {
			resp, err := c.Rollback(ctx, &tcv1.RollbackRequest{Xid: xid, Reason: cleanReason(reason)})
			return resp.GetStatus(), err
		},
		outcome: func(st tcv1.GlobalStatus) error {
			switch {
			case st == tcv1.GlobalStatus_ROLLBACK_FAILED:
				return &Phase2FailedError{XID: xid, Status: st}
			case st.IsRollbackDecided():
				return nil
			}
			return fmt.Errorf("%w: %s is %s", ErrCommitted, xid, st)
		},
	}
}

// known reports whether st is a status a decision can end in.
func known(st tcv1.GlobalStatus) bool {
	return st.IsKnown() && st != tcv1.GlobalStatus_BEGIN
}

// finish sends a decision and returns the status it reached. The status is
// GLOBAL_STATUS_UNSPECIFIED exactly when the outcome is not known.
func (m *Manager) finish(ctx context.Context, xid string, d decision) (tcv1.GlobalStatus, error) {
	if err := ctx.Err(); err != nil {
		// Nothing was sent: the caller gave up first.
		return tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED, fmt.Errorf("tm: %s %s not sent: %w", d.name, xid, err)
	}
	st, err := d.send(ctx)
	if err == nil {
		return m.settle(xid, d, st)
	}
	if definite(err) && status.Code(err) != codes.FailedPrecondition {
		return tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED, fmt.Errorf("tm: %s %s: %w", d.name, xid, rpcError(err))
	}
	m.log.WarnContext(ctx, "answer lost, asking the coordinator for the status", "xid", xid, "op", d.name, "err", err)
	return m.resolve(ctx, xid, d, err)
}

// settle maps the status a decision reached to its result.
func (m *Manager) settle(xid string, d decision, st tcv1.GlobalStatus) (tcv1.GlobalStatus, error) {
	if !known(st) {
		return tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED,
			fmt.Errorf("%w: the coordinator answered %s of %s with status %s", ErrOutcomeUnknown, d.name, xid, st)
	}
	return st, d.outcome(st)
}

// resolve finds out what became of a decision whose answer was lost (or that
// the coordinator refused because the status had moved on). It polls
// GetStatus with backoff and sends the decision again while the status is
// BEGIN, for up to StatusPollTimeout, on a context detached from ctx's
// cancellation: the outcome must be known even when the caller gave up.
func (m *Manager) resolve(ctx context.Context, xid string, d decision, cause error) (tcv1.GlobalStatus, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.StatusPollTimeout)
	defer cancel()
	wait := m.cfg.StatusPollInterval
	last := cause
	for {
		resp, err := m.client.GetStatus(rctx, &tcv1.GetStatusRequest{Xid: xid})
		switch {
		case err == nil && resp.GetStatus() == tcv1.GlobalStatus_BEGIN:
			st, err := d.send(rctx)
			if err == nil {
				return m.settle(xid, d, st)
			}
			if definite(err) && status.Code(err) != codes.FailedPrecondition {
				return tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED, fmt.Errorf("tm: %s %s: %w", d.name, xid, rpcError(err))
			}
			last = err
		case err == nil:
			m.log.InfoContext(ctx, "outcome resolved", "xid", xid, "op", d.name, "status", resp.GetStatus())
			return m.settle(xid, d, resp.GetStatus())
		case status.Code(err) == codes.NotFound:
			return tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED, fmt.Errorf(
				"%w: %s %s: the coordinator no longer knows the transaction (finished and cleaned up, or never begun): %w",
				ErrOutcomeUnknown, d.name, xid, err)
		case definite(err):
			return tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED, fmt.Errorf("%w: %s %s: status query refused: %w", ErrOutcomeUnknown, d.name, xid, err)
		default:
			last = err
		}
		t := time.NewTimer(jitter(wait))
		select {
		case <-rctx.Done():
			t.Stop()
			return tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED, fmt.Errorf(
				"%w: %s %s: no answer from the coordinator within %v, ask again with Manager.Status: %w",
				ErrOutcomeUnknown, d.name, xid, m.cfg.StatusPollTimeout, last)
		case <-t.C:
		}
		wait = min(2*wait, 10*m.cfg.StatusPollInterval)
	}
}

// jitter returns d changed by up to ±20%, so that many clients that lost the
// coordinator at once do not come back in step.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + time.Duration(rand.Int64N(int64(d/5)*2+1))
}

// maxReasonLen caps the rollback reason sent to the coordinator.
const maxReasonLen = 512

// cleanReason makes a rollback reason fit the protocol: valid UTF-8, at most
// maxReasonLen bytes.
func cleanReason(s string) string {
	if len(s) > maxReasonLen {
		s = s[:maxReasonLen]
	}
	return strings.ToValidUTF8(s, "")
}
