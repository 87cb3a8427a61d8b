package mysqllock_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/gtx-io/gtx/lock"
	"github.com/gtx-io/gtx/lock/mysqllock"
)

func dsn() string {
	if d := os.Getenv("GTX_TEST_MYSQL_DSN"); d != "" {
		return d
	}
	return "root@tcp(127.0.0.1:3306)/"
}

func randomHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newDB creates a database unique to the test and drops it at the end.
func newDB(t *testing.T) string {
	t.Helper()
	name := "gtxlock_" + randomHex()
	admin, err := sql.Open("mysql", dsn())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database (is MariaDB running?): %v", err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP DATABASE " + name)
		_ = admin.Close()
	})
	d := dsn()
	base, query, _ := strings.Cut(d, "?")
	base = strings.TrimSuffix(base, "/") + "/" + name
	if query != "" {
		base += "?" + query
	}
	return base
}

func open(t *testing.T, dsn string) (*sql.DB, *mysqllock.Backend) {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	b, err := mysqllock.New(db, mysqllock.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateTable(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db, b
}

func client(t *testing.T, b lock.Backend, cfg lock.Config) *lock.Client {
	t.Helper()
	c, err := lock.New(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func TestBackendTokens(t *testing.T) {
	_, be := open(t, newDB(t))
	ctx := context.Background()
	ttl := 5 * time.Second

	g, err := be.Acquire(ctx, "k", "t1", ttl)
	if err != nil || !g.Acquired || g.Fence != 1 {
		t.Fatalf("first Acquire = %+v, %v", g, err)
	}
	g2, err := be.Acquire(ctx, "k", "t2", ttl)
	if err != nil || g2.Acquired || g2.RetryAfter <= 0 || g2.RetryAfter > ttl {
		t.Fatalf("Acquire of a held lock = %+v, %v; want not acquired with the holder's TTL", g2, err)
	}
	wrong := []struct {
		name string
		call func() error
	}{
		{"renew", func() error { _, err := be.Renew(ctx, "k", "t2", ttl); return err }},
		{"release", func() error { _, err := be.Release(ctx, "k", "t2"); return err }},
	}
	for _, w := range wrong {
		if err := w.call(); !errors.Is(err, lock.ErrNotHeld) {
			t.Errorf("%s by a token that does not hold the lock = %v, want ErrNotHeld", w.name, err)
		}
	}
	if _, err := be.Renew(ctx, "k", "t1", ttl); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Release(ctx, "k", "t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := be.Release(ctx, "k", "t1"); !errors.Is(err, lock.ErrNotHeld) {
		t.Fatalf("second Release = %v, want ErrNotHeld", err)
	}
	g, err = be.Acquire(ctx, "k", "t4", ttl)
	if err != nil || g.Fence != 2 {
		t.Fatalf("Acquire after release = %+v, %v; want fence 2", g, err)
	}
	// An expired holding is free for the next token, with a larger fence.
	g, err = be.Acquire(ctx, "short", "s1", time.Millisecond)
	if err != nil || !g.Acquired {
		t.Fatal(g, err)
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := be.Renew(ctx, "short", "s1", ttl); !errors.Is(err, lock.ErrNotHeld) {
		t.Fatalf("Renew of an expired lock = %v, want ErrNotHeld", err)
	}
	g2, err = be.Acquire(ctx, "short", "s2", ttl)
	if err != nil || !g2.Acquired || g2.Fence <= g.Fence {
		t.Fatalf("Acquire of an expired lock = %+v, %v", g2, err)
	}
}

func TestMutualExclusion(t *testing.T) {
	dsn := newDB(t)
	ctx := context.Background()
	cfg := lock.DefaultConfig()
	cfg.PollInterval = 10 * time.Millisecond
	db, be1 := open(t, dsn)
	_, be2 := open(t, dsn)
	if _, err := db.Exec("CREATE TABLE counter (id INT PRIMARY KEY, n INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO counter VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	clients := []*lock.Client{client(t, be1, cfg), client(t, be2, cfg)}
	const goroutines, rounds = 16, 5
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		fences []int64 // in the order of the holdings
	)
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for range rounds {
				lease, err := clients[g%2].Lock(ctx, "counter")
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				fences = append(fences, lease.Fence())
				mu.Unlock()
				var n int
				if err := db.QueryRow("SELECT n FROM counter WHERE id = 1").Scan(&n); err != nil {
					errs <- err
					return
				}
				if _, err := db.Exec("UPDATE counter SET n = ? WHERE id = 1", n+1); err != nil {
					errs <- err
					return
				}
				if err := lease.Unlock(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow("SELECT n FROM counter WHERE id = 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != goroutines*rounds {
		t.Fatalf("counter = %d, want %d", n, goroutines*rounds)
	}
	// Fencing tokens grow with every holding, across the two clients and
	// across local hand-offs (those with a hand-off number above 0).
	handoffs := 0
	for i, f := range fences {
		if f&(1<<lock.HandoffBits-1) > 0 {
			handoffs++
		}
		if i > 0 && f <= fences[i-1] {
			t.Fatalf("fence %#x of holding %d not above %#x: %#x", f, i, fences[i-1], fences)
		}
	}
	if handoffs == 0 {
		t.Fatalf("no local hand-offs happened: %#x", fences)
	}
}

func TestWatchdogAndLoss(t *testing.T) {
	dsn := newDB(t)
	ctx := context.Background()
	cfg := lock.DefaultConfig()
	cfg.TTL = time.Second
	cfg.PollInterval = 10 * time.Millisecond
	db, be1 := open(t, dsn)
	_, be2 := open(t, dsn)
	a, b := client(t, be1, cfg), client(t, be2, cfg)

	lease, err := a.Lock(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * cfg.TTL)
	for time.Now().Before(deadline) {
		if _, err := b.TryLock(ctx, "w"); !errors.Is(err, lock.ErrNotAcquired) {
			t.Fatalf("TryLock while held = %v, want ErrNotAcquired", err)
		}
		time.Sleep(cfg.TTL / 4)
	}
	if err := lease.Context().Err(); err != nil {
		t.Fatalf("watchdog let the lock go: %v", context.Cause(lease.Context()))
	}
	// Expire the lock behind the holder's back, as a long pause would.
	if _, err := db.Exec("UPDATE gtx_locks SET expires_at = UTC_TIMESTAMP(6) WHERE name = 'w'"); err != nil {
		t.Fatal(err)
	}
	next, err := b.Lock(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if next.Fence() <= lease.Fence() {
		t.Fatalf("fence %d not above the lost holder's %d", next.Fence(), lease.Fence())
	}
	<-lease.Context().Done()
	if cause := context.Cause(lease.Context()); !errors.Is(cause, lock.ErrLockLost) {
		t.Fatalf("lost holder's cause = %v", cause)
	}
	if err := lease.Unlock(ctx); !errors.Is(err, lock.ErrLockLost) {
		t.Fatalf("Unlock of a lost lease = %v, want ErrLockLost", err)
	}
	if err := next.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestNewBadInput(t *testing.T) {
	db, err := sql.Open("mysql", dsn())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tt := range []struct {
		name  string
		db    *sql.DB
		table string
	}{
		{"nil db", nil, ""},
		{"quoted table", db, "locks`; DROP TABLE x"},
		{"table with a dot", db, "a.b"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := mysqllock.New(tt.db, mysqllock.Config{Table: tt.table}); !errors.Is(err, lock.ErrInvalidConfig) {
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
		})
	}
}
