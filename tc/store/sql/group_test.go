package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// holdLane occupies s's only write lane (SQLite has one) until the returned
// function is called, so that the writes started meanwhile queue.
func holdLane(t *testing.T, s *Store) (release func()) {
	t.Helper()
	entered, leave := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.writes.do(context.Background(), false, func(*gorm.DB) error {
			close(entered)
			<-leave
			return nil
		})
	}()
	<-entered
	return func() {
		close(leave)
		if err := <-done; err != nil {
			t.Errorf("the write holding the lane: %v", err)
		}
	}
}

// waitQueued waits until n writes wait in s's queue.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.writes.mu.Lock()
		queued := len(s.writes.queue)
		s.writes.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued after 10s, want %d", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupCommitSharesTransaction queues writes behind a busy lane and
// checks that they run in one transaction, that a refusal and a failure in
// that batch reach only their own callers, and that every other write
// commits.
func TestGroupCommitSharesTransaction(t *testing.T) {
	s := openSQLite(t, Config{})
	ctx := t.Context()
	const n = 12
	const refused, failing = 4, 7
	errRefused := errors.New("refused")

	release := holdLane(t, s)
	var (
		first = make([]gorm.ConnPool, n)
		errs  = make([]error, n)
		wg    sync.WaitGroup
	)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.writes.do(ctx, true, func(db *gorm.DB) error {
				if first[i] == nil {
					first[i] = db.Statement.ConnPool
				}
				switch i {
				case refused:
					return refuse(errRefused)
				case failing:
					if err := db.Create(&globalRow{XID: fmt.Sprint("xid-", i)}).Error; err != nil {
						return err
					}
					return errInjected
				}
				return db.Create(&globalRow{XID: fmt.Sprint("xid-", i)}).Error
			})
		})
		waitQueued(t, s, i+1)
	}
	release()
	wg.Wait()

	for i, err := range errs {
		var want error
		switch i {
		case refused:
			want = errRefused
		case failing:
			want = errInjected
		}
		if !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("write %d: %v, want %v", i, err, want)
		}
	}
	// The writes up to the failure ran first in one shared transaction,
	// which the failure rolled back; then every write ran alone.
	tx, ok := first[0].(*sql.Tx)
	if !ok {
		t.Fatalf("the first queued write ran on a %T, want a shared *sql.Tx", first[0])
	}
	for i := range failing + 1 {
		if first[i] != gorm.ConnPool(tx) {
			t.Errorf("write %d first ran on %T %p, not in the batch's transaction %p", i, first[i], first[i], tx)
		}
	}
	for i := range n {
		_, err := s.GetGlobal(ctx, fmt.Sprint("xid-", i))
		stored := err == nil
		if want := i != refused && i != failing; stored != want {
			t.Errorf("xid-%d stored: %v, want %v (GetGlobal: %v)", i, stored, want, err)
		}
	}
}

// TestGroupCommitRefusalKeepsBatch checks that refusals from the store's
// own methods (a status conflict, a lock held by another transaction) do
// not roll back the writes that share their batch.
func TestGroupCommitRefusalKeepsBatch(t *testing.T) {
	s := openSQLite(t, Config{})
	ctx := t.Context()
	for _, xid := range []string{"holder", "done"} {
		if err := s.CreateGlobal(ctx, &tc.GlobalSession{XID: xid, Timeout: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	lock := []tc.RowLock{{ResourceID: "db", Table: "stock", PK: "1"}}
	if err := s.AcquireLocks(ctx, "holder", 1, lock); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateGlobal(ctx, "done", []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTED}); err != nil {
		t.Fatal(err)
	}

	release := holdLane(t, s)
	var wg sync.WaitGroup
	var createErr, lockErr, updateErr error
	wg.Go(func() { createErr = s.CreateGlobal(ctx, &tc.GlobalSession{XID: "new", Timeout: time.Minute}) })
	waitQueued(t, s, 1)
	wg.Go(func() { lockErr = s.AcquireLocks(ctx, "new", 2, lock) })
	waitQueued(t, s, 2)
	wg.Go(func() {
		updateErr = s.UpdateGlobal(ctx, "done", []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, tc.GlobalUpdate{Status: tcv1.GlobalStatus_ROLLBACKING})
	})
	waitQueued(t, s, 3)
	release()
	wg.Wait()

	var conflict *tc.LockConflictError
	var status *tc.StatusError
	switch {
	case createErr != nil:
		t.Errorf("CreateGlobal: %v", createErr)
	case !errors.As(lockErr, &conflict) || conflict.Lock.XID != "holder":
		t.Errorf("AcquireLocks: %v, want a conflict with holder", lockErr)
	case !errors.As(updateErr, &status) || status.Status != tcv1.GlobalStatus_COMMITTED:
		t.Errorf("UpdateGlobal: %v, want a status error with COMMITTED", updateErr)
	}
	if _, err := s.GetGlobal(ctx, "new"); err != nil {
		t.Errorf("the session created in the batch: %v", err)
	}
}

// TestGroupCommitWithdraw checks that a write whose context ends while it
// waits in the queue never runs.
func TestGroupCommitWithdraw(t *testing.T) {
	s := openSQLite(t, Config{})
	release := holdLane(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	ran := false
	done := make(chan error, 1)
	go func() {
		done <- s.writes.do(ctx, false, func(*gorm.DB) error { ran = true; return nil })
	}()
	waitQueued(t, s, 1)
	cancel()
	err := <-done
	release()
	if !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("withdrawn write: err %v, ran %v; want context.Canceled and not run", err, ran)
	}
	waitQueued(t, s, 0)
}

// TestGroupCommitBatchEndsWithItsCallers blocks the writes of a batch as a
// statement stuck behind a lock would, then has every caller give up: the
// batch's transaction must end with them rather than outlive them all.
func TestGroupCommitBatchEndsWithItsCallers(t *testing.T) {
	s := openSQLite(t, Config{})
	release := holdLane(t, s)
	const n = 2
	started := make(chan struct{}, n)
	errs := make(chan error, n)
	cancels := make([]context.CancelFunc, n)
	for i := range n {
		ctx, cancel := context.WithCancel(t.Context())
		cancels[i] = cancel
		go func() {
			errs <- s.writes.do(ctx, false, func(db *gorm.DB) error {
				started <- struct{}{}
				<-db.Statement.Context.Done()
				return db.Statement.Context.Err()
			})
		}()
		waitQueued(t, s, i+1)
	}
	release()
	<-started
	for _, cancel := range cancels {
		cancel()
	}
	for range n {
		select {
		case err := <-errs:
			if err == nil {
				t.Error("a write whose caller gave up reported success")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the batch outlived every caller in it")
		}
	}
}

// TestGroupCommitPanic checks that a write that panics fails the other
// writes of its batch, not reports them committed, and gives its lane back.
func TestGroupCommitPanic(t *testing.T) {
	s := openSQLite(t, Config{})
	release := holdLane(t, s)
	type result struct {
		err      error
		panicked bool
	}
	results := make(chan result, 2)
	for i := range 2 {
		go func() {
			var r result
			defer func() {
				r.panicked = recover() != nil
				results <- r
			}()
			r.err = s.writes.do(t.Context(), false, func(db *gorm.DB) error {
				if i == 1 {
					panic("injected")
				}
				return db.Create(&globalRow{XID: "kept-or-not"}).Error
			})
		}()
		waitQueued(t, s, i+1)
	}
	release()
	for range 2 {
		r := <-results
		if r.err == nil && !r.panicked {
			t.Error("a write of the batch that panicked reported success")
		}
	}
	done := make(chan error, 1)
	go func() {
		done <- s.CreateGlobal(context.Background(), &tc.GlobalSession{XID: "after", Timeout: time.Minute})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("write after the panic: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the lane of the panicked batch was never given back")
	}
}
