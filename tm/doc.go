// Package tm is gtx's transaction manager: the API that begins global
// transactions and ends them, the Go counterpart of Seata's TM and of
// Spring's @GlobalTransactional.
//
// A Manager talks to the coordinator (package tc) over its gRPC protocol:
//
//	conn, err := grpc.NewClient("tc:8091", grpc.WithTransportCredentials(insecure.NewCredentials()),
//		rm.FastReconnect()) // reconnect within a second of a restarted coordinator
//	...
//	cfg := tm.DefaultConfig()
//	cfg.Application = "order-service"
//	m, err := tm.New(tcv1.NewCoordinatorClient(conn), cfg)
//	...
//	err = m.WithGlobalTx(ctx, "place-order", func(ctx context.Context) error {
//		// SQL through the AT driver, calls to other services: ctx carries
//		// the XID, and the gtx interceptors pass it on.
//		return nil // nil commits, an error rolls back
//	}, tm.Timeout(30*time.Second))
//
// # Propagation
//
// WithGlobalTx honours the propagation modes users know from Seata and
// Spring (Required, RequiresNew, NotSupported, Supports, Never, Mandatory;
// see WithPropagation). Only the call that begins a transaction ends it. A
// call that joins one returns its function's error and leaves the decision
// to the starter, so an error in a joined part must travel back to the
// starter through ordinary error returns.
//
// # Three-phase commit
//
// The ThreePhase option asks Voters (CanCommit) before the function runs,
// marks its context with gtx.WithThreePhase for the branches it prepares
// (PreCommit), then commits (DoCommit); see ThreePhase and
// docs/consistency.md for what participants do on a timeout after
// PreCommit.
//
// # Lost answers
//
// When the answer to a commit or rollback is lost in transport, a Manager
// never guesses the outcome: it asks the coordinator for the status, with
// backoff, until it knows (or Config.StatusPollTimeout runs out, which gives
// ErrOutcomeUnknown). A commit that the coordinator turned into a rollback,
// because the transaction timed out first, gives a *RolledBackError.
//
// # Lower level
//
// Manager.Begin returns a *Tx to end explicitly with Tx.Commit or
// Tx.Rollback, for code that cannot wrap its work in one function.
//
// # Errors
//
// ErrInvalidConfig and ErrInvalidArgument mean bad input, with nothing sent.
// ErrTransactionExists and ErrNoTransaction come from the Never and
// Mandatory propagations. *RolledBackError (ErrRolledBack),
// *Phase2FailedError (ErrPhase2Failed) and ErrCommitted describe outcomes
// other than the one asked for; ErrOutcomeUnknown an outcome not learned in
// time; ErrNotFound an XID the coordinator does not know; ErrTxDone a Tx
// already ended.
package tm
