package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	kerrors "github.com/go-kratos/kratos/v2/errors"
	"github.com/go-sql-driver/mysql"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm/at"
)

// ErrRowLocked says a row written outside AT mode is held by a global
// transaction's AT branch, so the write must not commit: the branch may
// still roll back to its before image, and a rollback that finds the row
// changed by someone else stops as a dirty write.
var ErrRowLocked = errors.New("service: row held by a global transaction")

// Lock-check policy: as AT's default, every 10 ms up to 100 more times.
const (
	lockRetryInterval = 10 * time.Millisecond
	lockRetryTimes    = 100
)

// GuardRow is the global lock check of a write made outside AT mode (a TCC
// phase) on a row that AT branches also write. Call it after the write, in
// the same local transaction and before its commit: the local row lock then
// keeps any new AT branch off the row, and GuardRow waits until no other
// global transaction holds the row's global lock. It gives up at once when
// the holder is rolling back (its rollback needs the row lock this
// transaction holds), and after the retry policy otherwise; the caller then
// rolls back. xid is the caller's own transaction (its locks do not count).
func (b *Base) GuardRow(ctx context.Context, xid, table, pk string) error {
	keys := tcv1.LockKey(table, pk)
	for attempt := 0; ; attempt++ {
		resp, err := b.TC.QueryLocks(ctx, &tcv1.QueryLocksRequest{ResourceId: b.ATResource, LockKeys: keys, Xid: xid})
		if err != nil {
			return fmt.Errorf("service %s: query the global lock of %s: %w", b.Cfg.Name, keys, err)
		}
		if resp.GetLockable() {
			return nil
		}
		var holder *tcv1.LockHolder
		for _, h := range resp.GetHolders() {
			holder = h
			if h.GetHolderStatus().IsRollbackDecided() {
				return fmt.Errorf("%w: %s by %s, which is rolling back", ErrRowLocked, keys, h.GetXid())
			}
		}
		if attempt >= lockRetryTimes {
			return fmt.Errorf("%w: %s still held by %s after %d attempts", ErrRowLocked, keys, holder.GetXid(), attempt+1)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("service %s: wait for the global lock of %s: %w", b.Cfg.Name, keys, ctx.Err())
		case <-time.After(lockRetryInterval):
		}
	}
}

// ReasonRowLocked is the reason of the kratos error a saga step answers when
// its local transaction lost a race for a row (held by a global
// transaction, or a database deadlock) and changed nothing: the caller may
// retry it.
const ReasonRowLocked = "ROW_LOCKED"

// RetryableStep turns err from a saga step's local transaction into a
// kratos error with ReasonRowLocked when the transaction changed nothing
// because of a lock (a global row lock, or the database's deadlock, lock
// wait timeout or serialization failure); other errors are returned as they
// are.
func RetryableStep(err error) error {
	var me *mysql.MySQLError
	var pe interface{ SQLState() string } // pgx's *pgconn.PgError
	if errors.Is(err, at.ErrGlobalLock) || errors.Is(err, ErrRowLocked) ||
		errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205) ||
		errors.As(err, &pe) && slices.Contains([]string{"40P01", "40001", "55P03"}, pe.SQLState()) {
		return kerrors.Conflict(ReasonRowLocked, err.Error())
	}
	return err
}
