package grpcgtx

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/tm"
)

// UnaryGlobalTx returns the interceptor that runs the handlers of the
// methods g applies to (interceptors.Operations with full method names)
// inside a global transaction: the @GlobalTransactional of gRPC. It reads
// and validates the incoming XID itself when no earlier gtx interceptor did,
// so a call inside a global transaction joins it. It panics if g is nil.
//
// A handler error rolls back and is returned unchanged; a
// failed begin or commit after a successful handler answers codes.Aborted
// (codes.FailedPrecondition when the propagation refused the call).
func UnaryGlobalTx(g *interceptors.GlobalTx, opts ...Option) grpc.UnaryServerInterceptor {
	if g == nil {
		panic("grpcgtx: UnaryGlobalTx needs the *interceptors.GlobalTx from interceptors.NewGlobalTx, got nil")
	}
	o := newOptions(opts)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !g.Applies(info.FullMethod) {
			return handler(ctx, req)
		}
		ctx, err := ingress(ctx, o.logger, info.FullMethod)
		if err != nil {
			return nil, err
		}
		var reply any
		err = g.Run(ctx, info.FullMethod, func(ctx context.Context) error {
			var err error
			reply, err = handler(ctx, req)
			return err
		})
		if err != nil {
			return nil, statusOf(ctx, o.logger, info.FullMethod, err)
		}
		return reply, nil
	}
}

// StreamGlobalTx is UnaryGlobalTx for streaming RPCs: the whole stream runs
// inside one global transaction, which ends when the handler returns.
func StreamGlobalTx(g *interceptors.GlobalTx, opts ...Option) grpc.StreamServerInterceptor {
	if g == nil {
		panic("grpcgtx: StreamGlobalTx needs the *interceptors.GlobalTx from interceptors.NewGlobalTx, got nil")
	}
	o := newOptions(opts)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !g.Applies(info.FullMethod) {
			return handler(srv, ss)
		}
		ctx, err := ingress(ss.Context(), o.logger, info.FullMethod)
		if err != nil {
			return err
		}
		err = g.Run(ctx, info.FullMethod, func(ctx context.Context) error {
			return handler(srv, withContext(ss, ctx))
		})
		if err != nil {
			return statusOf(ctx, o.logger, info.FullMethod, err)
		}
		return nil
	}
}

// statusOf turns a *interceptors.TxError into a gRPC status and leaves a
// handler's own error as it is.
func statusOf(ctx context.Context, logger *slog.Logger, method string, err error) error {
	if !errors.Is(err, interceptors.ErrGlobalTxFailed) {
		return err
	}
	logger.WarnContext(ctx, "grpcgtx: global transaction failed", "method", method, "error", err)
	switch {
	case interceptors.Precondition(err):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, tm.ErrOutcomeUnknown):
		return status.Error(codes.Unknown, err.Error())
	}
	return status.Error(codes.Aborted, err.Error())
}

// UnaryGlobalLock returns the interceptor that marks the context of the
// named methods (full method names; every method when none is named) with
// gtx.WithGlobalLock: the @GlobalLock of gRPC. Local transactions those
// handlers run through the AT driver check the coordinator's global row
// locks without joining a global transaction.
func UnaryGlobalLock(methods ...string) grpc.UnaryServerInterceptor {
	set := methodSet(methods)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if set.has(info.FullMethod) {
			ctx = gtx.WithGlobalLock(ctx)
		}
		return handler(ctx, req)
	}
}

// StreamGlobalLock is UnaryGlobalLock for streaming RPCs.
func StreamGlobalLock(methods ...string) grpc.StreamServerInterceptor {
	set := methodSet(methods)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if set.has(info.FullMethod) {
			ss = withContext(ss, gtx.WithGlobalLock(ss.Context()))
		}
		return handler(srv, ss)
	}
}

// methods is a set of full method names; nil holds every method.
type methods map[string]struct{}

func methodSet(names []string) methods {
	if len(names) == 0 {
		return nil
	}
	s := make(methods, len(names))
	for _, n := range names {
		s[n] = struct{}{}
	}
	return s
}

func (s methods) has(method string) bool {
	if s == nil {
		return true
	}
	_, ok := s[method]
	return ok
}
