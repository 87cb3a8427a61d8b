package interceptors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gtx-io/gtx/tm"
)

// ErrInvalidAnnotation is matched by the errors of NewGlobalTx: a nil
// TxRunner, a negative timeout, an unknown propagation or an empty
// operation name.
var ErrInvalidAnnotation = errors.New("interceptors: invalid global transaction annotation")

// ErrGlobalTxFailed is matched by a *TxError.
var ErrGlobalTxFailed = errors.New("interceptors: global transaction failed")

// TxError says that a handler did not fail, or never ran, but its global
// transaction did: it could not be begun or joined, or it did not commit.
// Transports answer it as a conflict (gRPC Aborted, HTTP 409), or as a
// failed precondition when the propagation forbade the call (tm.Never,
// tm.Mandatory). It matches ErrGlobalTxFailed and unwraps to the tm error.
type TxError struct {
	// Name is the global transaction's name.
	Name string
	// Err is what tm.Manager.WithGlobalTx returned.
	Err error
}

func (e *TxError) Error() string {
	return fmt.Sprintf("interceptors: global transaction %q failed: %v", e.Name, e.Err)
}

// Unwrap returns the tm error.
func (e *TxError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrGlobalTxFailed) true.
func (e *TxError) Is(target error) bool { return target == ErrGlobalTxFailed }

// TxRunner runs fn inside a global transaction. *tm.Manager is one.
type TxRunner interface {
	WithGlobalTx(ctx context.Context, name string, fn func(ctx context.Context) error, opts ...tm.Option) error
}

// GlobalTx is a handler annotation, the Go form of Seata's
// @GlobalTransactional: the handlers it is attached to run inside a global
// transaction that commits when they succeed and rolls back when they fail or
// panic. Build one with NewGlobalTx and attach it with a transport package.
// A GlobalTx is immutable and safe for concurrent use.
type GlobalTx struct {
	runner      TxRunner
	name        string
	timeout     time.Duration
	propagation tm.Propagation
	operations  map[string]struct{}
	logger      *slog.Logger
}

// TxOption configures a GlobalTx.
type TxOption func(*GlobalTx) error

// Name sets the global transaction's name. The default is the name of the
// operation the handler serves (the gRPC full method, the kratos operation,
// the HTTP route pattern, the NATS subject).
func Name(name string) TxOption {
	return func(g *GlobalTx) error {
		if name == "" {
			return fmt.Errorf("%w: empty name, leave Name out to use the operation's name", ErrInvalidAnnotation)
		}
		g.name = name
		return nil
	}
}

// Timeout sets the global transaction's timeout; zero keeps the default of
// the tm.Manager. It applies when a transaction is begun, not joined.
func Timeout(d time.Duration) TxOption {
	return func(g *GlobalTx) error {
		if d < 0 {
			return fmt.Errorf("%w: timeout %v is negative", ErrInvalidAnnotation, d)
		}
		g.timeout = d
		return nil
	}
}

// Propagation sets how a call that already carries a global transaction is
// treated; the default is tm.Required, which joins it.
func Propagation(p tm.Propagation) TxOption {
	return func(g *GlobalTx) error {
		if p < tm.Required || p > tm.Mandatory {
			return fmt.Errorf("%w: unknown propagation %v", ErrInvalidAnnotation, p)
		}
		g.propagation = p
		return nil
	}
}

// Operations limits the annotation to the named operations: gRPC full
// method names ("/pkg.Service/Method"), kratos operations, HTTP route
// patterns or NATS subjects, matched exactly. Without it the annotation
// applies to every handler it wraps.
func Operations(ops ...string) TxOption {
	return func(g *GlobalTx) error {
		if len(ops) == 0 {
			return fmt.Errorf("%w: Operations needs at least one operation", ErrInvalidAnnotation)
		}
		if g.operations == nil {
			g.operations = make(map[string]struct{}, len(ops))
		}
		for _, op := range ops {
			if op == "" {
				return fmt.Errorf("%w: empty operation name", ErrInvalidAnnotation)
			}
			g.operations[op] = struct{}{}
		}
		return nil
	}
}

// Logger sets the logger that records the rollbacks the annotation makes
// after a handler error (name, operation and error, never the request). The
// default is slog.Default().
func Logger(l *slog.Logger) TxOption {
	return func(g *GlobalTx) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger, leave Logger out to use slog.Default()", ErrInvalidAnnotation)
		}
		g.logger = l
		return nil
	}
}

// NewGlobalTx returns an annotation that runs handlers through r, normally a
// *tm.Manager. Bad options return an error matching ErrInvalidAnnotation.
func NewGlobalTx(r TxRunner, opts ...TxOption) (*GlobalTx, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil TxRunner, pass the *tm.Manager", ErrInvalidAnnotation)
	}
	g := &GlobalTx{runner: r, logger: slog.Default()}
	for _, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidAnnotation)
		}
		if err := opt(g); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Applies reports whether the annotation applies to operation.
func (g *GlobalTx) Applies(operation string) bool {
	if g.operations == nil {
		return true
	}
	_, ok := g.operations[operation]
	return ok
}

// Run runs fn, the handler of operation, inside the global transaction: it
// joins the one ctx carries or begins one, per the propagation; it commits
// when fn returns nil and rolls back when fn returns an error or panics (the
// panic goes on after the rollback). When fn fails, Run returns fn's error
// as it is, so the transport answers it unchanged, and logs the rollback
// (with its own failure, if any: the coordinator then rolls the transaction
// back when it times out). When fn succeeds or never runs and the
// transaction fails, Run returns a *TxError.
func (g *GlobalTx) Run(ctx context.Context, operation string, fn func(ctx context.Context) error) error {
	name := g.name
	if name == "" {
		name = operation
	}
	opts := make([]tm.Option, 0, 2)
	if g.timeout > 0 {
		opts = append(opts, tm.Timeout(g.timeout))
	}
	if g.propagation != tm.Required {
		opts = append(opts, tm.WithPropagation(g.propagation))
	}
	var handlerErr error
	err := g.runner.WithGlobalTx(ctx, name, func(ctx context.Context) error {
		handlerErr = fn(ctx)
		return handlerErr
	}, opts...)
	switch {
	case err == nil:
		return nil
	case handlerErr == nil:
		return &TxError{Name: name, Err: err}
	case err != handlerErr:
		g.logger.InfoContext(ctx, "interceptors: handler failed, global transaction rolled back", "name", name, "operation", operation, "error", err)
	}
	return handlerErr
}

// Precondition reports whether err is a *TxError caused by the propagation
// refusing the call: tm.Never with a transaction in progress, or
// tm.Mandatory without one. Transports answer it as a failed precondition
// rather than a conflict.
func Precondition(err error) bool {
	var te *TxError
	return errors.As(err, &te) && (errors.Is(te.Err, tm.ErrTransactionExists) || errors.Is(te.Err, tm.ErrNoTransaction))
}
