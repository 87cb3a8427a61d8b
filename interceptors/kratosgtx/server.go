package kratosgtx

import (
	"context"
	"log/slog"

	"github.com/go-kratos/kratos/v2/errors"
	"github.com/go-kratos/kratos/v2/middleware"
	"github.com/go-kratos/kratos/v2/transport"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/interceptors"
)

// ReasonInvalidXID is the reason of the errors.BadRequest a server answers
// for a malformed XID.
const ReasonInvalidXID = "GTX_INVALID_XID"

// Option configures the server middleware.
type Option func(*options)

type options struct {
	logger *slog.Logger
}

// WithLogger sets the logger that records rejected XIDs and failed global
// transactions (operation and reason, never the request). The default is
// slog.Default().
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

// Server returns the middleware that takes the XID from the request header
// (gRPC metadata or HTTP header, key gtx.MetadataKey), validates it and puts
// it into the handler's context. A malformed XID answers errors.BadRequest
// with reason ReasonInvalidXID before the handler runs. Use it on kratos gRPC
// and HTTP servers, next to metadata.Server().
func Server(opts ...Option) middleware.Middleware {
	o := newOptions(opts)
	return func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, req any) (any, error) {
			ctx, err := ingress(ctx, o.logger)
			if err != nil {
				return nil, err
			}
			return next(ctx, req)
		}
	}
}

// ingress returns ctx carrying the XID of the incoming request, if it has
// one. A context that already carries an XID was handled by an earlier gtx
// middleware and is returned as it is.
func ingress(ctx context.Context, logger *slog.Logger) (context.Context, error) {
	if _, ok := gtx.XIDFromContext(ctx); ok {
		return ctx, nil
	}
	tr, ok := transport.FromServerContext(ctx)
	if !ok {
		return ctx, nil
	}
	xid, ok, err := interceptors.ParseXID(tr.RequestHeader().Values(gtx.MetadataKey)...)
	if err != nil {
		logger.WarnContext(ctx, "kratosgtx: rejected a request with a malformed xid", "kind", tr.Kind().String(), "operation", tr.Operation(), "error", err)
		return nil, errors.BadRequest(ReasonInvalidXID, "kratosgtx: "+err.Error())
	}
	if !ok {
		return ctx, nil
	}
	return gtx.ContextWithXID(ctx, xid), nil
}

// operation returns the kratos operation of the request ctx serves.
func operation(ctx context.Context) string {
	if tr, ok := transport.FromServerContext(ctx); ok {
		return tr.Operation()
	}
	return ""
}
