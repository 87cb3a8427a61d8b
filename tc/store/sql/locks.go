package sqlstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// lockBatch is how many keys one SELECT or INSERT of locks carries, well
// under every dialect's limit on bound parameters.
const lockBatch = 300

// lockGroup is the keys of one table of one resource.
type lockGroup struct {
	resource, table string
	pks             []string
}

// normalizeLocks checks locks and returns their distinct keys, sorted so
// that every caller inserts in the same order, grouped by resource and
// table.
func normalizeLocks(locks []tc.RowLock) ([]lockGroup, error) {
	keys := make([]tc.RowLock, 0, len(locks))
	for _, l := range locks {
		switch {
		case l.ResourceID == "" || l.Table == "" || l.PK == "":
			return nil, fmt.Errorf("%w: resource %q, table %q, primary key %q: none may be empty", tc.ErrInvalidLockKeys, l.ResourceID, l.Table, l.PK)
		case len(l.ResourceID) > maxNameLen || len(l.Table) > maxTableLen || len(l.PK) > maxPKLen:
			return nil, fmt.Errorf("%w: resource %.40q..., table %.40q..., primary key %.40q...: longer than %d, %d, %d bytes",
				tc.ErrInvalidLockKeys, l.ResourceID, l.Table, l.PK, maxNameLen, maxTableLen, maxPKLen)
		}
		keys = append(keys, tc.RowLock{ResourceID: l.ResourceID, Table: l.Table, PK: l.PK})
	}
	slices.SortFunc(keys, func(a, b tc.RowLock) int {
		return cmp.Or(cmp.Compare(a.ResourceID, b.ResourceID), cmp.Compare(a.Table, b.Table), cmp.Compare(a.PK, b.PK))
	})
	keys = slices.Compact(keys)
	var groups []lockGroup
	for _, k := range keys {
		if n := len(groups); n == 0 || groups[n-1].resource != k.ResourceID || groups[n-1].table != k.Table {
			groups = append(groups, lockGroup{resource: k.ResourceID, table: k.Table})
		}
		g := &groups[len(groups)-1]
		g.pks = append(g.pks, k.PK)
	}
	return groups, nil
}

// heldLocks returns the lock rows that exist for groups.
func heldLocks(db *gorm.DB, groups []lockGroup) ([]lockRow, error) {
	var out []lockRow
	for _, g := range groups {
		for pks := range slices.Chunk(g.pks, lockBatch) {
			var rows []lockRow
			err := db.Where("resource_id = ? AND table_name = ? AND pk IN ?", g.resource, g.table, pks).Find(&rows).Error
			if err != nil {
				return nil, err
			}
			out = append(out, rows...)
		}
	}
	return out, nil
}

// AcquireLocks takes every lock of locks for (xid, branchID) in one
// transaction: it reads the rows that exist for the keys, fails with a
// *tc.LockConflictError when another transaction holds one (with the
// holder's status, when its global session is in this store), and inserts the
// missing ones. A concurrent caller that inserts the same key first makes the
// insert fail on the primary key; the transaction then rolls back and runs
// again, and finds that caller's lock.
func (s *Store) AcquireLocks(ctx context.Context, xid string, branchID int64, locks []tc.RowLock) error {
	if err := checkXID(xid); err != nil {
		return fmt.Errorf("sqlstore: acquire locks: %w", err)
	}
	groups, err := normalizeLocks(locks)
	if err != nil {
		return fmt.Errorf("sqlstore: acquire locks for %s: %w", xid, err)
	}
	if len(groups) == 0 {
		return nil
	}
	err = s.writes.do(ctx, true, func(tx *gorm.DB) error { return acquire(tx, xid, branchID, groups) })
	if err != nil {
		return fmt.Errorf("sqlstore: acquire locks for %s branch %d: %w", xid, branchID, err)
	}
	return nil
}

// acquire is one attempt of AcquireLocks inside tx.
func acquire(tx *gorm.DB, xid string, branchID int64, groups []lockGroup) error {
	missing, err := missingLocks(tx, xid, branchID, groups)
	if err != nil {
		return err
	}
	return insertLocks(tx, missing)
}

// missingLocks returns the lock rows of groups that xid does not hold yet,
// for branchID, or the refusal of a lock another transaction holds. It
// only reads.
func missingLocks(tx *gorm.DB, xid string, branchID int64, groups []lockGroup) ([]lockRow, error) {
	rows, err := heldLocks(tx, groups)
	if err != nil {
		return nil, err
	}
	taken := make(map[[3]string]bool, len(rows))
	for i := range rows {
		r := &rows[i]
		if r.XID != xid {
			return nil, conflict(tx, r)
		}
		taken[[3]string{r.ResourceID, r.Table, r.PK}] = true
	}
	now := micros(time.Now())
	var missing []lockRow
	for _, g := range groups {
		for _, pk := range g.pks {
			if !taken[[3]string{g.resource, g.table, pk}] {
				missing = append(missing, lockRow{ResourceID: g.resource, Table: g.table, PK: pk, XID: xid, BranchID: branchID, CreateTime: now})
			}
		}
	}
	return missing, nil
}

// insertLocks inserts the lock rows missingLocks returned.
func insertLocks(tx *gorm.DB, missing []lockRow) error {
	if len(missing) == 0 {
		return nil
	}
	return tx.CreateInBatches(missing, lockBatch).Error
}

// conflict returns the error for a lock r holds, with the holder's global
// status when its session is in the store, so that callers can fail fast on a
// holder that is rolling back. It is a refusal: acquire calls it before it
// writes anything.
func conflict(tx *gorm.DB, r *lockRow) error {
	e := &tc.LockConflictError{Lock: r.lock()}
	var g globalRow
	err := tx.Select("status").Where("xid = ?", r.XID).Take(&g).Error
	switch {
	case err == nil:
		e.HolderStatus = tcv1.GlobalStatus(g.Status)
	case !errors.Is(err, gorm.ErrRecordNotFound):
		return err
	}
	return refuse(e)
}

// ReleaseBranchLocks releases the locks of one branch.
func (s *Store) ReleaseBranchLocks(ctx context.Context, xid string, branchID int64) error {
	err := s.writes.do(ctx, false, func(db *gorm.DB) error {
		return db.Where("xid = ? AND branch_id = ?", xid, branchID).Delete(&lockRow{}).Error
	})
	if err != nil {
		return fmt.Errorf("sqlstore: release locks of %s branch %d: %w", xid, branchID, err)
	}
	return nil
}

// ReleaseGlobalLocks releases every lock of a global transaction.
func (s *Store) ReleaseGlobalLocks(ctx context.Context, xid string) error {
	err := s.writes.do(ctx, false, func(db *gorm.DB) error {
		return db.Where("xid = ?", xid).Delete(&lockRow{}).Error
	})
	if err != nil {
		return fmt.Errorf("sqlstore: release locks of %s: %w", xid, err)
	}
	return nil
}

// QueryLocks returns the locks held on the keys of locks, with their holders.
func (s *Store) QueryLocks(ctx context.Context, locks []tc.RowLock) ([]tc.RowLock, error) {
	groups, err := normalizeLocks(locks)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: query locks: %w", err)
	}
	rows, err := heldLocks(s.db.WithContext(ctx), groups)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: query locks: %w", err)
	}
	out := make([]tc.RowLock, len(rows))
	for i := range rows {
		out[i] = rows[i].lock()
	}
	return out, nil
}

// LockHolders implements tc.LockHolderLister.
func (s *Store) LockHolders(ctx context.Context, after string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("sqlstore: list lock holders: %w: limit %d is not positive", ErrInvalidInput, limit)
	}
	var xids []string
	err := s.db.WithContext(ctx).Model(&lockRow{}).Distinct("xid").Where("xid > ?", after).
		Order("xid").Limit(limit).Pluck("xid", &xids).Error
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list lock holders: %w", err)
	}
	return xids, nil
}
