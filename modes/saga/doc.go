// Package saga is gtx's Saga mode: long-running transactions made
// consistent by compensation instead of locks.
//
// This package runs sagas written in Go. The state-machine engine, with a
// JSON/YAML state language, persistence and NATS JetStream steps, is in
// package modes/saga/statemachine.
//
// # Code sagas
//
// A saga is a sequence of steps, some of them in parallel groups; each step
// has an action and names a compensation:
//
//	reg := saga.NewRegistry() // the same names on every instance
//	reg.Register("release-stock", releaseStock)
//	reg.Register("refund", refund)
//	m.Handle(tcv1.BranchType_SAGA, saga.NewHandler(reg)) // m is the instance's *rm.Manager
//
//	o, err := saga.New(saga.Config{TM: tmm, RM: m, Registry: reg, ResourceID: "orders"})
//	s := saga.Define("place-order").
//		Then(saga.Step{Name: "reserve", Action: reserve, Compensation: "release-stock",
//			Retry: saga.RetryPolicy{MaxAttempts: 3, Initial: 100 * time.Millisecond, Multiplier: 2}}).
//		Parallel(
//			saga.Step{Name: "charge", Action: charge, Compensation: "refund"},
//			saga.Step{Name: "notify", Action: notify},
//		)
//	err = o.Run(ctx, s)
//
// Run begins a global transaction and runs the groups in order. Before each
// step's action runs, the step is enlisted with the coordinator as a SAGA
// branch whose application data names its compensation (and carries
// Step.Data). When every step succeeds, Run commits (a saga branch has no
// second phase). When a step fails on its last attempt (see RetryPolicy and
// Permanent), Run rolls back, and the coordinator sends a rollback to each
// enlisted branch, newest first, stopping at the first failure and retrying
// it with backoff: compensation runs in reverse order and is retried until it
// succeeds. The coordinator does the same when the saga times out
// (Config.Timeout), which also covers an orchestrator that died: any live
// instance serving the resource runs the compensations, since each looks
// its compensation up by name in its own Registry.
//
// # The crash window, and what actions and compensations must accept
//
// A step is enlisted before its action runs, never after. Enlisting after
// the action would leave a window (action done, branch not yet registered)
// in which a crash loses the compensation. Enlisting first has two
// consequences the step's code must accept:
//
//   - empty compensation: a compensation may run for an action that never
//     ran or failed halfway (the failed step itself is compensated, since a
//     failure may hide an effect, such as a lost reply);
//   - late action: an action still in flight when the coordinator
//     compensates (after a timeout) may land after its compensation. A
//     service that cannot tolerate that records compensated keys and
//     refuses actions for them.
//
// Both are handled with the idempotency key, Call.Key (XID + "/" + step
// name), the same for an action, its retries and its compensation.
package saga
