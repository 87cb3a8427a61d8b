package optimistic_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gtx-io/gtx/lock/optimistic"
)

type Account struct {
	ID      int64
	Balance int64
	Version int64
}

type NoVersion struct {
	ID   int64
	Name string
}

func dsn() string {
	if d := os.Getenv("GTX_TEST_MYSQL_DSN"); d != "" {
		return d
	}
	return "root@tcp(127.0.0.1:3306)/"
}

// openDB creates a database of its own with the tables of the tests, and
// returns a function that drops it.
func openDB() (*gorm.DB, func(), error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "gtxopt_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("mysql", dsn())
	if err != nil {
		return nil, nil, err
	}
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		_ = admin.Close()
		return nil, nil, fmt.Errorf("create database (is MariaDB running?): %w", err)
	}
	base, query, _ := strings.Cut(dsn(), "?")
	d := strings.TrimSuffix(base, "/") + "/" + name
	if query != "" {
		d += "?" + query
	}
	db, err := gorm.Open(mysql.Open(d), &gorm.Config{Logger: logger.Discard})
	drop := func() {
		if db != nil {
			if s, err := db.DB(); err == nil {
				_ = s.Close()
			}
		}
		_, _ = admin.Exec("DROP DATABASE " + name)
		_ = admin.Close()
	}
	if err == nil {
		err = db.AutoMigrate(&Account{}, &NoVersion{})
	}
	if err != nil {
		drop()
		return nil, nil, err
	}
	return db, drop, nil
}

func newDB(t *testing.T) *gorm.DB {
	t.Helper()
	db, drop, err := openDB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	return db
}

func TestUpdate(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	a := Account{Balance: 100}
	if err := db.Create(&a).Error; err != nil {
		t.Fatal(err)
	}
	stale := a
	if err := optimistic.Update(ctx, db, &a, map[string]any{"balance": 150}); err != nil {
		t.Fatal(err)
	}
	if a.Version != 1 {
		t.Fatalf("model version = %d, want 1", a.Version)
	}
	err := optimistic.Update(ctx, db, &stale, map[string]any{"balance": 999})
	var sv *optimistic.StaleVersionError
	if !errors.Is(err, optimistic.ErrStaleVersion) || !errors.As(err, &sv) || sv.Version != 0 || sv.Table != "accounts" {
		t.Fatalf("Update with a stale version = %v, want *StaleVersionError for version 0", err)
	}
	var got Account
	if err := db.First(&got, a.ID).Error; err != nil {
		t.Fatal(err)
	}
	if got.Balance != 150 || got.Version != 1 {
		t.Fatalf("row = %+v, want balance 150 version 1", got)
	}
	gone := Account{ID: a.ID + 1000, Version: 0}
	if err := optimistic.Update(ctx, db, &gone, map[string]any{"balance": 1}); !errors.Is(err, optimistic.ErrStaleVersion) {
		t.Fatalf("Update of a missing row = %v, want ErrStaleVersion", err)
	}
}

func TestConcurrentIncrementsWithRetry(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	a := Account{}
	if err := db.Create(&a).Error; err != nil {
		t.Fatal(err)
	}
	const writers, rounds = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			for range rounds {
				err := optimistic.Retry(ctx, 1000, func(ctx context.Context) error {
					var cur Account
					if err := db.WithContext(ctx).First(&cur, a.ID).Error; err != nil {
						return err
					}
					return optimistic.Update(ctx, db, &cur, map[string]any{"balance": cur.Balance + 1})
				})
				if err != nil {
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
	var got Account
	if err := db.First(&got, a.ID).Error; err != nil {
		t.Fatal(err)
	}
	if got.Balance != writers*rounds || got.Version != writers*rounds {
		t.Fatalf("row = %+v, want balance and version %d", got, writers*rounds)
	}
}

func TestUpdateBadInput(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		model   any
		updates map[string]any
	}{
		{"not a pointer", Account{ID: 1}, map[string]any{"balance": 1}},
		{"nil pointer", (*Account)(nil), map[string]any{"balance": 1}},
		{"no version field", &NoVersion{ID: 1}, map[string]any{"name": "x"}},
		{"zero primary key", &Account{}, map[string]any{"balance": 1}},
		{"no updates", &Account{ID: 1}, nil},
		{"sets the version", &Account{ID: 1}, map[string]any{"version": 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := optimistic.Update(ctx, db, tt.model, tt.updates); !errors.Is(err, optimistic.ErrInvalidInput) {
				t.Fatalf("Update = %v, want ErrInvalidInput", err)
			}
		})
	}
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	stale := &optimistic.StaleVersionError{Table: "t", Version: 1}
	other := errors.New("boom")
	tests := []struct {
		name      string
		attempts  int
		results   []error
		wantCalls int
		want      error
	}{
		{"succeeds after stale", 5, []error{stale, stale, nil}, 3, nil},
		{"stops on another error", 5, []error{stale, other}, 2, other},
		{"gives up", 3, []error{stale, stale, stale, nil}, 3, optimistic.ErrStaleVersion},
		{"zero attempts", 0, nil, 0, optimistic.ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := optimistic.Retry(ctx, tt.attempts, func(context.Context) error {
				calls++
				return tt.results[calls-1]
			})
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) || calls != tt.wantCalls {
				t.Fatalf("Retry = %v after %d calls, want %v after %d", err, calls, tt.want, tt.wantCalls)
			}
		})
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := optimistic.Retry(cctx, 3, func(context.Context) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Retry with a cancelled context = %v", err)
	}
}
