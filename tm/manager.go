package tm

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// Manager begins, commits and rolls back global transactions through a
// coordinator. It is safe for concurrent use; one per process is enough.
type Manager struct {
	client tcv1.CoordinatorClient
	cfg    Config
	log    *slog.Logger
}

// New returns a Manager that talks to the coordinator through client.
func New(client tcv1.CoordinatorClient, cfg Config) (*Manager, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil coordinator client", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Manager{client: client, cfg: cfg, log: log.With("component", "gtx.tm")}, nil
}

// Begin asks the coordinator for a new global transaction and returns it.
// It always begins a new transaction, whatever the context carries; the
// WithPropagation option does not apply. The caller must end the
// transaction with Tx.Commit or Tx.Rollback; one left alone is rolled back
// by the coordinator when it times out.
//
// When the answer to Begin is lost, Begin fails; a transaction the
// coordinator may have begun has no branches and times out there.
func (m *Manager) Begin(ctx context.Context, name string, opts ...Option) (*Tx, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty transaction name: give it a name operators recognize", ErrInvalidArgument)
	}
	o, err := m.options(opts)
	if err != nil {
		return nil, err
	}
	return m.begin(ctx, name, o)
}

func (m *Manager) begin(ctx context.Context, name string, o options) (*Tx, error) {
	if h := m.cfg.Hooks.BeforeBegin; h != nil {
		h(ctx, name)
	}
	resp, err := m.client.Begin(ctx, &tcv1.BeginRequest{
		Name:        name,
		TimeoutMs:   milliseconds(o.timeout),
		Application: m.cfg.Application,
		ClientId:    m.cfg.ClientID,
	})
	if err != nil {
		return nil, fmt.Errorf("tm: begin %q: %w", name, rpcError(err))
	}
	if err := gtx.ValidateXID(resp.GetXid()); err != nil {
		return nil, fmt.Errorf("tm: begin %q: the coordinator answered with a malformed xid: %w", name, err)
	}
	tx := &Tx{m: m, xid: resp.GetXid(), name: name, ctx: gtx.ContextWithXID(ctx, resp.GetXid())}
	m.log.DebugContext(ctx, "global transaction begun", "xid", tx.xid, "name", name)
	if h := m.cfg.Hooks.AfterBegin; h != nil {
		h(tx.ctx, tx.xid)
	}
	return tx, nil
}

// Status asks the coordinator for the current status of a global
// transaction. An XID the coordinator does not know gives ErrNotFound.
func (m *Manager) Status(ctx context.Context, xid string) (tcv1.GlobalStatus, error) {
	if err := gtx.ValidateXID(xid); err != nil {
		return tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	resp, err := m.client.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: xid})
	if err != nil {
		return tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED, fmt.Errorf("tm: status of %s: %w", xid, rpcError(err))
	}
	return resp.GetStatus(), nil
}

// milliseconds converts a timeout for the protocol, rounding up so that a
// positive timeout never becomes "the coordinator's default".
func milliseconds(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// definite reports whether a gRPC error says the request was refused, so
// its outcome is known: nothing happened. Every other error may have lost
// the answer to a request that was carried out.
func definite(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.AlreadyExists,
		codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented, codes.OutOfRange:
		return true
	}
	return false
}

// rpcError adds the matching sentinel to an error from the coordinator.
func rpcError(err error) error {
	switch status.Code(err) {
	case codes.NotFound:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case codes.InvalidArgument:
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return err
}
