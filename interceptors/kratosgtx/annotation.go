package kratosgtx

import (
	"context"
	stderrors "errors"

	"github.com/go-kratos/kratos/v2/errors"
	"github.com/go-kratos/kratos/v2/middleware"
	"github.com/go-kratos/kratos/v2/transport"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/tm"
)

// Reasons of the errors a GlobalTx middleware answers when the handler
// succeeded or never ran but its global transaction failed.
const (
	// ReasonGlobalTxFailed (409 Conflict) says the transaction could not
	// begin or did not commit: nothing the handler did stays.
	ReasonGlobalTxFailed = "GTX_GLOBAL_TX_FAILED"
	// ReasonGlobalTxRefused (400 Bad Request) says the propagation
	// refused the call: tm.Never inside a transaction, tm.Mandatory outside.
	ReasonGlobalTxRefused = "GTX_GLOBAL_TX_REFUSED"
	// ReasonGlobalTxUnknown (500) says the commit's outcome is unknown.
	ReasonGlobalTxUnknown = "GTX_GLOBAL_TX_OUTCOME_UNKNOWN"
)

// GlobalTx returns the middleware that runs the handlers g applies to inside
// a global transaction: the @GlobalTransactional of kratos. Attach it to one
// operation with selector.Server(GlobalTx(g)).Path(op).Build(), or list the
// operations in g with interceptors.Operations; without either it applies
// to every operation of the server. It reads and validates the incoming XID
// itself when Server() did not run before it, so a request inside a global
// transaction joins it (per g's propagation). It panics if g is nil.
//
// A handler error rolls back and is returned unchanged; a panic
// rolls back and goes on (let recovery.Recovery() turn it into a 500). When
// the handler succeeded but the transaction failed, the reply is dropped
// and an error with reason ReasonGlobalTxFailed, ReasonGlobalTxRefused or
// ReasonGlobalTxUnknown is returned.
func GlobalTx(g *interceptors.GlobalTx, opts ...Option) middleware.Middleware {
	if g == nil {
		panic("kratosgtx: GlobalTx needs the *interceptors.GlobalTx from interceptors.NewGlobalTx, got nil")
	}
	o := newOptions(opts)
	return func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, req any) (any, error) {
			op := operation(ctx)
			if !g.Applies(op) {
				return next(ctx, req)
			}
			ctx, err := ingress(ctx, o.logger)
			if err != nil {
				return nil, err
			}
			return run(ctx, g, o, op, next, req)
		}
	}
}

// ClientGlobalTx returns the client middleware that runs the calls g
// applies to (by the client operation, such as "/order.v1.Order/Place")
// inside a global transaction: the @GlobalTransactional of a method whose
// whole work is one remote call. A call made inside a transaction joins it,
// per g's propagation; otherwise the call's success commits and its error
// rolls back. Put it before Client() in the client's middleware list, so
// that the call carries the transaction's XID. It panics if g is nil.
func ClientGlobalTx(g *interceptors.GlobalTx, opts ...Option) middleware.Middleware {
	if g == nil {
		panic("kratosgtx: ClientGlobalTx needs the *interceptors.GlobalTx from interceptors.NewGlobalTx, got nil")
	}
	o := newOptions(opts)
	return func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, req any) (any, error) {
			tr, ok := transport.FromClientContext(ctx)
			if !ok || !g.Applies(tr.Operation()) {
				return next(ctx, req)
			}
			return run(ctx, g, o, tr.Operation(), next, req)
		}
	}
}

// run calls next inside g's transaction and turns a *interceptors.TxError
// into a kratos error.
func run(ctx context.Context, g *interceptors.GlobalTx, o *options, op string, next middleware.Handler, req any) (any, error) {
	var reply any
	err := g.Run(ctx, op, func(ctx context.Context) error {
		var err error
		reply, err = next(ctx, req)
		return err
	})
	if err == nil {
		return reply, nil
	}
	if !stderrors.Is(err, interceptors.ErrGlobalTxFailed) {
		return nil, err
	}
	o.logger.WarnContext(ctx, "kratosgtx: global transaction failed", "operation", op, "error", err)
	switch {
	case interceptors.Precondition(err):
		return nil, errors.BadRequest(ReasonGlobalTxRefused, err.Error()).WithCause(err)
	case stderrors.Is(err, tm.ErrOutcomeUnknown):
		return nil, errors.InternalServer(ReasonGlobalTxUnknown, err.Error()).WithCause(err)
	}
	return nil, errors.Conflict(ReasonGlobalTxFailed, err.Error()).WithCause(err)
}

// GlobalLock returns the middleware that marks the context of the named
// operations (every operation when none is named) with gtx.WithGlobalLock:
// the @GlobalLock of kratos. Local transactions those handlers run through
// the AT driver check the coordinator's global row locks without joining a
// global transaction. It combines with selector.Server as GlobalTx does.
func GlobalLock(operations ...string) middleware.Middleware {
	var set map[string]struct{}
	if len(operations) > 0 {
		set = make(map[string]struct{}, len(operations))
		for _, op := range operations {
			set[op] = struct{}{}
		}
	}
	return func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, req any) (any, error) {
			if set != nil {
				if _, ok := set[operation(ctx)]; !ok {
					return next(ctx, req)
				}
			}
			return next(gtx.WithGlobalLock(ctx), req)
		}
	}
}
