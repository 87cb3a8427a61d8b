package rm

import (
	"context"
	"testing"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// BenchmarkRegisterBranch is the baseline: one unary round trip to the
// in-memory coordinator over loopback gRPC.
func BenchmarkRegisterBranch(b *testing.B) {
	fake := newFakeTC("tc-1")
	m := newManager(b, []tcv1.CoordinatorClient{dial(b, startTC(b, fake).addr)}, nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.RegisterBranch(context.Background(), xid, tcv1.BranchType_TCC, "stock", "", nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBranchCommand measures one phase-2 command: sent by the
// coordinator, dispatched to a handler, answered with its result.
func BenchmarkBranchCommand(b *testing.B) {
	fake := newFakeTC("tc-1")
	h := funcHandler{
		commit:   func(context.Context, Branch) error { return nil },
		rollback: func(context.Context, Branch) error { return nil },
	}
	newManager(b, []tcv1.CoordinatorClient{dial(b, startTC(b, fake).addr)}, nil, func(m *Manager) {
		m.Handle(tcv1.BranchType_TCC, h)
		if err := m.AddResource("stock", tcv1.BranchType_TCC); err != nil {
			b.Fatal(err)
		}
	})
	b.ReportAllocs()
	var id int64
	for b.Loop() {
		id++
		res := fake.send(b, &tcv1.BranchCommand{
			RequestId: id, Action: tcv1.BranchAction_BRANCH_COMMIT, Xid: xid, BranchId: id,
			BranchType: tcv1.BranchType_TCC, ResourceId: "stock",
		})
		if res.GetStatus() != tcv1.BranchStatus_PHASE2_COMMITTED {
			b.Fatal(res)
		}
	}
}
