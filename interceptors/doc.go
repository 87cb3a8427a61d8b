// Package interceptors carries the XID of a global transaction across
// process boundaries and gives handlers the Go form of Seata's annotations.
//
// The transports live in sub-packages named after what they wrap, so that
// their names never clash with the libraries they are used next to:
//
//	interceptors/grpcgtx    google.golang.org/grpc interceptors, client and server, unary and stream
//	interceptors/kratosgtx  go-kratos middleware for its gRPC and HTTP transports, client and server
//	interceptors/httpgtx    net/http server middleware and an http.RoundTripper
//	interceptors/natsgtx    nats.go publish and request helpers, core and JetStream handler wrappers
//
// Every transport carries the XID under the one key gtx.MetadataKey
// ("x-md-global-gtx-xid"): a gRPC metadata key, an HTTP header, a NATS
// header. Its "x-md-global-" prefix makes kratos's metadata middleware pass
// it on across hops by itself.
//
// # Ingress
//
// A server reads the XID where the request enters the process, checks it
// with ParseXID (gtx.ValidateXID: at most gtx.MaxXIDLen bytes of
// [0-9A-Za-z._:-]; several values must agree; empty values count as none)
// and puts it into the handler's context with gtx.ContextWithXID. A
// malformed XID is refused before the handler runs and before any
// transaction begins: gRPC codes.InvalidArgument, HTTP 400 (kratos
// errors.BadRequest), a NATS error reply or a terminated JetStream message.
// Rejections are logged with the operation and the reason, never with the
// request body.
//
// # Egress
//
// A client sends exactly the XID of the call's context, replacing whatever
// the outgoing metadata held; a context without one (gtx.ContextWithoutXID,
// as tm's NotSupported propagation makes) sends none.
//
// # Annotations
//
// GlobalTx is @GlobalTransactional: built once with NewGlobalTx from a
// *tm.Manager and options (Name, Timeout, Propagation, Operations), it is
// attached to chosen handlers by each transport. The handler runs through
// tm.Manager.WithGlobalTx: success commits, an error or a panic rolls back
// (the panic goes on), and a call that arrives inside a global transaction
// joins it, per the propagation.
//
//	g, err := interceptors.NewGlobalTx(mgr,
//		interceptors.Operations("/order.v1.Order/Place"),
//		interceptors.Timeout(30*time.Second))
//	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(
//		grpcgtx.UnaryServerInterceptor(),
//		grpcgtx.UnaryGlobalTx(g),
//	))
//
// The @GlobalLock analogue marks a handler's context with
// gtx.WithGlobalLock, so that its local transactions check the
// coordinator's global row locks: grpcgtx.UnaryGlobalLock,
// kratosgtx.GlobalLock, httpgtx.GlobalLock and natsgtx.WithGlobalLock.
//
// docs/kratos.md shows the kratos wiring end to end.
package interceptors
