package httpgtx

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/interceptors"
)

// Option configures the server middleware.
type Option func(*options)

type options struct {
	logger *slog.Logger
}

// WithLogger sets the logger that records rejected XIDs and failed global
// transactions (method, route and reason, never the request). The default is
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
// gtx.MetadataKey, validates it and puts it into the request's context. A
// malformed XID is answered with 400 Bad Request; the wrapped handler does
// not run.
func Server(opts ...Option) func(http.Handler) http.Handler {
	o := newOptions(opts)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r, ok := ingress(w, r, o.logger)
			if !ok {
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// ingress returns r with a context carrying the XID of the request, if it
// has one. It answers 400 and reports false for a malformed XID. A request
// whose context already carries an XID was handled by an earlier gtx
// middleware and is returned as it is.
func ingress(w http.ResponseWriter, r *http.Request, logger *slog.Logger) (*http.Request, bool) {
	if _, ok := gtx.XIDFromContext(r.Context()); ok {
		return r, true
	}
	xid, ok, err := interceptors.ParseXID(r.Header.Values(gtx.MetadataKey)...)
	if err != nil {
		logger.WarnContext(r.Context(), "httpgtx: rejected a request with a malformed xid", "method", r.Method, "operation", operation(r), "error", err)
		http.Error(w, "httpgtx: "+err.Error(), http.StatusBadRequest)
		return nil, false
	}
	if !ok {
		return r, true
	}
	return r.WithContext(gtx.ContextWithXID(r.Context(), xid)), true
}

// operation names what r asks for: the ServeMux pattern that matched it, or
// its method and path.
func operation(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return r.Method + " " + r.URL.Path
}

// GlobalLock returns the middleware that marks the request's context with
// gtx.WithGlobalLock: the @GlobalLock of net/http. Local transactions the
// wrapped handler runs through the AT driver check the coordinator's global
// row locks without joining a global transaction. Wrap the handlers of the
// routes that need it.
func GlobalLock() func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(gtx.WithGlobalLock(r.Context())))
		})
	}
}

// withContext returns r with ctx, or r itself when it has ctx already.
func withContext(r *http.Request, ctx context.Context) *http.Request {
	if ctx == r.Context() {
		return r
	}
	return r.WithContext(ctx)
}
