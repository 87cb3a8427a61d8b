// Package gtxtest holds what gtx's own tests share: a real coordinator on
// SQLite served on loopback (StartTC), an embedded NATS server (StartNATS),
// a hand-written gRPC service that reports the XID its handlers see, and a
// TxRunner that records what it was asked to do.
package gtxtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/tm"
)

// Full method names of the Echo service.
const (
	MethodUnary  = "/gtxtest.Echo/Unary"
	MethodOther  = "/gtxtest.Echo/Other"
	MethodStream = "/gtxtest.Echo/Stream"
)

// Commands a request may carry.
const (
	CmdFail  = "fail"
	CmdPanic = "panic"
)

// ErrHandler is what a handler returns for CmdFail.
var ErrHandler = errors.New("gtxtest: handler failed as asked")

// Describe reports what a handler's context carries: "xid|lock".
func Describe(ctx context.Context) string {
	xid, _ := gtx.XIDFromContext(ctx)
	return xid + "|" + strconv.FormatBool(gtx.GlobalLockFromContext(ctx))
}

// Handle is a handler body: it fails or panics on request and otherwise
// describes ctx.
func Handle(ctx context.Context, cmd string) (string, error) {
	switch cmd {
	case CmdFail:
		return "", ErrHandler
	case CmdPanic:
		panic("gtxtest: handler panicked as asked")
	}
	return Describe(ctx), nil
}

// Echo implements the Echo service and counts handler calls.
type Echo struct {
	// Calls counts the handler calls.
	Calls atomic.Int64
	// Next, when set, is called by the handlers with their context before
	// they answer; its error fails the call.
	Next func(ctx context.Context, cmd string) error
}

// Handle counts the call, calls Next, and runs the package's Handle.
func (e *Echo) Handle(ctx context.Context, cmd string) (string, error) {
	e.Calls.Add(1)
	if e.Next != nil {
		if err := e.Next(ctx, cmd); err != nil {
			return "", err
		}
	}
	return Handle(ctx, cmd)
}

func unaryHandler(method string) func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.StringValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(ctx context.Context, req any) (any, error) {
			s, err := srv.(*Echo).Handle(ctx, req.(*wrapperspb.StringValue).GetValue())
			if err != nil {
				return nil, err
			}
			return wrapperspb.String(s), nil
		}
		if interceptor == nil {
			return h(ctx, in)
		}
		return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: method}, h)
	}
}

func streamHandler(srv any, stream grpc.ServerStream) error {
	e := srv.(*Echo)
	for {
		in := new(wrapperspb.StringValue)
		if err := stream.RecvMsg(in); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		s, err := e.Handle(stream.Context(), in.GetValue())
		if err != nil {
			return err
		}
		if err := stream.SendMsg(wrapperspb.String(s)); err != nil {
			return err
		}
	}
}

// ServiceDesc describes the Echo service for grpc.Server.RegisterService.
var ServiceDesc = grpc.ServiceDesc{
	ServiceName: "gtxtest.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Unary", Handler: unaryHandler(MethodUnary)},
		{MethodName: "Other", Handler: unaryHandler(MethodOther)},
	},
	Streams: []grpc.StreamDesc{
		{StreamName: "Stream", Handler: streamHandler, ServerStreams: true, ClientStreams: true},
	},
}

// StreamDesc describes the Stream method for grpc.ClientConn.NewStream.
var StreamDesc = &grpc.StreamDesc{StreamName: "Stream", ServerStreams: true, ClientStreams: true}

// Call calls method with cmd on cc and returns the answer.
func Call(ctx context.Context, cc grpc.ClientConnInterface, method, cmd string) (string, error) {
	out := new(wrapperspb.StringValue)
	if err := cc.Invoke(ctx, method, wrapperspb.String(cmd), out); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}

// Outcome is how a global transaction the Runner ran ended.
type Outcome string

// Outcomes.
const (
	Committed  Outcome = "committed"
	RolledBack Outcome = "rolled back"
	Joined     Outcome = "joined"
)

// Tx is one call of Runner.WithGlobalTx.
type Tx struct {
	Name    string
	XID     string
	Options int
	Outcome Outcome
}

// Runner is an interceptors.TxRunner that joins the XID in the context or
// begins a transaction with an XID of its own (tm's Required propagation),
// commits on nil, rolls back on an error or a panic (and panics again), and
// records each call. The transport tests use it to see what the annotations
// asked for; the end-to-end test uses tm with the real coordinator.
type Runner struct {
	// CommitErr, when set, is returned by every commit, which then counts as
	// a rollback.
	CommitErr error

	mu  sync.Mutex
	n   int
	txs []Tx
}

// WithGlobalTx implements interceptors.TxRunner.
func (r *Runner) WithGlobalTx(ctx context.Context, name string, fn func(ctx context.Context) error, opts ...tm.Option) error {
	if xid, ok := gtx.XIDFromContext(ctx); ok {
		r.record(Tx{Name: name, XID: xid, Options: len(opts), Outcome: Joined})
		return fn(ctx)
	}
	r.mu.Lock()
	r.n++
	xid := "gtxtest:" + strconv.Itoa(r.n)
	r.mu.Unlock()
	tx := Tx{Name: name, XID: xid, Options: len(opts), Outcome: RolledBack}
	defer func() { r.record(tx) }()
	if err := fn(gtx.ContextWithXID(ctx, xid)); err != nil {
		return fmt.Errorf("gtxtest: %s rolled back: %w", xid, err)
	}
	if r.CommitErr != nil {
		return r.CommitErr
	}
	tx.Outcome = Committed
	return nil
}

func (r *Runner) record(tx Tx) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.txs = append(r.txs, tx)
}

// Txs returns the calls so far.
func (r *Runner) Txs() []Tx {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Tx(nil), r.txs...)
}
