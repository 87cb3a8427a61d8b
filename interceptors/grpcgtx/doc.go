// Package grpcgtx carries the XID of a global transaction over gRPC and
// runs chosen methods inside global transactions.
//
// Clients add the interceptors that send the XID of the call's context:
//
//	conn, err := grpc.NewClient(target,
//		grpc.WithChainUnaryInterceptor(grpcgtx.UnaryClientInterceptor()),
//		grpc.WithChainStreamInterceptor(grpcgtx.StreamClientInterceptor()))
//
// Servers add the interceptors that validate the incoming XID and put it
// into the handler's context, then, for the methods that need them, the
// annotations (full method names):
//
//	g, err := interceptors.NewGlobalTx(mgr, interceptors.Operations("/order.v1.Order/Place"))
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(
//			grpcgtx.UnaryServerInterceptor(),
//			grpcgtx.UnaryGlobalTx(g),
//			grpcgtx.UnaryGlobalLock("/order.v1.Order/Get"),
//		),
//		grpc.ChainStreamInterceptor(grpcgtx.StreamServerInterceptor()))
//
// A malformed XID fails the call with codes.InvalidArgument. A handler's
// own error comes back unchanged; a global transaction that failed to begin
// or commit after the handler succeeded comes back as codes.Aborted
// (codes.FailedPrecondition when the propagation refused the call).
//
// Put a recovery interceptor before UnaryGlobalTx if handlers may panic:
// the annotation rolls back and lets the panic go on, and gRPC does not
// recover it.
package grpcgtx
