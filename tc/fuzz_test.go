package tc_test

import (
	"context"
	"sync"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/tc"
)

// The fuzz targets below send one request type each, built from the
// fuzzer's input, to an in-process coordinator on SQLite (one per target
// and fuzz worker), and after every
// call check that it did not crash and that no invariant broke: a
// transaction never goes back to BEGIN, never changes its decision, and
// never leaves a done status (COMMITTED, ROLLBACKED, TIMEOUT_ROLLBACKED);
// and no lock is held by a transaction that is done or unknown. The seeds
// run with every `go test`; scripts/fuzz runs each target for a few
// seconds.

// fuzzEnv is the coordinator of one fuzz target, with transactions in
// several statuses to aim at.
type fuzzEnv struct {
	e    *gtxtest.TC
	xids []string

	mu   sync.Mutex
	seen map[string]tcv1.GlobalStatus
}

// newFuzzEnv starts a coordinator with no resource manager: phase 2 of a
// transaction with branches stays pending, so every status class stays
// around to be aimed at.
func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	e := gtxtest.NewTC(f, gtxtest.TCOptions{Configure: func(c *tc.Config) {
		c.Limits.MaxLockKeysPerApplication = 1 << 30
		c.Limits.MaxLockKeysPerTransaction = 1 << 20
	}})
	fe := &fuzzEnv{e: e, seen: make(map[string]tcv1.GlobalStatus)}
	ctx := context.Background()
	begin := func(name string, branches int) string {
		b, err := e.Server.Begin(ctx, &tcv1.BeginRequest{Name: name})
		if err != nil {
			f.Fatal(err)
		}
		for i := range branches {
			if _, err := e.Server.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: b.GetXid(), BranchType: tcv1.BranchType_AT,
				ResourceId: "fuzz-db", LockKeys: tcv1.LockKey("t", name, string(rune('a'+i)))}); err != nil {
				f.Fatal(err)
			}
		}
		fe.xids = append(fe.xids, b.GetXid())
		return b.GetXid()
	}
	begin("open", 0)
	begin("open-with-branches", 2)
	if _, err := e.Server.Commit(ctx, &tcv1.CommitRequest{Xid: begin("committed", 0)}); err != nil {
		f.Fatal(err)
	}
	if _, err := e.Server.Rollback(ctx, &tcv1.RollbackRequest{Xid: begin("rolling-back", 1)}); err != nil {
		f.Fatal(err)
	}
	if _, err := e.Server.Commit(ctx, &tcv1.CommitRequest{Xid: begin("committing", 1)}); err != nil {
		f.Fatal(err)
	}
	fe.check(f)
	return fe
}

// xid picks a known XID by pick, or returns raw.
func (fe *fuzzEnv) xid(pick uint8, raw string) string {
	if int(pick) < len(fe.xids) {
		return fe.xids[pick]
	}
	return raw
}

// check fails t when an invariant broke.
func (fe *fuzzEnv) check(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	fe.mu.Lock()
	defer fe.mu.Unlock()
	for _, xid := range fe.xids {
		st, err := fe.e.Server.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: xid})
		if err != nil {
			t.Fatalf("GetStatus(%s): %v", xid, err)
		}
		now, before := st.GetStatus(), fe.seen[xid]
		if before != tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED && !forward(before, now) {
			t.Fatalf("transaction %s went from %v to %v", xid, before, now)
		}
		fe.seen[xid] = now
	}
	holders, err := fe.e.Store.LockHolders(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range holders {
		g, err := fe.e.Store.GetGlobal(ctx, h)
		if err != nil {
			t.Fatalf("transaction %s holds locks and cannot be read: %v", h, err)
		}
		if g.Status.IsDone() {
			t.Fatalf("transaction %s holds locks while it is %v", h, g.Status)
		}
	}
}

// forward reports whether a transaction may move from a to b.
func forward(a, b tcv1.GlobalStatus) bool {
	switch {
	case a == b:
		return true
	case a.IsDone(), b == tcv1.GlobalStatus_BEGIN:
		return false
	case a == tcv1.GlobalStatus_BEGIN:
		return true
	}
	return a.IsCommitDecided() == b.IsCommitDecided() && a.IsRollbackDecided() == b.IsRollbackDecided()
}

func FuzzBegin(f *testing.F) {
	fe := newFuzzEnv(f)
	f.Add("place-order", "", int64(0))
	f.Add("a\x00b", "app\n", int64(-1))
	f.Add("", "", int64(1<<62))
	f.Fuzz(func(t *testing.T, name, app string, timeout int64) {
		_, _ = fe.e.Server.Begin(context.Background(), &tcv1.BeginRequest{Name: name, Application: app, TimeoutMs: timeout})
		fe.check(t)
	})
}

func FuzzCommit(f *testing.F) {
	fe := newFuzzEnv(f)
	for i := range 6 {
		f.Add(uint8(i), "")
	}
	f.Add(uint8(255), "12345")
	f.Add(uint8(255), "bad xid\x00")
	f.Fuzz(func(t *testing.T, pick uint8, raw string) {
		_, _ = fe.e.Server.Commit(context.Background(), &tcv1.CommitRequest{Xid: fe.xid(pick, raw)})
		fe.check(t)
	})
}

func FuzzRollback(f *testing.F) {
	fe := newFuzzEnv(f)
	for i := range 6 {
		f.Add(uint8(i), "", "why")
	}
	f.Add(uint8(255), "1", "\xff\xfe")
	f.Fuzz(func(t *testing.T, pick uint8, raw, reason string) {
		_, _ = fe.e.Server.Rollback(context.Background(), &tcv1.RollbackRequest{Xid: fe.xid(pick, raw), Reason: reason})
		fe.check(t)
	})
}

func FuzzGetStatus(f *testing.F) {
	fe := newFuzzEnv(f)
	f.Add(uint8(0), "")
	f.Add(uint8(255), "::::")
	f.Fuzz(func(t *testing.T, pick uint8, raw string) {
		_, _ = fe.e.Server.GetStatus(context.Background(), &tcv1.GetStatusRequest{Xid: fe.xid(pick, raw)})
		fe.check(t)
	})
}

func FuzzReport(f *testing.F) {
	fe := newFuzzEnv(f)
	for i := range 6 {
		f.Add(uint8(i), "", int32(tcv1.GlobalStatus_COMMITTED))
	}
	f.Add(uint8(0), "", int32(tcv1.GlobalStatus_BEGIN))
	f.Add(uint8(0), "", int32(99))
	f.Fuzz(func(t *testing.T, pick uint8, raw string, st int32) {
		_, _ = fe.e.Server.Report(context.Background(), &tcv1.ReportRequest{Xid: fe.xid(pick, raw), Status: tcv1.GlobalStatus(st)})
		fe.check(t)
	})
}

func FuzzRegisterBranch(f *testing.F) {
	fe := newFuzzEnv(f)
	f.Add(uint8(0), "", int32(tcv1.BranchType_AT), "fuzz-db", "t:1,2;u:3", []byte("data"), false, "")
	f.Add(uint8(1), "", int32(tcv1.BranchType_TCC), "other", "", []byte(nil), true, "key")
	f.Add(uint8(2), "", int32(tcv1.BranchType_XA), "r\x00", "t:1\x00", []byte(nil), false, "k\n")
	f.Add(uint8(255), "777", int32(99), "", "no-colon", []byte(nil), false, "")
	f.Fuzz(func(t *testing.T, pick uint8, raw string, bt int32, res, keys string, data []byte, async bool, key string) {
		_, _ = fe.e.Server.RegisterBranch(context.Background(), &tcv1.RegisterBranchRequest{Xid: fe.xid(pick, raw), BranchType: tcv1.BranchType(bt),
			ResourceId: res, LockKeys: keys, ApplicationData: data, AsyncCommit: async, IdempotencyKey: key})
		fe.check(t)
	})
}

func FuzzReportBranch(f *testing.F) {
	fe := newFuzzEnv(f)
	f.Add(uint8(1), "", int64(1), int32(tcv1.BranchStatus_PHASE1_DONE), []byte("x"))
	f.Add(uint8(1), "", int64(-1), int32(tcv1.BranchStatus_PHASE2_COMMITTED), []byte(nil))
	f.Fuzz(func(t *testing.T, pick uint8, raw string, branch int64, st int32, data []byte) {
		_, _ = fe.e.Server.ReportBranch(context.Background(), &tcv1.ReportBranchRequest{Xid: fe.xid(pick, raw), BranchId: branch, Status: tcv1.BranchStatus(st), ApplicationData: data})
		fe.check(t)
	})
}

func FuzzQueryLocks(f *testing.F) {
	fe := newFuzzEnv(f)
	f.Add("fuzz-db", "t:1", uint8(0), "")
	f.Add("", "", uint8(255), "")
	f.Add("r", "t:1\\;2,3;u:\\", uint8(255), "x y")
	f.Fuzz(func(t *testing.T, res, keys string, pick uint8, raw string) {
		_, _ = fe.e.Server.QueryLocks(context.Background(), &tcv1.QueryLocksRequest{ResourceId: res, LockKeys: keys, Xid: fe.xid(pick, raw)})
		fe.check(t)
	})
}

func FuzzListTransactions(f *testing.F) {
	fe := newFuzzEnv(f)
	f.Add(int32(0), int32(0))
	f.Add(int32(-5), int32(99))
	f.Add(int32(20000), int32(tcv1.GlobalStatus_BEGIN))
	f.Fuzz(func(t *testing.T, limit, st int32) {
		_, _ = fe.e.Server.ListTransactions(context.Background(), &tcv1.ListTransactionsRequest{Limit: limit, Statuses: []tcv1.GlobalStatus{tcv1.GlobalStatus(st)}})
		fe.check(t)
	})
}

func FuzzGetTransaction(f *testing.F) {
	fe := newFuzzEnv(f)
	f.Add(uint8(1), "")
	f.Add(uint8(255), "")
	f.Fuzz(func(t *testing.T, pick uint8, raw string) {
		_, _ = fe.e.Server.GetTransaction(context.Background(), &tcv1.GetTransactionRequest{Xid: fe.xid(pick, raw)})
		fe.check(t)
	})
}

func FuzzRetry(f *testing.F) {
	fe := newFuzzEnv(f)
	for i := range 6 {
		f.Add(uint8(i), "")
	}
	f.Fuzz(func(t *testing.T, pick uint8, raw string) {
		_, _ = fe.e.Server.Retry(context.Background(), &tcv1.RetryRequest{Xid: fe.xid(pick, raw)})
		fe.check(t)
	})
}

// FuzzAttach sends a Hello, then one more message, over the coordinator's
// gRPC Attach stream.
func FuzzAttach(f *testing.F) {
	fe := newFuzzEnv(f)
	f.Add("orders", "rm-1", "fuzz-db", int32(tcv1.BranchType_AT), uint8(1), "fuzz-db2", int64(1))
	f.Add("", "", "", int32(0), uint8(0), "", int64(0))
	f.Add("a\x00", "\n", "r\x1b", int32(99), uint8(2), "x", int64(-1))
	f.Fuzz(func(t *testing.T, app, client, res string, bt int32, next uint8, res2 string, reqID int64) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := fe.e.Client.Attach(ctx)
		if err != nil {
			t.Fatal(err)
		}
		hello := &tcv1.Hello{Application: app, ClientId: client, Resources: []*tcv1.Resource{{ResourceId: res, BranchType: tcv1.BranchType(bt)}}}
		_ = s.Send(&tcv1.AttachRequest{Msg: &tcv1.AttachRequest_Hello{Hello: hello}})
		switch next % 3 {
		case 1:
			_ = s.Send(&tcv1.AttachRequest{Msg: &tcv1.AttachRequest_AddResource{AddResource: &tcv1.Resource{ResourceId: res2, BranchType: tcv1.BranchType(bt)}}})
		case 2:
			_ = s.Send(&tcv1.AttachRequest{Msg: &tcv1.AttachRequest_Result{Result: &tcv1.BranchResult{RequestId: reqID, Message: res2}}})
		}
		_ = s.CloseSend()
		for {
			if _, err := s.Recv(); err != nil {
				break
			}
		}
		fe.check(t)
	})
}
