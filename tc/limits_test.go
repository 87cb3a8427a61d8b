package tc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// Attach refuses a bad Hello or add_resource, and closes a stream that
// sends no Hello within Limits.HelloTimeout.
func TestAttachBadInput(t *testing.T) {
	e := startEnv(t, func(c *tc.Config) {
		c.Limits.HelloTimeout = 200 * time.Millisecond
		c.Limits.MaxHelloResources = 2
		c.Limits.BranchTypes = []tcv1.BranchType{tcv1.BranchType_AT, tcv1.BranchType_TCC}
	}, "")
	hello := func(h *tcv1.Hello) func(tcv1.Coordinator_AttachClient) error {
		return func(s tcv1.Coordinator_AttachClient) error {
			return s.Send(&tcv1.AttachRequest{Msg: &tcv1.AttachRequest_Hello{Hello: h}})
		}
	}
	res := func(id string, bt tcv1.BranchType) *tcv1.Resource {
		return &tcv1.Resource{ResourceId: id, BranchType: bt}
	}
	tests := []struct {
		name string
		send func(tcv1.Coordinator_AttachClient) error
		want codes.Code
	}{
		{"no hello at all", func(tcv1.Coordinator_AttachClient) error { return nil }, codes.DeadlineExceeded},
		{"result first", func(s tcv1.Coordinator_AttachClient) error {
			return s.Send(&tcv1.AttachRequest{Msg: &tcv1.AttachRequest_Result{Result: &tcv1.BranchResult{}}})
		}, codes.InvalidArgument},
		{"100 KB application", hello(&tcv1.Hello{Application: strings.Repeat("a", 100<<10)}), codes.InvalidArgument},
		{"client_id with NUL", hello(&tcv1.Hello{ClientId: "rm\x00"}), codes.InvalidArgument},
		{"empty resource", hello(&tcv1.Hello{Resources: []*tcv1.Resource{res("", tcv1.BranchType_AT)}}), codes.InvalidArgument},
		{"resource with a newline", hello(&tcv1.Hello{Resources: []*tcv1.Resource{res("db\n", tcv1.BranchType_AT)}}), codes.InvalidArgument},
		{"too many resources", hello(&tcv1.Hello{Resources: []*tcv1.Resource{res("a", 1), res("b", 1), res("c", 1)}}), codes.InvalidArgument},
		{"resource of a branch type not accepted", hello(&tcv1.Hello{Resources: []*tcv1.Resource{res("db", tcv1.BranchType_XA)}}), codes.InvalidArgument},
		{"add_resource with control characters", func(s tcv1.Coordinator_AttachClient) error {
			if err := hello(&tcv1.Hello{ClientId: "rm"})(s); err != nil {
				return err
			}
			if _, err := s.Recv(); err != nil { // welcome
				return err
			}
			return s.Send(&tcv1.AttachRequest{Msg: &tcv1.AttachRequest_AddResource{AddResource: res("db\x07", tcv1.BranchType_AT)}})
		}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := e.Client.Attach(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.send(s); err != nil {
				t.Fatal(err)
			}
			for {
				m, err := s.Recv()
				if err != nil {
					wantCode(t, err, tt.want)
					return
				}
				if m.GetWelcome() == nil {
					t.Fatalf("got %v before the refusal", m)
				}
			}
		})
	}
}

// ListTransactions counts each transaction's branches.
func TestListCountsBranches(t *testing.T) {
	e := startEnv(t, nil, "")
	ctx := context.Background()
	b, err := e.Client.Begin(ctx, &tcv1.BeginRequest{Name: "two"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"r1", "r2"} {
		if _, err := e.Client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: b.GetXid(), BranchType: tcv1.BranchType_TCC, ResourceId: r}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := e.Client.ListTransactions(ctx, &tcv1.ListTransactionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetTransactions()) != 1 || list.GetTransactions()[0].GetBranchCount() != 2 {
		t.Fatalf("list = %v, want one transaction with branch_count 2", list)
	}
}
