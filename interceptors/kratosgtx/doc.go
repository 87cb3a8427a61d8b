// Package kratosgtx carries the XID of a global transaction through go-kratos
// (v2) services and runs chosen operations inside global transactions.
//
// The middleware works on kratos's gRPC and HTTP transports alike:
//
//	grpc.NewServer(grpc.Middleware(
//		recovery.Recovery(),
//		kratosgtx.Server(),   // validate the XID, put it into the context
//		metadata.Server(),
//		selector.Server(kratosgtx.GlobalTx(g)).Path("/order.v1.Order/Place").Build(),
//	))
//	grpc.DialInsecure(ctx, grpc.WithEndpoint(addr), grpc.WithMiddleware(
//		kratosgtx.Client(),   // send the XID of the context
//		metadata.Client(),
//	))
//
// gtx.MetadataKey starts with kratos's "x-md-global-" prefix, so a service
// in the middle that runs only metadata.Server() and metadata.Client()
// passes the XID on unchanged. kratosgtx.Client() matters where a handler
// may call on with another XID than it received (tm.RequiresNew,
// tm.NotSupported).
//
// kratos middleware does not wrap streaming handlers; for streams add
// grpcgtx.StreamServerInterceptor with grpc.StreamInterceptor and
// grpcgtx.StreamClientInterceptor with grpc.WithStreamInterceptor.
//
// See docs/kratos.md for attaching the annotations to one operation, to a
// service, and to a client.
package kratosgtx
