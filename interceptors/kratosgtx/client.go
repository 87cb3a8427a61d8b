package kratosgtx

import (
	"context"

	"github.com/go-kratos/kratos/v2/metadata"
	"github.com/go-kratos/kratos/v2/middleware"
	"github.com/go-kratos/kratos/v2/transport"

	"github.com/gtx-io/gtx"
)

// Client returns the middleware that puts the XID of the call's context into
// the request header under gtx.MetadataKey, for kratos gRPC and HTTP
// clients. A context without an XID sends none (or, when metadata.Client()
// ran first and added one, an empty value, which servers read as none).
//
// It also takes the key out of the kratos metadata in the context, so that
// metadata.Client() does not send a stale XID next to it: the XID a handler
// received is not the one it calls with after it began a new transaction
// (tm.RequiresNew) or left one (tm.NotSupported). It may come before or
// after metadata.Client() in the middleware list.
func Client() middleware.Middleware {
	return func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, req any) (any, error) {
			tr, ok := transport.FromClientContext(ctx)
			if !ok {
				return next(ctx, req)
			}
			ctx = withoutMetadataXID(ctx)
			header := tr.RequestHeader()
			if xid, ok := gtx.XIDFromContext(ctx); ok {
				header.Set(gtx.MetadataKey, xid)
			} else if header.Get(gtx.MetadataKey) != "" {
				header.Set(gtx.MetadataKey, "")
			}
			return next(ctx, req)
		}
	}
}

// withoutMetadataXID returns ctx whose kratos server and client metadata
// hold no XID.
func withoutMetadataXID(ctx context.Context) context.Context {
	if md, ok := metadata.FromServerContext(ctx); ok && md.Get(gtx.MetadataKey) != "" {
		md = md.Clone()
		delete(md, gtx.MetadataKey)
		ctx = metadata.NewServerContext(ctx, md)
	}
	if md, ok := metadata.FromClientContext(ctx); ok && md.Get(gtx.MetadataKey) != "" {
		md = md.Clone()
		delete(md, gtx.MetadataKey)
		ctx = metadata.NewClientContext(ctx, md)
	}
	return ctx
}
