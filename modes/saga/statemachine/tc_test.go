package statemachine_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	sm "github.com/gtx-io/gtx/modes/saga/statemachine"
)

// echoServer is a gRPC service "test.Echo" whose methods take and return a
// google.protobuf.Value: Do echoes, Fail fails. It records the XID and key
// of each call.
type echoServer struct {
	mu    sync.Mutex
	calls []string // method xid key
}

func (s *echoServer) handler(method string) func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
	return func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		in := new(structpb.Value)
		if err := dec(in); err != nil {
			return nil, err
		}
		md, _ := metadata.FromIncomingContext(ctx)
		s.mu.Lock()
		s.calls = append(s.calls, method+" "+first(md[gtx.MetadataKey])+" "+first(md[sm.IdempotencyKeyHeader]))
		s.mu.Unlock()
		if method == "Fail" {
			return nil, status.Error(codes.FailedPrecondition, "refused")
		}
		return in, nil
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func startEcho(t *testing.T) (*echoServer, *grpc.ClientConn) {
	t.Helper()
	s := &echoServer{}
	gs := grpc.NewServer()
	gs.RegisterService(&grpc.ServiceDesc{
		ServiceName: "test.Echo",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "Do", Handler: s.handler("Do")},
			{MethodName: "Undo", Handler: s.handler("Undo")},
			{MethodName: "Fail", Handler: s.handler("Fail")},
		},
	}, s)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	mustOK(t, err)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	mustOK(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return s, cc
}

const grpcJSON = `{
  "Name": "grpc",
  "StartState": "One",
  "States": {
    "One": {"Type": "ServiceTask", "ServiceName": "echo", "ServiceMethod": "Do", "CompensateState": "UndoOne",
            "Input": {"n": "$.n"}, "Output": {"echoed": "$.n"}, "Next": "Two"},
    "UndoOne": {"Type": "ServiceTask", "ServiceName": "echo", "ServiceMethod": "Undo", "IsForCompensation": true},
    "Two": {"Type": "ServiceTask", "ServiceName": "echo", "ServiceMethod": "%s", "Next": "Done"},
    "Done": {"Type": "Succeed"}
  }
}`

// TestCoordinatorReport: with a coordinator, an instance's XID comes from
// Begin, travels to gRPC services with the idempotency key, and the final
// status is reported: COMMITTED on success, ROLLBACKED after compensation.
func TestCoordinatorReport(t *testing.T) {
	tc := gtxtest.StartTC(t)
	tests := []struct {
		second string
		want   tcv1.GlobalStatus
		calls  []string
	}{
		{"Do", tcv1.GlobalStatus_COMMITTED, []string{"Do", "Do"}},
		{"Fail", tcv1.GlobalStatus_ROLLBACKED, []string{"Do", "Fail", "Undo"}},
	}
	for _, tt := range tests {
		t.Run(tt.second, func(t *testing.T) {
			echo, cc := startEcho(t)
			e := newEngine(t, openSQLite(t, sqliteDSN(t)), func(c *sm.Config) { c.Coordinator = tc })
			mustOK(t, e.Register(mustParse(t, sprintf(grpcJSON, tt.second))))
			mustOK(t, e.RegisterService("echo", sm.GRPC(cc, "test.Echo")))
			ctx := ctxTimeout(t)
			mustOK(t, e.Start(ctx))
			inst, err := e.Run(ctx, "grpc", map[string]any{"n": 7})
			if (err == nil) != (tt.want == tcv1.GlobalStatus_COMMITTED) {
				t.Fatalf("Run: %v", err)
			}
			if err != nil {
				var te *sm.FailedError
				if !errors.As(err, &te) || te.Code != "FailedPrecondition" {
					t.Fatalf("Run: %v, want the gRPC code as the failure code", err)
				}
			}
			if inst.Context["echoed"] != float64(7) {
				t.Fatalf("echoed %v, want 7", inst.Context["echoed"])
			}
			st, err := tc.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: inst.XID})
			mustOK(t, err)
			if st.GetStatus() != tt.want {
				t.Fatalf("coordinator status %s, want %s", st.GetStatus(), tt.want)
			}
			echo.mu.Lock()
			defer echo.mu.Unlock()
			if len(echo.calls) != len(tt.calls) {
				t.Fatalf("calls %v, want %v", echo.calls, tt.calls)
			}
			for i, c := range echo.calls {
				want := tt.calls[i] + " " + inst.XID + " " + inst.Executions[i].Key
				if c != want {
					t.Fatalf("call %d: %q, want %q", i, c, want)
				}
			}
		})
	}
}
