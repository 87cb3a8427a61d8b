// Package rm is gtx's resource manager core: what every branch mode (AT,
// TCC, saga, XA) builds on. A Manager
//
//   - registers branches with the coordinator (RegisterBranch, taking global
//     row locks) and reports their phase-1 outcome (ReportBranch);
//   - keeps a long-lived Attach stream to every coordinator replica,
//     announcing the resources it serves, and re-attaches with backoff when a
//     stream breaks;
//   - runs the phase-2 commands the coordinators send through the Handler of
//     each branch type, concurrently up to Config.Workers, and answers each
//     with its result.
//
// Usage:
//
//	cfg := rm.DefaultConfig()
//	cfg.Application = "inventory"
//	cfg.Coordinators = []tcv1.CoordinatorClient{tcv1.NewCoordinatorClient(conn)}
//	m, err := rm.New(cfg)
//	...
//	m.Handle(tcv1.BranchType_TCC, tccHandler)
//	err = m.AddResource("inventory-db", tcv1.BranchType_TCC)
//	err = m.Start(ctx)
//	defer m.Close()
//	...
//	branchID, err := m.RegisterBranch(ctx, xid, tcv1.BranchType_TCC, "inventory-db", "", actionContext)
//
// With coordinator replicas that come and go (a Kubernetes Deployment),
// set Config.Discovery instead of, or besides, Coordinators: the Manager
// resolves the replicas periodically (StaticResolver, or DNSResolver on a
// headless service's A or SRV records) and attaches to each one it finds:
//
//	cfg.Discovery = &rm.Discovery{
//		Resolver: rm.DNSResolver{Name: "gtx-tc-headless.gtx.svc.cluster.local", Port: 8091},
//		Dial:     rm.GRPCDialer(grpc.WithTransportCredentials(creds)),
//	}
//
// # Reconnecting
//
// A Manager re-attaches within a second of a coordinator being reachable
// again, however long it was away: each attach attempt waits for the
// connection to be ready (gRPC's WaitForReady) rather than failing while
// the coordinator is down, and the connection retries connecting at least
// every 960ms when dialed with FastReconnect, which GRPCDialer does. gRPC's
// default would back off to two minutes between attempts; dial the clients
// of Config.Coordinators, and the transaction manager's, with
// FastReconnect too. A stream the coordinator refused or ended (shutting
// down, a bad token) is attached again after ReconnectInitial, backing off
// to ReconnectMax.
//
// A coordinator whose host vanishes without closing its connections is only
// noticed by the transport: dial coordinators with gRPC keepalive
// (grpc.WithKeepaliveParams), so that the stream breaks and the Manager
// re-attaches.
//
// # Delivery
//
// Phase-2 commands are delivered at least once: a result lost with its
// stream, a coordinator restart, or another replica taking over sends the
// command again, possibly to another instance. Handlers must be idempotent
// by (XID, branch ID). A handler's error is retried by the coordinator
// unless wrapped with Unretryable. A command for a branch type with no
// handler, or a resource this instance did not add, is answered with a
// retryable failure, since another instance may serve it.
//
// # Errors
//
// RegisterBranch and ReportBranch map the coordinator's answers to
// *LockConflictError (ErrLockConflict; HolderRollingBack tells AT mode to
// give up at once), *NotActiveError (ErrTransactionNotActive),
// ErrTransactionNotFound, ErrInvalidArgument and ErrCoordinatorUnavailable.
package rm
