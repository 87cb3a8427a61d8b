package redisstore_test

import (
	"strconv"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"

	"github.com/gtx-io/gtx/tc"
	redisstore "github.com/gtx-io/gtx/tc/store/redis"
	"github.com/gtx-io/gtx/tc/store/storetest"
)

func TestStoreConformance(t *testing.T) {
	storetest.RunStore(t, func(t *testing.T) tc.Store { return newStore(t, redisstore.Config{}) })
}

func TestCoordinatorInput(t *testing.T) {
	storetest.RunCoordinatorInput(t, func(t *testing.T) (tc.Store, tc.LockStore) {
		rdb, prefix := newClient(t)
		cfg := redisstore.Config{Prefix: prefix}
		s, err := redisstore.NewStore(rdb, cfg)
		if err != nil {
			t.Fatal(err)
		}
		l, err := redisstore.NewLockStore(rdb, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s, l
	})
}

func TestStoreConformanceOneBucket(t *testing.T) {
	storetest.RunStore(t, func(t *testing.T) tc.Store { return newStore(t, redisstore.Config{Buckets: 1}) })
}

func TestCountPhase2(t *testing.T) {
	s := newStore(t, redisstore.Config{Buckets: 3})
	ctx := t.Context()
	count := func(want int) {
		t.Helper()
		if n, err := s.CountPhase2(ctx); err != nil || n != want {
			t.Fatalf("CountPhase2 = %d, %v; want %d", n, err, want)
		}
	}
	count(0)
	var xids []string
	for i := range 4 {
		xid := "count:" + strconv.Itoa(i)
		if err := s.CreateGlobal(ctx, &tc.GlobalSession{XID: xid, Timeout: time.Minute}); err != nil {
			t.Fatal(err)
		}
		xids = append(xids, xid)
	}
	move := func(xid string, from, to tcv1.GlobalStatus) {
		t.Helper()
		if err := s.UpdateGlobal(ctx, xid, []tcv1.GlobalStatus{from}, tc.GlobalUpdate{Status: to}); err != nil {
			t.Fatal(err)
		}
	}
	move(xids[0], tcv1.GlobalStatus_BEGIN, tcv1.GlobalStatus_COMMITTING)
	move(xids[1], tcv1.GlobalStatus_BEGIN, tcv1.GlobalStatus_ROLLBACK_RETRYING)
	move(xids[2], tcv1.GlobalStatus_BEGIN, tcv1.GlobalStatus_COMMITTING)
	count(3)
	move(xids[2], tcv1.GlobalStatus_COMMITTING, tcv1.GlobalStatus_COMMITTED)
	move(xids[1], tcv1.GlobalStatus_ROLLBACK_RETRYING, tcv1.GlobalStatus_ROLLBACK_FAILED)
	count(1)
}
