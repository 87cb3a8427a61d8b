package httpgtx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/tm"
)

// GlobalTx returns the middleware that runs the wrapped handler inside a
// global transaction: the @GlobalTransactional of net/http. Wrap the
// handlers of the routes that need it; when g lists operations
// (interceptors.Operations), they are ServeMux patterns such as
// "POST /orders", and other requests pass through. It reads and validates
// the incoming XID itself when Server did not run before it, so a request
// inside a global transaction joins it (per g's propagation). It panics if
// g is nil.
//
// The handler's response is held back until the transaction ends, so a
// client never sees success for work that was rolled back; handlers that
// stream (http.Flusher) do not fit here. The transaction commits when the
// handler answers with a status below 400, and rolls back when it answers
// 400 or above (the response is then sent as the handler wrote it) or
// panics (the panic goes on after the rollback). When the handler succeeded
// but the transaction failed, its response is dropped and the client gets
// 409 Conflict (400 when the propagation refused the call, 500 when the
// outcome is unknown).
func GlobalTx(g *interceptors.GlobalTx, opts ...Option) func(http.Handler) http.Handler {
	if g == nil {
		panic("httpgtx: GlobalTx needs the *interceptors.GlobalTx from interceptors.NewGlobalTx, got nil")
	}
	o := newOptions(opts)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			op := operation(r)
			if !g.Applies(op) {
				next.ServeHTTP(w, r)
				return
			}
			r, ok := ingress(w, r, o.logger)
			if !ok {
				return
			}
			buf := &bufferedResponse{header: w.Header().Clone()}
			err := g.Run(r.Context(), op, func(ctx context.Context) error {
				next.ServeHTTP(buf, withContext(r, ctx))
				if buf.status >= http.StatusBadRequest {
					return &statusError{status: buf.status}
				}
				return nil
			})
			if err != nil && errors.Is(err, interceptors.ErrGlobalTxFailed) {
				o.logger.WarnContext(r.Context(), "httpgtx: global transaction failed", "method", r.Method, "operation", op, "error", err)
				code := http.StatusConflict
				switch {
				case interceptors.Precondition(err):
					code = http.StatusBadRequest
				case errors.Is(err, tm.ErrOutcomeUnknown):
					code = http.StatusInternalServerError
				}
				http.Error(w, "httpgtx: "+err.Error(), code)
				return
			}
			buf.flush(w)
		})
	}
}

// statusError is the error a handler "returns" by answering status.
type statusError struct{ status int }

func (e *statusError) Error() string {
	return fmt.Sprintf("httpgtx: handler answered %d %s", e.status, http.StatusText(e.status))
}

// bufferedResponse holds a handler's response until its transaction ends.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// flush sends the held response to w.
func (b *bufferedResponse) flush(w http.ResponseWriter) {
	h := w.Header()
	for k := range h {
		if _, ok := b.header[k]; !ok {
			delete(h, k)
		}
	}
	for k, v := range b.header {
		h[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}
