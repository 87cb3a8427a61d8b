// Package tcc is gtx's TCC (Try-Confirm-Cancel) mode: a service makes its
// own part of a global transaction two-phase with three functions, and a
// fence table in its database makes their delivery safe.
//
// # Actions
//
// An action is Try, Confirm and Cancel over a typed request. Try reserves
// (freezes an amount, holds stock) and may record values for the later
// phases; Confirm consumes the reservation; Cancel releases it. Each phase
// runs in a local transaction the fence opens, given as a Tx with both the
// *sql.Tx and, for a fence opened on gorm, a gorm session on it:
//
//	fence, err := tcc.OpenGormFence(ctx, gdb, tcc.DefaultFenceConfig())
//	...
//	defer fence.Close()
//	p := tcc.NewParticipant(rmManager, nil) // rmManager: an *rm.Manager of this service
//	freeze, err := tcc.Register(p, "account.freeze", fence, tcc.Phases[Freeze]{
//		Try: func(ctx context.Context, tx tcc.Tx, bc *tcc.BranchContext[Freeze]) error {
//			res := tx.Gorm.Exec("UPDATE account SET balance = balance - ?, frozen = frozen + ? WHERE id = ? AND balance >= ?",
//				bc.Request.Amount, bc.Request.Amount, bc.Request.Account, bc.Request.Amount)
//			if res.Error != nil || res.RowsAffected == 0 {
//				return errInsufficientFunds
//			}
//			return bc.Set("frozen_at", time.Now())
//		},
//		Confirm: ...,
//		Cancel:  ...,
//	})
//	...
//	err = rmManager.Start(ctx)
//
// Inside a global transaction (tm.WithGlobalTx, or a handler behind the gtx
// interceptors of a caller that runs one) the service calls Try:
//
//	_, err := freeze.Try(ctx, Freeze{Account: "alice", Amount: 30})
//
// Try registers a TCC branch with the coordinator, under the XID of ctx,
// with the request stored as the branch's application data (JSON); then it
// runs the Try phase in a fenced local transaction. Values Try sets with
// BranchContext.Set are added to the stored data before that transaction
// commits. When the global transaction ends, the coordinator sends each
// branch's Confirm or Cancel over the resource manager's stream to any
// instance that registered the action (the action's name is the branch's
// resource ID); the Participant decodes the request and values and runs the
// phase. A Try whose caller is remote works the same way: the interceptors
// bring the caller's XID into the handler's ctx, and the branch joins the
// caller's transaction.
//
// # The fence
//
// Confirm and Cancel are delivered at least once, possibly concurrently, and
// a Cancel may come for a Try that never ran or has not run yet (the global
// transaction timed out while the Try request was in flight). The Fence
// keeps one row per branch, keyed by (XID, branch ID), in the same database
// and local transaction as the business work:
//
//	Try      inserts "tried"; a row already there (the Cancel came first)
//	         refuses the Try with ErrTryRefused, so nothing stays reserved
//	Confirm  tried -> confirmed and runs; confirmed again is a no-op
//	Cancel   tried -> cancelled and runs; no row -> inserts "suspended" and
//	         succeeds without running (an empty rollback); again is a no-op
//
// Confirm after Cancel, or Cancel after Confirm, fails with ErrFenceConflict,
// which the coordinator does not retry. The business phases therefore run
// exactly once per branch, and need no idempotency of their own. A cleaner
// goroutine owned by the Fence deletes finished rows after
// FenceConfig.CleanAge. The fence works on MySQL/MariaDB, PostgreSQL and
// SQLite, opened through database/sql (OpenFence) or gorm (OpenGormFence),
// and can guard hand-written TCC handlers too: Fence.Try, Fence.Confirm and
// Fence.Cancel take the XID and branch ID directly.
//
// # Async confirm
//
// Registering an action with AsyncConfirm lets the coordinator answer the
// commit once the decision is durable, before the Confirms ran, when every
// branch of the transaction allows it. Commits return sooner; in exchange the
// caller may read the Try state (reserved, not yet confirmed) just after it
// heard "committed". See docs/tcc.md.
package tcc
