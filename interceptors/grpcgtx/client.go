package grpcgtx

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/gtx-io/gtx"
)

// UnaryClientInterceptor returns the interceptor that puts the XID of the
// call's context into the outgoing metadata under gtx.MetadataKey. A context
// without an XID (see gtx.ContextWithoutXID) sends none, even where the
// outgoing metadata held one.
func UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(Outgoing(ctx), method, req, reply, cc, opts...)
	}
}

// StreamClientInterceptor is UnaryClientInterceptor for streaming RPCs.
func StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(Outgoing(ctx), desc, cc, method, opts...)
	}
}

// Outgoing returns ctx with its outgoing gRPC metadata carrying exactly the
// XID ctx carries, or no XID when ctx carries none. The client interceptors
// call it; call it yourself where a connection has no gtx interceptor.
func Outgoing(ctx context.Context) context.Context {
	xid, ok := gtx.XIDFromContext(ctx)
	md, _ := metadata.FromOutgoingContext(ctx)
	sent := md.Get(gtx.MetadataKey)
	switch {
	case len(sent) == 0 && !ok:
		return ctx
	case len(sent) == 0:
		return metadata.AppendToOutgoingContext(ctx, gtx.MetadataKey, xid)
	case ok && len(sent) == 1 && sent[0] == xid:
		return ctx
	}
	md = md.Copy()
	if ok {
		md.Set(gtx.MetadataKey, xid)
	} else {
		md.Delete(gtx.MetadataKey)
	}
	return metadata.NewOutgoingContext(ctx, md)
}
