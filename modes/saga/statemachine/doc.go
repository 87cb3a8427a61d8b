// Package statemachine is gtx's saga state-machine engine: sagas written
// as definitions in a JSON or YAML state language, run by an Engine that
// persists every step through gorm (SQLite, MySQL, PostgreSQL), compensates
// failures in reverse order, and resumes unfinished instances after a
// restart. Service tasks call Go functions, gRPC methods, or services
// behind NATS JetStream.
//
//	def, err := statemachine.Parse(yamlOrJSON) // validated; errors name the state and the field
//	cfg := statemachine.DefaultConfig()
//	cfg.DB = db                     // *gorm.DB
//	cfg.Coordinator = tcClient      // optional: XIDs from the TC, final status reported to it
//	e, err := statemachine.New(cfg)
//	e.Register(def)
//	e.RegisterService("inventory", statemachine.ServiceFunc(reserve))
//	e.RegisterService("payment", statemachine.GRPC(conn, "payment.v1.Payment"))
//	e.RegisterAsyncService("shipping", statemachine.NATS(js, "shipping.commands"))
//	err = e.Start(ctx)              // migrates, resumes unfinished instances
//	defer e.Close()
//	inst, err := e.Run(ctx, "order", map[string]any{"sku": "book", "qty": 1})
//
// # The state language
//
// A definition has Name, StartState, States (by name) and an optional
// RecoverStrategy ("Compensate", the default, or "Forward"). The state
// types are those Seata users know:
//
//   - ServiceTask: ServiceName, ServiceMethod, Input, Output, Retry, Catch,
//     CompensateState, TimeoutSeconds, Next. With IsForCompensation: true it
//     is a compensation state, reached only through another task's
//     CompensateState.
//   - Choice: Choices (Expression, Next), tried in order, and Default.
//   - Succeed; Fail (ErrorCode, Message).
//   - CompensationTrigger: compensates everything done so far, then goes
//     to Next (usually a Fail state) or ends the instance as failed.
//   - SubStateMachine: StateMachineName, Input, Output, Catch, Next; runs a
//     child instance in the same global transaction.
//
// Input is any JSON value in which strings starting with "$" are paths into
// the instance's context ("$.order.items[0].sku"); absent, the task gets the
// whole context. Output maps context variables to paths into the task's
// result. A Choice expression compares paths and JSON literals with ==, !=,
// <, <=, >, >=, tests a lone operand for truth ("$.paid", "!$.paid"), and
// joins terms with && and || (&& binds tighter; no parentheses; string
// literals must not contain "&&" or "||").
//
// Failures carry a code: a *TaskError's Code (see Errorf), or the engine's
// CodeError, CodeTimeout, CodeNoChoice, CodeSubStateMachineFailed,
// CodeInput. Retry rules (Exceptions, IntervalSeconds, MaxAttempts,
// BackoffRate) run a failed task again; Catch rules (Exceptions, Next) route
// a task that failed for good, with the failure in the context under
// "Error". A failure nothing catches compensates the instance and ends it
// as failed.
//
// # Compensation and the coordinator
//
// The engine drives its own compensation: it runs the CompensateState of
// every task that ran (succeeded, or failed, since a failure may hide an
// effect), newest first, each retried with backoff until it succeeds; a
// SubStateMachine is compensated by compensating its child. It does not
// enlist branches: with Config.Coordinator set it begins a global
// transaction per instance and, when the instance ends, reports COMMITTED
// (succeeded) or ROLLBACKED (failed) with the coordinator's Report call,
// again after a restart if the report was not made.
//
// # Idempotency and recovery
//
// Every execution of a task has an idempotency key, XID + "/" + instance
// ID + "/" + state + "#" + sequence number, the same for every attempt and
// after a restart; a compensation has its own key and is told the key of
// the execution it undoes (Task.ForwardKey). Each execution is stored as
// running before the service is called, and its outcome after. An engine
// resumes every unfinished instance it takes over (see below): one that was
// compensating carries on compensating; one that was running forward is
// compensated (RecoverStrategy Compensate) or carries on (Forward), calling
// a task that was in flight again with the same key.
//
// # NATS steps
//
// An AsyncService (NATS) publishes a command through JetStream with the XID
// (gtx.MetadataKey), the idempotency key (IdempotencyKeyHeader), the attempt
// and the reply subject in headers, and the engine waits for the reply
// event on its durable reply consumer (Config.JetStream, ReplyStream,
// ReplySubject, ReplyConsumer). A reply is applied only to the attempt it
// answers and only once: a reply delivered twice is acknowledged and
// ignored. A restarted engine resumes waiting: replies that arrived while it
// was down are in the stream, and a command it sends again carries the same
// message ID, so the stream drops it if it was sent before. Services read
// commands with ParseCommand and answer with Command.Reply.
//
// # Several engines on one store
//
// Every instance is run by the engine holding its lease (Config.LeaseTTL,
// renewed every third of it). Every write of an instance checks that the
// writer still owns it, so an engine that lost its lease (paused past it)
// stops instead of racing the engine that took over. Close releases the
// leases at once; a dead engine's run out. Every RecoveryInterval each
// engine takes over the instances whose lease ran out.
package statemachine
