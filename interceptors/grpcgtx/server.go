package grpcgtx

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/interceptors"
)

// Option configures the server interceptors.
type Option func(*options)

type options struct {
	logger *slog.Logger
}

// WithLogger sets the logger that records rejected XIDs (method and reason,
// never the request). The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

func newOptions(opts []Option) *options {
	o := &options{logger: slog.Default()}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// UnaryServerInterceptor returns the interceptor that takes the XID from the
// incoming metadata, validates it and puts it into the handler's context. A
// malformed XID fails the call with codes.InvalidArgument before the handler
// runs.
func UnaryServerInterceptor(opts ...Option) grpc.UnaryServerInterceptor {
	o := newOptions(opts)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := ingress(ctx, o.logger, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streaming RPCs: the
// stream's Context carries the XID.
func StreamServerInterceptor(opts ...Option) grpc.StreamServerInterceptor {
	o := newOptions(opts)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := ingress(ss.Context(), o.logger, info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, withContext(ss, ctx))
	}
}

// ingress returns ctx carrying the XID of the incoming call, if it has one.
// A context that already carries an XID was handled by an earlier gtx
// interceptor and is returned as it is.
func ingress(ctx context.Context, logger *slog.Logger, method string) (context.Context, error) {
	if _, ok := gtx.XIDFromContext(ctx); ok {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	xid, ok, err := interceptors.ParseXID(md.Get(gtx.MetadataKey)...)
	if err != nil {
		logger.WarnContext(ctx, "grpcgtx: rejected a call with a malformed xid", "method", method, "error", err)
		return nil, status.Errorf(codes.InvalidArgument, "grpcgtx: %v", err)
	}
	if !ok {
		return ctx, nil
	}
	return gtx.ContextWithXID(ctx, xid), nil
}

// serverStream is a grpc.ServerStream whose Context is replaced.
type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }

func withContext(ss grpc.ServerStream, ctx context.Context) grpc.ServerStream {
	if ctx == ss.Context() {
		return ss
	}
	return &serverStream{ServerStream: ss, ctx: ctx}
}
