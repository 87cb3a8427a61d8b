package tm

import (
	"context"
	"fmt"

	"github.com/gtx-io/gtx"
)

// WithGlobalTx runs fn inside a global transaction named name, the way
// Seata's @GlobalTransactional does.
//
// When WithGlobalTx begins the transaction (propagation Required with no XID
// in ctx, or RequiresNew), it also ends it: fn returning nil commits, and the
// commit's error, if any, is returned (*RolledBackError when the coordinator
// rolled the transaction back first); fn returning an error rolls back and
// returns fn's error wrapped, so errors.Is and errors.As see it (joined with
// the rollback's error when the rollback failed too); fn panicking rolls
// back, then panics again with the same value. The commit or rollback is sent
// on a context detached from ctx's cancellation and bounded by
// Config.StatusPollTimeout, so a caller that gave up never leaves the
// transaction undecided.
//
// When WithGlobalTx joins the transaction in ctx (Required, Supports,
// Mandatory), it neither commits nor rolls back: it returns fn's error as is,
// and the code that began the transaction decides. A joiner that fails must
// therefore return its error up to the starter through the normal error
// returns (across services, as the error of the remote call), so the starter
// rolls back.
//
// NotSupported, and Supports or Never without an XID in ctx, run fn with a
// context carrying no XID. Never fails with ErrTransactionExists when ctx
// carries an XID, Mandatory with ErrNoTransaction when it carries none; fn
// does not run then.
func (m *Manager) WithGlobalTx(ctx context.Context, name string, fn func(ctx context.Context) error, opts ...Option) error {
	if name == "" {
		return fmt.Errorf("%w: empty transaction name: give it a name operators recognize", ErrInvalidArgument)
	}
	if fn == nil {
		return fmt.Errorf("%w: nil function for transaction %q", ErrInvalidArgument, name)
	}
	o, err := m.options(opts)
	if err != nil {
		return err
	}
	xid, inTx := gtx.XIDFromContext(ctx)
	switch o.propagation {
	case Required:
		if inTx {
			return fn(ctx)
		}
	case RequiresNew:
	case NotSupported:
		return fn(gtx.ContextWithoutXID(ctx))
	case Supports:
		if inTx {
			return fn(ctx)
		}
		return fn(gtx.ContextWithoutXID(ctx))
	case Never:
		if inTx {
			return fmt.Errorf("%w: %q found %s in the context", ErrTransactionExists, name, xid)
		}
		return fn(gtx.ContextWithoutXID(ctx))
	case Mandatory:
		if !inTx {
			return fmt.Errorf("%w: %q must run inside one", ErrNoTransaction, name)
		}
		return fn(ctx)
	}
	return m.run(ctx, name, fn, o)
}

// run begins a transaction, runs fn in it and ends it.
func (m *Manager) run(ctx context.Context, name string, fn func(ctx context.Context) error, o options) error {
	tx, err := m.begin(ctx, name, o)
	if err != nil {
		return err
	}
	returned := false
	defer func() {
		if returned {
			return
		}
		// fn panicked or called runtime.Goexit: roll back, then let the
		// panic (or the exit) go on.
		r := recover()
		reason := "the transaction's function exited without returning"
		if r != nil {
			reason = fmt.Sprintf("panic: %v", r)
		}
		dctx, cancel := m.decisionContext(ctx)
		defer cancel()
		if _, err := tx.Rollback(dctx, reason); err != nil {
			m.log.ErrorContext(ctx, "rollback after panic failed", "xid", tx.xid, "name", name, "err", err)
		}
		if r != nil {
			panic(r)
		}
	}()
	ctx3 := tx.Context()
	var fnErr error
	if o.threePhase {
		ctx3 = gtx.WithThreePhase(ctx3)
		fnErr = canCommit(ctx3, tx.xid, o.voters)
	}
	if fnErr == nil {
		fnErr = fn(ctx3)
	}
	returned = true
	dctx, cancel := m.decisionContext(ctx)
	defer cancel()
	if fnErr == nil {
		_, err := tx.Commit(dctx)
		return err
	}
	if _, err := tx.Rollback(dctx, fnErr.Error()); err != nil {
		return fmt.Errorf("tm: %q (%s) failed and its rollback failed too: %w; rollback: %w", name, tx.xid, fnErr, err)
	}
	return fmt.Errorf("tm: %q (%s) rolled back: %w", name, tx.xid, fnErr)
}

// canCommit asks every voter at once and returns the first no, matching
// ErrVotedNo.
func canCommit(ctx context.Context, xid string, voters []Voter) error {
	errs := make(chan error, len(voters))
	for _, v := range voters {
		go func() { errs <- v.CanCommit(ctx, xid) }()
	}
	var first error
	for range voters {
		if err := <-errs; err != nil && first == nil {
			first = fmt.Errorf("%w: %w", ErrVotedNo, err)
		}
	}
	return first
}

// decisionContext returns the context a commit or rollback of WithGlobalTx
// runs on: ctx's values without its cancellation, bounded by
// StatusPollTimeout.
func (m *Manager) decisionContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), m.cfg.StatusPollTimeout)
}
