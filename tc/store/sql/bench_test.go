package sqlstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
)

// BenchmarkCreateUpdate measures the coordinator's hot path for one global
// transaction: CreateGlobal, AddBranch, UpdateGlobal to COMMITTING. "serial"
// is one caller; "parallel" is GOMAXPROCS*16 callers. "batch=1" turns group
// commit off, as the baseline for "batch=64", the default.
func BenchmarkCreateUpdate(b *testing.B) {
	for _, d := range dialects {
		for _, batch := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/batch=%d", d.name, batch), func(b *testing.B) {
				cfg := d.open(b)
				cfg.MaxBatch = batch
				benchCreateUpdate(b, openConfig(b, cfg))
			})
		}
	}
}

// benchCreateUpdate runs BenchmarkCreateUpdate's workload on s.
func benchCreateUpdate(b *testing.B, s *sqlstore.Store) {
	var seq atomic.Int64
	one := func(b *testing.B) {
		xid := fmt.Sprint("bench-", seq.Add(1))
		ctx := b.Context()
		if err := s.CreateGlobal(ctx, &tc.GlobalSession{XID: xid, Name: "bench", Timeout: time.Minute}); err != nil {
			b.Fatal(err)
		}
		if err := s.AddBranch(ctx, &tc.BranchSession{XID: xid, BranchID: 1, Type: tcv1.BranchType_AT, ResourceID: "db", LockKeys: "t:1", Status: tcv1.BranchStatus_PHASE1_DONE}); err != nil {
			b.Fatal(err)
		}
		if err := s.UpdateGlobal(ctx, xid, []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTING}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			one(b)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				one(b)
			}
		})
	})
}

// BenchmarkAcquireRelease measures taking and releasing the 100 row locks of
// one AT branch.
func BenchmarkAcquireRelease(b *testing.B) {
	for _, d := range dialects {
		b.Run(d.name, func(b *testing.B) {
			s := openStore(b, d)
			locks := make([]tc.RowLock, 100)
			for i := range locks {
				locks[i] = tc.RowLock{ResourceID: "db", Table: "orders", PK: fmt.Sprint(i)}
			}
			for b.Loop() {
				if err := s.AcquireLocks(b.Context(), "bench-xid", 1, locks); err != nil {
					b.Fatal(err)
				}
				if err := s.ReleaseBranchLocks(b.Context(), "bench-xid", 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
