package idgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/redis/go-redis/v9"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// store is one lease namespace on a real server, fresh for each test.
type store struct {
	// newLeaser returns a new leaser over the namespace for nodes lo..hi, as
	// a separate process would have.
	newLeaser func(lo, hi int64) (Leaser, error)
	// steal makes the store say that node is held by another owner.
	steal func(node int64)
	// drop kills the server side of every connection the leasers use; nil
	// where there is no server (SQLite).
	drop func()
}

type backend struct {
	name string
	open func(t *testing.T) store
}

var backends = []backend{
	{"redis", openRedis},
	{"mariadb", openMariaDB},
	{"postgres", openPostgres},
	{"sqlite", openSQLite},
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func uniqueName(t *testing.T) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "gtx_test_idgen_" + hex.EncodeToString(b[:])
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func openRedis(t *testing.T) store {
	addr := env("GTX_TEST_REDIS_ADDR", "127.0.0.1:6379")
	prefix := uniqueName(t)
	client := redis.NewClient(&redis.Options{Addr: addr, ClientName: prefix})
	admin := redis.NewClient(&redis.Options{Addr: addr})
	ctx := context.Background()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis: %v", err)
	}
	t.Cleanup(func() {
		keys := make([]string, 0, MaxNodeID+1)
		for n := range MaxNodeID + 1 {
			keys = append(keys, fmt.Sprintf("%s:node:%d", prefix, n))
		}
		if err := client.Del(ctx, keys...).Err(); err != nil {
			t.Errorf("redis cleanup: %v", err)
		}
		client.Close()
		admin.Close()
	})
	return store{
		newLeaser: func(lo, hi int64) (Leaser, error) {
			return NewRedisLeaser(client, RedisLeaserConfig{Prefix: prefix, MinNode: lo, MaxNode: hi})
		},
		steal: func(node int64) {
			key := fmt.Sprintf("%s:node:%d", prefix, node)
			if err := client.Set(ctx, key, "thief", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		},
		drop: func() {
			list, err := admin.ClientList(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			killed := 0
			for line := range strings.Lines(list) {
				var id string
				for field := range strings.FieldsSeq(line) {
					if v, ok := strings.CutPrefix(field, "id="); ok {
						id = v
					}
					if field == "name="+prefix {
						if err := admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
							t.Fatal(err)
						}
						killed++
					}
				}
			}
			if killed == 0 {
				t.Fatal("no redis connection to kill")
			}
		},
	}
}

func gormConfig() *gorm.Config {
	return &gorm.Config{Logger: logger.Default.LogMode(logger.Silent)}
}

// sqlStore returns a store over db with a table of its own.
func sqlStore(t *testing.T, db *gorm.DB, table string, drop func()) store {
	return store{
		drop: drop,
		newLeaser: func(lo, hi int64) (Leaser, error) {
			return NewSQLLeaser(context.Background(), db, SQLLeaserConfig{Table: table, MinNode: lo, MaxNode: hi})
		},
		steal: func(node int64) {
			res := db.Exec("UPDATE "+table+" SET owner = ? WHERE node_id = ?", "thief", node)
			if res.Error != nil || res.RowsAffected != 1 {
				t.Fatalf("steal node %d: %v, %d rows", node, res.Error, res.RowsAffected)
			}
		},
	}
}

func openMariaDB(t *testing.T) store {
	dsn := env("GTX_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/")
	admin, err := gorm.Open(mysql.Open(dsn), gormConfig())
	if err != nil {
		t.Fatalf("mariadb: %v", err)
	}
	name := uniqueName(t)
	if err := admin.Exec("CREATE DATABASE " + name).Error; err != nil {
		t.Fatalf("mariadb: %v", err)
	}
	db, err := gorm.Open(mysql.Open(dsn+name), gormConfig())
	if err != nil {
		t.Fatalf("mariadb: %v", err)
	}
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
		if err := admin.Exec("DROP DATABASE " + name).Error; err != nil {
			t.Errorf("mariadb cleanup: %v", err)
		}
		if sqlDB, err := admin.DB(); err == nil {
			sqlDB.Close()
		}
	})
	return sqlStore(t, db, DefaultNodeTable, func() {
		var ids []int64
		if err := admin.Raw("SELECT id FROM information_schema.processlist WHERE db = ?", name).Scan(&ids).Error; err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			t.Fatal("no mariadb connection to kill")
		}
		for _, id := range ids {
			if err := admin.Exec("KILL ?", id).Error; err != nil {
				t.Fatal(err)
			}
		}
	})
}

func openPostgres(t *testing.T) store {
	dsn := env("GTX_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable")
	table := uniqueName(t)
	db, err := gorm.Open(postgres.Open(dsn+" application_name="+table), gormConfig())
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	admin, err := gorm.Open(postgres.Open(dsn), gormConfig())
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(func() {
		if err := admin.Exec("DROP TABLE IF EXISTS " + table).Error; err != nil {
			t.Errorf("postgres cleanup: %v", err)
		}
		for _, d := range []*gorm.DB{db, admin} {
			if sqlDB, err := d.DB(); err == nil {
				sqlDB.Close()
			}
		}
	})
	return sqlStore(t, db, table, func() {
		var killed []bool
		if err := admin.Raw("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ?", table).Scan(&killed).Error; err != nil {
			t.Fatal(err)
		}
		if len(killed) == 0 {
			t.Fatal("no postgres connection to kill")
		}
	})
}

func openSQLite(t *testing.T) store {
	path := filepath.Join(t.TempDir(), "idgen.db")
	db, err := gorm.Open(sqlite.Open("file:"+path+"?_pragma=busy_timeout(10000)"), gormConfig())
	if err != nil {
		t.Fatalf("sqlite: %v", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	t.Cleanup(func() { sqlDB.Close() })
	return sqlStore(t, db, DefaultNodeTable, nil)
}

// leaser is newLeaser for the test goroutine: it fails the test on error.
func (s store) leaser(t *testing.T, lo, hi int64) Leaser {
	t.Helper()
	l, err := s.newLeaser(lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func forEachBackend(t *testing.T, test func(t *testing.T, s store)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b.open(t))
		})
	}
}

// fastLease renews often, so that tests about expiry and loss end soon.
func fastLease(t *testing.T) LeaseConfig {
	return LeaseConfig{TTL: 3 * time.Second, RenewInterval: 100 * time.Millisecond, Logger: testLogger(t)}
}

func acquire(t *testing.T, l Leaser, cfg LeaseConfig) *Lease {
	t.Helper()
	lease, err := Acquire(context.Background(), l, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lease.Close(context.Background()); err != nil {
			t.Errorf("close lease: %v", err)
		}
	})
	return lease
}

// wait blocks until ch is closed, failing the test after a generous bound.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not happen", what)
	}
}

func TestLeaseDistinctNodesAndExhaustion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s store) {
		const lo, hi = 10, 15
		// Every process starts at once: each creates its leaser (the SQL
		// ones race to create the table) and acquires a node.
		leases := make([]*Lease, hi-lo+1)
		var wg sync.WaitGroup
		errs := make([]error, len(leases))
		for i := range leases {
			wg.Go(func() {
				l, err := s.newLeaser(lo, hi)
				if err != nil {
					errs[i] = err
					return
				}
				leases[i], errs[i] = Acquire(context.Background(), l, fastLease(t))
			})
		}
		wg.Wait()
		for _, l := range leases {
			if l != nil {
				t.Cleanup(func() { l.Close(context.Background()) })
			}
		}
		seen := map[int64]bool{}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("leaser %d: %v", i, err)
			}
			l := leases[i]
			if n := l.NodeID(); n < lo || n > hi || seen[n] {
				t.Fatalf("leaser %d got node %d; want a node in %d..%d no other leaser has (have %v)", i, n, lo, hi, seen)
			}
			seen[l.NodeID()] = true
		}

		_, err := Acquire(context.Background(), s.leaser(t, lo, hi), fastLease(t))
		if !errors.Is(err, ErrNoFreeNode) {
			t.Fatalf("Acquire with all nodes held = %v, want ErrNoFreeNode", err)
		}

		freed := leases[2].NodeID()
		if err := leases[2].Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		again := acquire(t, s.leaser(t, lo, hi), fastLease(t))
		if again.NodeID() != freed {
			t.Fatalf("after Close freed node %d, Acquire got %d", freed, again.NodeID())
		}
	})
}

func TestLeaseExpiredIsReclaimable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s store) {
		ctx := context.Background()
		a, b := s.leaser(t, 5, 5), s.leaser(t, 5, 5)
		n, _, err := a.Claim(ctx, "owner-a", time.Second, 0)
		if err != nil || n != 5 {
			t.Fatalf("Claim = %d, %v; want 5", n, err)
		}
		for range 2 {
			if err := a.Renew(ctx, 5, "owner-a", time.Second, 0); err != nil {
				t.Fatalf("Renew by the holder = %v", err)
			}
		}
		if _, _, err := b.Claim(ctx, "owner-b", time.Minute, 0); !errors.Is(err, ErrNoFreeNode) {
			t.Fatalf("Claim of a held node = %v, want ErrNoFreeNode", err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			n, _, err := b.Claim(ctx, "owner-b", time.Minute, 0)
			if err == nil {
				if n != 5 {
					t.Fatalf("Claim after expiry = %d, want 5", n)
				}
				break
			}
			if !errors.Is(err, ErrNoFreeNode) || time.Now().After(deadline) {
				t.Fatalf("Claim after expiry = %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := a.Renew(ctx, 5, "owner-a", time.Minute, 0); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("Renew by the former holder = %v, want ErrLeaseLost", err)
		}
		if err := a.Release(ctx, 5, "owner-a", 0); err != nil {
			t.Fatalf("Release by the former holder = %v", err)
		}
		if _, _, err := a.Claim(ctx, "owner-c", time.Minute, 0); !errors.Is(err, ErrNoFreeNode) {
			t.Fatalf("Claim after a former holder's Release = %v, want ErrNoFreeNode", err)
		}
		if err := b.Release(ctx, 5, "owner-b", 0); err != nil {
			t.Fatal(err)
		}
		if n, _, err := a.Claim(ctx, "owner-c", time.Minute, 0); err != nil || n != 5 {
			t.Fatalf("Claim after the holder's Release = %d, %v; want 5", n, err)
		}
	})
}

// countingLeaser counts renewals and fails them on demand, as an unreachable
// store would.
type countingLeaser struct {
	Leaser
	renewals atomic.Int64
	fail     atomic.Bool
}

func (c *countingLeaser) Renew(ctx context.Context, node int64, owner string, ttl time.Duration, high int64) error {
	if c.fail.Load() {
		return errors.New("store unreachable")
	}
	if err := c.Leaser.Renew(ctx, node, owner, ttl, high); err != nil {
		return err
	}
	c.renewals.Add(1)
	return nil
}

func TestLeaseRenewsAndStopsWhenUnrenewed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s store) {
		cl := &countingLeaser{Leaser: s.leaser(t, 0, MaxNodeID)}
		cfg := fastLease(t)
		cfg.TTL = time.Second
		lease := acquire(t, cl, cfg)
		gcfg := DefaultConfig()
		gcfg.MaxBorrow = 10 * time.Millisecond
		g, err := NewLeased(gcfg, lease)
		if err != nil {
			t.Fatal(err)
		}
		for cl.renewals.Load() < 3 {
			if lease.Err() != nil {
				t.Fatalf("lease ended while renewals succeed: %v", lease.Err())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := g.NextID(); err != nil {
			t.Fatalf("NextID on a renewed lease = %v", err)
		}

		cl.fail.Store(true)
		wait(t, lease.Done(), "expiry of an unrenewed lease")
		if _, err := g.NextID(); !errors.Is(err, ErrLeaseLost) || !strings.Contains(err.Error(), "not renewed") {
			t.Fatalf("NextID after the lease expired = %v, want ErrLeaseLost (not renewed)", err)
		}
		if err := lease.Err(); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("Err() = %v, want ErrLeaseLost", err)
		}
	})
}

// TestLeaseSurvivesDroppedConnections kills the leaser's connections on the
// server: renewals go on over new ones and the lease is kept.
func TestLeaseSurvivesDroppedConnections(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s store) {
		if s.drop == nil {
			t.Skip("no server connections to drop")
		}
		cl := &countingLeaser{Leaser: s.leaser(t, 0, MaxNodeID)}
		lease := acquire(t, cl, fastLease(t))
		g, err := NewLeased(DefaultConfig(), lease)
		if err != nil {
			t.Fatal(err)
		}
		waitRenewals := func(n int64) {
			t.Helper()
			for cl.renewals.Load() < n {
				if err := lease.Err(); err != nil {
					t.Fatalf("lease ended: %v", err)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		waitRenewals(1)
		for range 3 {
			s.drop()
			waitRenewals(cl.renewals.Load() + 2)
		}
		if _, err := g.NextID(); err != nil {
			t.Fatalf("NextID after dropped connections = %v", err)
		}
	})
}

func TestLeaseLostStopsGenerator(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s store) {
		lease := acquire(t, s.leaser(t, 0, MaxNodeID), fastLease(t))
		g, err := NewLeased(DefaultConfig(), lease)
		if err != nil {
			t.Fatal(err)
		}
		if g.NodeID() != lease.NodeID() {
			t.Fatalf("generator node %d, lease node %d", g.NodeID(), lease.NodeID())
		}
		if _, err := g.NextString(); err != nil {
			t.Fatal(err)
		}
		s.steal(lease.NodeID())
		wait(t, lease.Done(), "loss of a stolen lease")
		if _, err := g.NextID(); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("NextID after the lease was stolen = %v, want ErrLeaseLost", err)
		}
		if _, err := g.NextString(); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("NextString after the lease was stolen = %v, want ErrLeaseLost", err)
		}
		defer func() {
			if err, _ := recover().(error); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("Next after the lease was stolen panicked with %v, want ErrLeaseLost", err)
			}
		}()
		g.Next()
	})
}

func TestLeaseCloseStopsGeneratorAndReleases(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s store) {
		ctx := context.Background()
		lease, err := Acquire(ctx, s.leaser(t, 3, 3), fastLease(t))
		if err != nil {
			t.Fatal(err)
		}
		g, err := NewLeased(DefaultConfig(), lease)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewLeased(DefaultConfig(), lease); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("a second generator on one lease: %v, want ErrInvalidConfig", err)
		}
		// A burst borrows time ahead of the clock; Close must not free the
		// node before the clock has passed the last ID's millisecond.
		var last int64
		for range 300_000 {
			last = g.Next()
		}
		if err := lease.Close(ctx); err != nil {
			t.Fatal(err)
		}
		p, err := Parse(last, g.Epoch())
		if err != nil {
			t.Fatal(err)
		}
		if released := time.Now(); !p.Time.Before(released.Truncate(time.Millisecond)) {
			t.Fatalf("Close released the node at %s, not after the last id's millisecond %s", released, p.Time)
		}
		if err := lease.Close(ctx); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		if _, err := g.NextID(); !errors.Is(err, ErrLeaseClosed) {
			t.Fatalf("NextID after Close = %v, want ErrLeaseClosed", err)
		}
		again := acquire(t, s.leaser(t, 3, 3), fastLease(t))
		if again.NodeID() != 3 {
			t.Fatalf("Acquire after Close got node %d, want 3", again.NodeID())
		}
	})
}

func TestNewLeasedRejects(t *testing.T) {
	if _, err := NewLeased(DefaultConfig(), nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewLeased(nil) = %v, want ErrInvalidConfig", err)
	}
	lease := acquire(t, openRedis(t).leaser(t, 0, MaxNodeID), fastLease(t))
	cfg := DefaultConfig()
	cfg.NodeID = 7
	if _, err := NewLeased(cfg, lease); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewLeased with NodeID set = %v, want ErrInvalidConfig", err)
	}
	cfg = DefaultConfig()
	cfg.MaxBorrow = lease.cfg.TTL / 10
	if _, err := NewLeased(cfg, lease); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewLeased with MaxBorrow >= TTL/10 = %v, want ErrInvalidConfig", err)
	}
	if _, err := NewLeased(DefaultConfig(), lease); err != nil {
		t.Fatalf("NewLeased after rejected configs = %v, want the lease still free to bind", err)
	}
}

func TestLeaseConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  LeaseConfig
		ok   bool
	}{
		{"default", DefaultLeaseConfig(), true},
		{"short ttl", LeaseConfig{TTL: 50 * time.Millisecond, RenewInterval: 10 * time.Millisecond}, false},
		{"renew too rare", LeaseConfig{TTL: time.Second, RenewInterval: 600 * time.Millisecond}, false},
		{"no renew interval", LeaseConfig{TTL: time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestLeaserConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"redis default", DefaultRedisLeaserConfig().Validate()},
		{"sql default", DefaultSQLLeaserConfig().Validate()},
	}
	for _, tt := range tests {
		if tt.err != nil {
			t.Errorf("%s: %v", tt.name, tt.err)
		}
	}
	bad := []struct {
		name string
		err  error
	}{
		{"redis empty prefix", RedisLeaserConfig{MaxNode: 1}.Validate()},
		{"redis reversed range", RedisLeaserConfig{Prefix: "p", MinNode: 5, MaxNode: 4}.Validate()},
		{"redis range too high", RedisLeaserConfig{Prefix: "p", MaxNode: MaxNodeID + 1}.Validate()},
		{"sql negative range", SQLLeaserConfig{Table: "t", MinNode: -1, MaxNode: 4}.Validate()},
		{"sql bad table", SQLLeaserConfig{Table: "t; DROP TABLE x", MaxNode: 4}.Validate()},
		{"sql empty table", SQLLeaserConfig{MaxNode: 4}.Validate()},
	}
	for _, tt := range bad {
		if !errors.Is(tt.err, ErrInvalidConfig) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidConfig", tt.name, tt.err)
		}
	}
	if _, err := NewRedisLeaser(nil, DefaultRedisLeaserConfig()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewRedisLeaser(nil) = %v, want ErrInvalidConfig", err)
	}
	if _, err := NewSQLLeaser(context.Background(), nil, DefaultSQLLeaserConfig()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewSQLLeaser(nil) = %v, want ErrInvalidConfig", err)
	}
	if _, err := Acquire(context.Background(), nil, DefaultLeaseConfig()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Acquire(nil) = %v, want ErrInvalidConfig", err)
	}
}

// TestNewHolderStartsAboveHighMark gives a node to a generator whose clock
// runs 5 s ahead, then to one on the real clock: the second starts above
// every ID of the first instead of repeating them, borrowing ahead, and
// once it would have to wait longer than MaxWait it fails with
// ErrClockBehind rather than block.
func TestNewHolderStartsAboveHighMark(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s store) {
		ctx := context.Background()
		ahead := func() time.Time { return time.Now().Add(5 * time.Second) }
		cfg := DefaultConfig()
		cfg.MaxBorrow = 0
		la := acquire(t, s.leaser(t, 7, 7), fastLease(t))
		acfg := cfg
		acfg.Clock = ahead
		ga, err := NewLeased(acfg, la)
		if err != nil {
			t.Fatal(err)
		}
		var lastA int64
		for range 100 {
			if lastA, err = ga.NextID(); err != nil {
				t.Fatal(err)
			}
		}
		if err := la.Close(ctx); err != nil {
			t.Fatal(err)
		}

		lb := acquire(t, s.leaser(t, 7, 7), fastLease(t))
		t.Cleanup(func() { _ = lb.Close(ctx) })
		gb, err := NewLeased(cfg, lb)
		if err != nil {
			t.Fatal(err)
		}
		var failed error
		for range MaxSeq + 1 {
			id, err := gb.NextID()
			if err != nil {
				failed = err
				break
			}
			if id <= lastA {
				t.Fatalf("the node's new holder made id %d, not above the previous holder's last %d", id, lastA)
			}
		}
		if !errors.Is(failed, ErrClockBehind) {
			t.Fatalf("NextID 5 s behind the node's high mark = %v, want ErrClockBehind once the millisecond is used up", failed)
		}
	})
}
