package storetest

import (
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// RunCoordinatorInput runs a coordinator (tc.Server, called in process) on
// the stores newStores returns and checks that it answers bad input the
// same on every store: InvalidArgument, or ResourceExhausted for the lock
// key caps, and nothing changed; that input at the limits is kept intact;
// and that a registration retried with its idempotency key, also
// concurrently, makes one branch. newStores is called once and must return
// empty stores; they may be the same value.
func RunCoordinatorInput(t *testing.T, newStores func(t *testing.T) (tc.Store, tc.LockStore)) {
	sessions, locks := newStores(t)
	cfg := tc.DefaultConfig()
	cfg.ServerID = "storetest-input"
	cfg.IDs = seqIDs{}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	// A deployment that runs no XA: XA branches are refused.
	cfg.Limits.BranchTypes = []tcv1.BranchType{tcv1.BranchType_AT, tcv1.BranchType_TCC, tcv1.BranchType_SAGA}
	cfg.Limits.MaxLockKeysPerBranch = 10
	cfg.Limits.MaxLockKeysPerTransaction = 15
	cfg.Limits.MaxLockKeysPerApplication = 20
	cfg.Limits.MaxApplicationData = 1024
	srv, err := tc.NewServer(cfg, sessions, locks)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })

	begin := func(t *testing.T) string {
		t.Helper()
		b, err := srv.Begin(ctx, &tcv1.BeginRequest{Name: "input"})
		if err != nil {
			t.Fatal(err)
		}
		return b.GetXid()
	}
	xid := begin(t)
	register := func(res, keys string) func() error {
		return func() error {
			_, err := srv.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: xid, BranchType: tcv1.BranchType_AT, ResourceId: res, LockKeys: keys})
			return err
		}
	}
	nKeys := func(table string, from, n int) string {
		pks := make([]string, n)
		for i := range pks {
			pks[i] = strconv.Itoa(from + i)
		}
		return table + ":" + strings.Join(pks, ",")
	}
	long := strings.Repeat("x", tc.MaxNameLen+1)
	bad := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"begin timeout overflowing a duration", func() error {
			_, err := srv.Begin(ctx, &tcv1.BeginRequest{TimeoutMs: math.MaxInt64})
			return err
		}, codes.InvalidArgument},
		{"begin timeout over the maximum", func() error {
			_, err := srv.Begin(ctx, &tcv1.BeginRequest{TimeoutMs: cfg.MaxTimeout.Milliseconds() + 1})
			return err
		}, codes.InvalidArgument},
		{"begin negative timeout", func() error {
			_, err := srv.Begin(ctx, &tcv1.BeginRequest{TimeoutMs: -1})
			return err
		}, codes.InvalidArgument},
		{"begin long name", func() error {
			_, err := srv.Begin(ctx, &tcv1.BeginRequest{Name: long})
			return err
		}, codes.InvalidArgument},
		{"begin name with NUL", func() error {
			_, err := srv.Begin(ctx, &tcv1.BeginRequest{Name: "a\x00b"})
			return err
		}, codes.InvalidArgument},
		{"begin application with a newline", func() error {
			_, err := srv.Begin(ctx, &tcv1.BeginRequest{Application: "a\nb"})
			return err
		}, codes.InvalidArgument},
		{"rollback with a 3 MB reason", func() error {
			_, err := srv.Rollback(ctx, &tcv1.RollbackRequest{Xid: xid, Reason: strings.Repeat("r", 3<<20)})
			return err
		}, codes.InvalidArgument},
		{"register XA, which this deployment does not run", func() error {
			_, err := srv.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: xid, BranchType: tcv1.BranchType_XA, ResourceId: "r"})
			return err
		}, codes.InvalidArgument},
		{"register unknown branch type", func() error {
			_, err := srv.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: xid, BranchType: 99, ResourceId: "r"})
			return err
		}, codes.InvalidArgument},
		{"register unspecified branch type", func() error {
			_, err := srv.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: xid, ResourceId: "r"})
			return err
		}, codes.InvalidArgument},
		{"register malformed xid", func() error {
			_, err := srv.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: "a b", BranchType: tcv1.BranchType_AT, ResourceId: "r"})
			return err
		}, codes.InvalidArgument},
		{"register empty resource", register("", ""), codes.InvalidArgument},
		{"register long resource", register(long, ""), codes.InvalidArgument},
		{"register resource with NUL", register("r\x00", ""), codes.InvalidArgument},
		{"register resource with a control character", register("r\x1b[31m", ""), codes.InvalidArgument},
		{"register malformed lock keys", register("r", "no-colon"), codes.InvalidArgument},
		{"register too many lock keys", register("r", nKeys("t", 0, 11)), codes.InvalidArgument},
		{"register lock keys too long to parse", register("r", "t:"+strings.Repeat("1", cfg.Limits.MaxLockKeysLen)), codes.InvalidArgument},
		{"register 100 KB primary key", register("r", "t:"+strings.Repeat("k", 100<<10)), codes.InvalidArgument},
		{"register long table", register("r", strings.Repeat("t", tc.MaxTableLen+1)+":1"), codes.InvalidArgument},
		{"register primary key with NUL", register("r", "t:1\x002"), codes.InvalidArgument},
		{"register primary key with a newline", register("r", "t:1\n2"), codes.InvalidArgument},
		{"register table with a tab", register("r", "t\tx:1"), codes.InvalidArgument},
		{"register too much application data", func() error {
			_, err := srv.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: xid, BranchType: tcv1.BranchType_TCC, ResourceId: "r", ApplicationData: make([]byte, 1025)})
			return err
		}, codes.InvalidArgument},
		{"register long idempotency key", func() error {
			_, err := srv.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: xid, BranchType: tcv1.BranchType_TCC, ResourceId: "r", IdempotencyKey: strings.Repeat("k", tc.MaxIdempotencyKeyLen+1)})
			return err
		}, codes.InvalidArgument},
		{"report branch zero", func() error {
			_, err := srv.ReportBranch(ctx, &tcv1.ReportBranchRequest{Xid: xid, Status: tcv1.BranchStatus_PHASE1_DONE})
			return err
		}, codes.InvalidArgument},
		{"report branch with too much data", func() error {
			_, err := srv.ReportBranch(ctx, &tcv1.ReportBranchRequest{Xid: xid, BranchId: 1, Status: tcv1.BranchStatus_PHASE1_DONE, ApplicationData: make([]byte, 1025)})
			return err
		}, codes.InvalidArgument},
		{"query locks of a resource with NUL", func() error {
			_, err := srv.QueryLocks(ctx, &tcv1.QueryLocksRequest{ResourceId: "r\x00", LockKeys: "t:1"})
			return err
		}, codes.InvalidArgument},
		{"query too many locks", func() error {
			_, err := srv.QueryLocks(ctx, &tcv1.QueryLocksRequest{ResourceId: "r", LockKeys: nKeys("t", 0, 11)})
			return err
		}, codes.InvalidArgument},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if got := status.Code(tt.call()); got != tt.want {
				t.Fatalf("got %v, want %v", tt.call(), tt.want)
			}
		})
	}
	wantUnchanged := func(t *testing.T, xid string, branches int) {
		t.Helper()
		g, err := srv.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: xid})
		if err != nil {
			t.Fatal(err)
		}
		if got := g.GetTransaction(); got.GetStatus() != tcv1.GlobalStatus_BEGIN || len(got.GetBranches()) != branches {
			t.Fatalf("transaction is %v with %d branches, want BEGIN with %d", got.GetStatus(), len(got.GetBranches()), branches)
		}
	}
	t.Run("refused input changed nothing", func(t *testing.T) {
		wantUnchanged(t, xid, 0)
		q, err := srv.QueryLocks(ctx, &tcv1.QueryLocksRequest{ResourceId: "r", LockKeys: nKeys("t", 0, 10)})
		if err != nil || !q.GetLockable() {
			t.Fatalf("QueryLocks = %v, %v; want every key free", q, err)
		}
	})

	t.Run("lock key caps per transaction and application", func(t *testing.T) {
		xid := begin(t)
		reg := func(keys string) error {
			_, err := srv.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: xid, BranchType: tcv1.BranchType_AT, ResourceId: "caps", LockKeys: keys})
			return err
		}
		if err := reg(nKeys("t", 0, 10)); err != nil {
			t.Fatal(err)
		}
		if err := reg(nKeys("t", 10, 6)); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("16th key of one transaction: %v, want ResourceExhausted", err)
		}
		if err := reg(nKeys("t", 10, 5)); err != nil {
			t.Fatalf("15th key of one transaction: %v", err)
		}
		other := begin(t)
		_, err := srv.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: other, BranchType: tcv1.BranchType_AT, ResourceId: "caps", LockKeys: nKeys("u", 0, 10)})
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("21st key of one application: %v, want ResourceExhausted", err)
		}
		wantUnchanged(t, other, 0)
		q, err := srv.QueryLocks(ctx, &tcv1.QueryLocksRequest{ResourceId: "caps", LockKeys: nKeys("u", 0, 10)})
		if err != nil || !q.GetLockable() {
			t.Fatalf("QueryLocks = %v, %v; the refused keys must be free", q, err)
		}
		// Ending the transaction gives its keys back.
		if _, err := srv.Rollback(ctx, &tcv1.RollbackRequest{Xid: xid}); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: other, BranchType: tcv1.BranchType_AT, ResourceId: "caps", LockKeys: nKeys("u", 0, 10)}); err != nil {
			t.Fatalf("after the first transaction ended: %v", err)
		}
	})

	t.Run("input at the limits is kept intact", func(t *testing.T) {
		name := strings.Repeat("é", tc.MaxNameLen/2) // 254 bytes of two-byte characters
		b, err := srv.Begin(ctx, &tcv1.BeginRequest{Name: name, Application: strings.Repeat("a", tc.MaxNameLen), TimeoutMs: cfg.MaxTimeout.Milliseconds()})
		if err != nil {
			t.Fatal(err)
		}
		res := strings.Repeat("ü", tc.MaxNameLen/2)
		keys := strings.Repeat("t", tc.MaxTableLen) + ":" + strings.Repeat("p", tc.MaxPKLen)
		data := make([]byte, 1024)
		if _, err := srv.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: b.GetXid(), BranchType: tcv1.BranchType_TCC, ResourceId: res, LockKeys: keys, ApplicationData: data}); err != nil {
			t.Fatal(err)
		}
		g, err := srv.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: b.GetXid()})
		if err != nil {
			t.Fatal(err)
		}
		tx := g.GetTransaction()
		if tx.GetName() != name || len(tx.GetBranches()) != 1 || tx.GetBranches()[0].GetResourceId() != res ||
			tx.GetBranches()[0].GetLockKeys() != keys || len(tx.GetBranches()[0].GetApplicationData()) != len(data) {
			t.Fatalf("read back %+v", tx)
		}
	})

	t.Run("a registration retried with its key makes one branch", func(t *testing.T) {
		xid := begin(t)
		req := &tcv1.RegisterBranchRequest{Xid: xid, BranchType: tcv1.BranchType_AT, ResourceId: "idem", LockKeys: "t:1,2", IdempotencyKey: "k1"}
		first, err := srv.RegisterBranch(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int64, 4)
		errs := make([]error, 4)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Go(func() {
				r, err := srv.RegisterBranch(ctx, req)
				ids[i], errs[i] = r.GetBranchId(), err
			})
		}
		wg.Wait()
		for i := range ids {
			if errs[i] != nil || ids[i] != first.GetBranchId() {
				t.Fatalf("retry %d = %d, %v; want branch %d", i, ids[i], errs[i], first.GetBranchId())
			}
		}
		wantUnchanged(t, xid, 1)
		q, err := srv.QueryLocks(ctx, &tcv1.QueryLocksRequest{ResourceId: "idem", LockKeys: "t:1,2"})
		if err != nil || q.GetLockable() || len(q.GetHolders()) != 2 {
			t.Fatalf("QueryLocks = %v, %v; the branch must still hold both keys", q, err)
		}
		other := &tcv1.RegisterBranchRequest{Xid: xid, BranchType: tcv1.BranchType_AT, ResourceId: "other", IdempotencyKey: "k1"}
		if _, err := srv.RegisterBranch(ctx, other); status.Code(err) != codes.AlreadyExists {
			t.Fatalf("the key reused by another registration: %v, want AlreadyExists", err)
		}
		// Concurrent first attempts also make one branch.
		req2 := &tcv1.RegisterBranchRequest{Xid: xid, BranchType: tcv1.BranchType_TCC, ResourceId: "idem", IdempotencyKey: "k2"}
		for i := range ids {
			wg.Go(func() {
				r, err := srv.RegisterBranch(ctx, req2)
				ids[i], errs[i] = r.GetBranchId(), err
			})
		}
		wg.Wait()
		for i := range ids {
			if errs[i] != nil || ids[i] != ids[0] {
				t.Fatalf("concurrent attempt %d = %d, %v; want branch %d", i, ids[i], errs[i], ids[0])
			}
		}
		wantUnchanged(t, xid, 2)
		// Once decided, a late retry still answers the branch.
		if _, err := srv.Rollback(ctx, &tcv1.RollbackRequest{Xid: xid}); err != nil {
			t.Fatal(err)
		}
		if r, err := srv.RegisterBranch(ctx, req2); err != nil || r.GetBranchId() != ids[0] {
			t.Fatalf("retry after the decision = %v, %v; want branch %d", r, err, ids[0])
		}
	})
}

// seqIDs hands out IDs unique within the process.
type seqIDs struct{}

func (seqIDs) NextID() (int64, error) { return newBranchID(), nil }
