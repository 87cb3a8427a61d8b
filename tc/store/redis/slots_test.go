package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx/tc"
	redisstore "github.com/gtx-io/gtx/tc/store/redis"
	"github.com/gtx-io/gtx/tc/store/storetest"
)

// crc16 is the CRC16-CCITT (XMODEM) Redis Cluster hashes keys with.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slot is the Redis Cluster slot of key, honouring its hash tag.
func slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16([]byte(key)) % 16384
}

// slotChecker is a go-redis hook that records every script call whose keys
// span more than one cluster slot: what a Redis Cluster would refuse.
type slotChecker struct {
	mu         sync.Mutex
	violations []string
	scripts    int
}

func (c *slotChecker) check(cmd redis.Cmder) {
	args := cmd.Args()
	name := strings.ToLower(fmt.Sprint(args[0]))
	if name != "eval" && name != "evalsha" || len(args) < 3 {
		return
	}
	n, _ := strconv.Atoi(fmt.Sprint(args[2]))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scripts++
	for i := 4; i < 3+n; i++ {
		if slot(fmt.Sprint(args[i])) != slot(fmt.Sprint(args[3])) {
			c.violations = append(c.violations, fmt.Sprintf("%v and %v", args[3], args[i]))
			return
		}
	}
}

func (c *slotChecker) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *slotChecker) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.check(cmd)
		return next(ctx, cmd)
	}
}

func (c *slotChecker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.check(cmd)
		}
		return next(ctx, cmds)
	}
}

func TestSlotHashing(t *testing.T) {
	// Values from the Redis Cluster specification.
	if got := crc16([]byte("123456789")); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#x, want 0x31c3", got)
	}
	if slot("{user1000}.following") != slot("{user1000}.followers") || slot("foo{}{bar}") != crc16([]byte("foo{}{bar}"))%16384 {
		t.Fatal("hash tags are not honoured")
	}
}

// Every script of both stores, over both conformance suites, touches keys
// of one cluster slot only, so the stores run on a Redis Cluster.
func TestScriptsStayInOneSlot(t *testing.T) {
	checker := &slotChecker{}
	hooked := func(t *testing.T) (*redis.Client, string) {
		rdb, prefix := newClient(t)
		rdb.AddHook(checker)
		return rdb, prefix
	}
	storetest.RunStore(t, func(t *testing.T) tc.Store {
		rdb, prefix := hooked(t)
		s, err := redisstore.NewStore(rdb, redisstore.Config{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
	storetest.RunLockStore(t, func(t *testing.T) tc.LockStore {
		rdb, prefix := hooked(t)
		s, err := redisstore.NewLockStore(rdb, redisstore.Config{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
	t.Run("locks across tables", func(t *testing.T) {
		rdb, prefix := hooked(t)
		s, err := redisstore.NewLockStore(rdb, redisstore.Config{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		acrossTables(t, s)
	})
	checker.mu.Lock()
	defer checker.mu.Unlock()
	if checker.scripts == 0 {
		t.Fatal("no script seen")
	}
	for _, v := range checker.violations {
		t.Errorf("a script spans slots: %s", v)
	}
}

// acrossTables takes locks in several tables and resources in one call: a
// conflict in one table gives back what the call took in the others, but
// not what the transaction held before.
func acrossTables(t *testing.T, s *redisstore.LockStore) {
	ctx := t.Context()
	lock := func(res, table, pk string) tc.RowLock { return tc.RowLock{ResourceID: res, Table: table, PK: pk} }
	holder, other := "across:holder", "across:other"
	if err := s.AcquireLocks(ctx, holder, 1, []tc.RowLock{lock("db2", "items", "9")}); err != nil {
		t.Fatal(err)
	}
	if err := s.AcquireLocks(ctx, other, 2, []tc.RowLock{lock("db1", "orders", "0")}); err != nil {
		t.Fatal(err)
	}
	req := []tc.RowLock{lock("db1", "orders", "0"), lock("db1", "orders", "1"), lock("db1", "lines", "1"), lock("db2", "items", "9"), lock("db3", "x", "1")}
	err := s.AcquireLocks(ctx, other, 2, req)
	var conflict *tc.LockConflictError
	if !errors.As(err, &conflict) || conflict.Lock.XID != holder || conflict.Lock.PK != "9" {
		t.Fatalf("AcquireLocks = %v, want a conflict on items 9 held by %s", err, holder)
	}
	got, err := s.QueryLocks(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"orders/0": other, "items/9": holder}
	if len(got) != len(want) {
		t.Fatalf("held after the conflict: %+v, want only %v", got, want)
	}
	for _, l := range got {
		if want[l.Table+"/"+l.PK] != l.XID {
			t.Errorf("%s/%s held by %s", l.Table, l.PK, l.XID)
		}
	}
	if err := s.ReleaseGlobalLocks(ctx, holder); err != nil {
		t.Fatal(err)
	}
	// A late registration after the global release gives its locks back
	// when refused.
	late := []tc.RowLock{lock("db2", "items", "9"), lock("db4", "late", "1")}
	if err := s.AcquireLocks(ctx, holder, 5, late); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseBranchLocks(ctx, holder, 5); err != nil {
		t.Fatal(err)
	}
	if got, err := s.QueryLocks(ctx, late); err != nil || len(got) != 0 {
		t.Fatalf("late locks after their release: %+v, %v", got, err)
	}
	if err := s.AcquireLocks(ctx, other, 2, req); err != nil {
		t.Fatalf("AcquireLocks after the holder released: %v", err)
	}
	if err := s.ReleaseBranchLocks(ctx, other, 2); err != nil {
		t.Fatal(err)
	}
	if got, err := s.QueryLocks(ctx, req); err != nil || len(got) != 0 {
		t.Fatalf("after the branch's release: %+v, %v", got, err)
	}
}
