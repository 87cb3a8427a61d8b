package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// TestIndexRepair plants the stale index entries a crash between two steps
// leaves and checks that the scans ignore and remove them, and re-score
// entries whose score is stale.
func TestIndexRepair(t *testing.T) {
	addr := os.Getenv("GTX_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "gtxtest:repair:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
	})
	s, err := NewStore(rdb, Config{Prefix: prefix, Buckets: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	mk := func(name string, st tcv1.GlobalStatus, next time.Time) string {
		xid := "repair:" + name + ":" + hex.EncodeToString(b[:])
		if err := s.CreateGlobal(ctx, &tc.GlobalSession{XID: xid, Timeout: time.Minute, BeginTime: now.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if st != tcv1.GlobalStatus_BEGIN {
			if err := s.UpdateGlobal(ctx, xid, []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, tc.GlobalUpdate{Status: st, NextAttempt: next}); err != nil {
				t.Fatal(err)
			}
		}
		return xid
	}
	finished := mk("finished", tcv1.GlobalStatus_COMMITTED, time.Time{})
	later := mk("later", tcv1.GlobalStatus_COMMIT_RETRYING, now.Add(time.Hour))
	pending := mk("pending", tcv1.GlobalStatus_ROLLBACKING, time.Time{})
	// Stale entries: a finished session and a missing one in due, a
	// phase-2 session in deadline, and a due session scored too early.
	plant := func(idx, xid string, score float64) {
		if err := rdb.ZAdd(ctx, s.index(idx, s.bucket(xid)), redis.Z{Score: score, Member: xid}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	plant(idxDue, finished, 0)
	plant(idxDue, "repair:gone", 0)
	plant(idxDeadline, pending, 0)
	plant(idxDue, later, 0)

	got, err := s.ClaimDue(ctx, "r1", tcv1.Phase2Statuses(), now, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].XID != pending {
		t.Fatalf("ClaimDue = %v, want only %s", got, pending)
	}
	timedOut, err := s.ListTimedOut(ctx, now, 10)
	if err != nil || len(timedOut) != 0 {
		t.Fatalf("ListTimedOut = %v, %v; want none", timedOut, err)
	}
	tests := []struct {
		idx, xid string
		want     float64 // -1: absent
	}{
		{idxDue, finished, -1},
		{idxDue, "repair:gone", -1},
		{idxDeadline, pending, -1},
		{idxDue, later, float64(micros(now.Add(time.Hour)))},
		{idxDue, pending, 0},
		{idxDone, finished, -2},
	}
	for _, tt := range tests {
		score, err := rdb.ZScore(ctx, s.index(tt.idx, s.bucket(tt.xid)), tt.xid).Result()
		switch {
		case tt.want == -1:
			if err != redis.Nil {
				t.Errorf("%s still in %s (score %v, %v)", tt.xid, tt.idx, score, err)
			}
		case tt.want == -2:
			if err != nil {
				t.Errorf("%s missing from %s: %v", tt.xid, tt.idx, err)
			}
		case err != nil || score != tt.want:
			t.Errorf("%s in %s: score %v, %v; want %v", tt.xid, tt.idx, score, err, tt.want)
		}
	}
}
