package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// defaultListLimit is ListGlobals' limit when the filter gives none.
const defaultListLimit = 100

// finalStatuses are the statuses DeleteFinished removes, as stored.
var finalStatuses = statusValues(tcv1.DoneStatuses())

// statusValues returns statuses as stored.
func statusValues(statuses []tcv1.GlobalStatus) []int32 {
	out := make([]int32, len(statuses))
	for i, st := range statuses {
		out[i] = int32(st)
	}
	return out
}

// checkLen returns an ErrInvalidInput error when v is longer than max bytes.
func checkLen(field, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%w: %s is %d bytes long, at most %d allowed", ErrInvalidInput, field, len(v), max)
	}
	return nil
}

// checkXID returns an ErrInvalidInput error for a malformed XID.
func checkXID(xid string) error {
	if err := gtx.ValidateXID(xid); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return nil
}

// transact runs fn in a transaction, and again (up to maxAttempts times)
// when the database aborts it for contention.
func (s *Store) transact(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return retry(ctx, s.log, func() error { return transaction(s.db.WithContext(ctx), s.log, nil, fn) })
}

// CreateGlobal stores g in status BEGIN, whatever g.Status is. A zero
// BeginTime or UpdateTime is stored as the current time; g is not modified.
func (s *Store) CreateGlobal(ctx context.Context, g *tc.GlobalSession) error {
	if err := errors.Join(checkXID(g.XID), checkLen("Name", g.Name, maxNameLen),
		checkLen("Application", g.Application, maxNameLen), checkLen("Owner", g.Owner, maxNameLen),
		checkLen("LastError", g.LastError, MaxLastErrorLen)); err != nil {
		return fmt.Errorf("sqlstore: create global session: %w", err)
	}
	if g.Timeout < 0 {
		return fmt.Errorf("sqlstore: create global session %s: %w: negative timeout %v", g.XID, ErrInvalidInput, g.Timeout)
	}
	now := time.Now()
	begin, updated := g.BeginTime, g.UpdateTime
	if begin.IsZero() {
		begin = now
	}
	if updated.IsZero() {
		updated = now
	}
	timeoutMs := g.Timeout.Milliseconds()
	row := globalRow{
		XID:         g.XID,
		Name:        g.Name,
		Application: g.Application,
		Status:      int32(tcv1.GlobalStatus_BEGIN),
		TimeoutMs:   timeoutMs,
		BeginTime:   micros(begin),
		Deadline:    micros(begin) + timeoutMs*1000,
		UpdateTime:  micros(updated),
		Attempts:    int64(g.Attempts),
		NextAttempt: micros(g.NextAttempt),
		LastError:   g.LastError,
		Owner:       g.Owner,
		LeaseUntil:  micros(g.LeaseUntil),
	}
	err := s.writes.do(ctx, false, func(db *gorm.DB) error {
		if err := db.Create(&row).Error; err != nil {
			if isDuplicateKey(err) {
				return tc.ErrDuplicateXID
			}
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlstore: create global session %s: %w", g.XID, err)
	}
	return nil
}

// GetGlobal returns the session with its branches, oldest first.
func (s *Store) GetGlobal(ctx context.Context, xid string) (*tc.GlobalSession, error) {
	db := s.db.WithContext(ctx)
	var row globalRow
	if err := db.Where("xid = ?", xid).Take(&row).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, fmt.Errorf("sqlstore: get global session %s: %w", xid, tc.ErrNotFound)
		}
		return nil, fmt.Errorf("sqlstore: get global session %s: %w", xid, err)
	}
	g := row.session()
	byXID, err := s.branches(db, []string{xid})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get global session %s: %w", xid, err)
	}
	g.Branches = byXID[xid]
	return g, nil
}

// branches returns the branches of xids, oldest first, by XID.
func (s *Store) branches(db *gorm.DB, xids []string) (map[string][]*tc.BranchSession, error) {
	var rows []branchRow
	if err := db.Where("xid IN ?", xids).Order("create_time, branch_id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read branches: %w", err)
	}
	out := make(map[string][]*tc.BranchSession, len(xids))
	for i := range rows {
		out[rows[i].XID] = append(out[rows[i].XID], rows[i].branch())
	}
	return out, nil
}

// UpdateGlobal applies u when the status is one of from, in one conditional
// UPDATE; only when it matches no row does it read the row, to tell a
// missing session from a status conflict.
func (s *Store) UpdateGlobal(ctx context.Context, xid string, from []tcv1.GlobalStatus, u tc.GlobalUpdate) error {
	return s.updateGlobal(ctx, xid, from, -1, u)
}

// Decide implements tc.Decider: UpdateGlobal from BEGIN, in the same one
// conditional UPDATE, also requiring the branch count the global row keeps.
func (s *Store) Decide(ctx context.Context, xid string, branches int, u tc.GlobalUpdate) error {
	if branches < 0 {
		return fmt.Errorf("sqlstore: decide %s: %w: negative branch count %d", xid, ErrInvalidInput, branches)
	}
	return s.updateGlobal(ctx, xid, []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, branches, u)
}

// updateGlobal is UpdateGlobal that, when branches is not negative, also
// requires xid to count exactly that many branches.
func (s *Store) updateGlobal(ctx context.Context, xid string, from []tcv1.GlobalStatus, branches int, u tc.GlobalUpdate) error {
	if err := errors.Join(checkLen("Owner", u.Owner, maxNameLen), checkLen("LastError", u.LastError, MaxLastErrorLen)); err != nil {
		return fmt.Errorf("sqlstore: update global session %s: %w", xid, err)
	}
	err := s.writes.do(ctx, false, func(db *gorm.DB) error {
		q := db.Model(&globalRow{}).Where("xid = ? AND status IN ?", xid, statusValues(from))
		if branches >= 0 {
			q = q.Where("branch_count = ?", branches)
		}
		res := q.Updates(map[string]any{
			"status":       int32(u.Status),
			"attempts":     int64(u.Attempts),
			"next_attempt": micros(u.NextAttempt),
			"last_error":   u.LastError,
			"owner":        u.Owner,
			"lease_until":  micros(u.LeaseUntil),
			"update_time":  micros(time.Now()),
			// The version always changes, so RowsAffected counts matched
			// rows even on MySQL, which otherwise counts changed ones.
			"version": gorm.Expr("version + 1"),
		})
		if res.Error != nil || res.RowsAffected > 0 {
			return res.Error
		}
		err := s.statusConflict(db, xid)
		var se *tc.StatusError
		if branches >= 0 && errors.As(err, &se) && slices.Contains(from, se.Status) {
			return refuse(tc.ErrBranchesChanged)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: update global session %s to %v: %w", xid, u.Status, err)
	}
	return nil
}

// statusConflict explains why a conditional UPDATE of xid matched no row:
// tc.ErrNotFound, or a *tc.StatusError with the current status, as a
// refusal (nothing was written).
//
// On MySQL the row is read with a locking read, which sees the latest
// committed row as the UPDATE did: a transaction that read before it (at
// the default REPEATABLE READ, as AddBranchLocked reads the lock rows) has
// a snapshot from then, and a plain read would answer the status the
// UPDATE waited to see changed.
func (s *Store) statusConflict(db *gorm.DB, xid string) error {
	var row globalRow
	q := db.Select("status").Where("xid = ?", xid)
	if s.dialect == DriverMySQL {
		q = q.Clauses(shareLock{})
	}
	if err := q.Take(&row).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return refuse(tc.ErrNotFound)
		}
		return err
	}
	return refuse(&tc.StatusError{XID: xid, Status: tcv1.GlobalStatus(row.Status)})
}

// shareLock is the clause "LOCK IN SHARE MODE", which MariaDB (unlike
// "FOR SHARE", which gorm writes) and MySQL both take.
type shareLock struct{}

func (shareLock) Name() string { return "FOR" }

func (shareLock) Build(b clause.Builder) { b.WriteString("LOCK IN SHARE MODE") }

func (shareLock) MergeClause(c *clause.Clause) { c.Name, c.Expression = "", shareLock{} }

// FinishEmpty implements tc.EmptyFinisher: one conditional UPDATE moves a
// BEGIN session with no branch, not past its deadline, to status.
func (s *Store) FinishEmpty(ctx context.Context, xid string, status tcv1.GlobalStatus, now time.Time) (bool, error) {
	var done bool
	err := s.writes.do(ctx, false, func(db *gorm.DB) error {
		res := db.Model(&globalRow{}).
			Where("xid = ? AND status = ? AND branch_count = 0 AND deadline >= ?", xid, int32(tcv1.GlobalStatus_BEGIN), micros(now)).
			Updates(map[string]any{"status": int32(status), "update_time": micros(time.Now()), "version": gorm.Expr("version + 1")})
		done = res.RowsAffected > 0
		return res.Error
	})
	if err != nil {
		return false, fmt.Errorf("sqlstore: finish empty session %s as %v: %w", xid, status, err)
	}
	return done, nil
}

// AddBranch stores b while its global session is in BEGIN and not past its
// deadline, counting it in the global row in the same transaction.
func (s *Store) AddBranch(ctx context.Context, b *tc.BranchSession) error {
	row, err := newBranchRow(b)
	if err != nil {
		return fmt.Errorf("sqlstore: add branch: %w", err)
	}
	err = s.writes.do(ctx, true, func(tx *gorm.DB) error {
		if err := s.countBranch(tx, &row); err != nil {
			return err
		}
		return insertBranch(tx, &row)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: add branch %d to %s: %w", b.BranchID, b.XID, err)
	}
	return nil
}

// AddBranchLocked implements tc.LockingAdder: AcquireLocks and AddBranch in
// one transaction. Both refusals (a lock held by another transaction, a
// session not in BEGIN or past its deadline) are found before it writes.
func (s *Store) AddBranchLocked(ctx context.Context, b *tc.BranchSession, locks []tc.RowLock) error {
	row, err := newBranchRow(b)
	if err != nil {
		return fmt.Errorf("sqlstore: add branch: %w", err)
	}
	groups, err := normalizeLocks(locks)
	if err != nil {
		return fmt.Errorf("sqlstore: add branch %d to %s: %w", b.BranchID, b.XID, err)
	}
	err = s.writes.do(ctx, true, func(tx *gorm.DB) error {
		missing, err := missingLocks(tx, b.XID, b.BranchID, groups)
		if err != nil {
			return err
		}
		if err := s.countBranch(tx, &row); err != nil {
			return err
		}
		if err := insertLocks(tx, missing); err != nil {
			return err
		}
		return insertBranch(tx, &row)
	})
	if err != nil {
		return fmt.Errorf("sqlstore: add branch %d to %s with its locks: %w", b.BranchID, b.XID, err)
	}
	return nil
}

// newBranchRow checks b and returns its row, created now when b has no
// CreateTime.
func newBranchRow(b *tc.BranchSession) (branchRow, error) {
	if err := errors.Join(checkXID(b.XID), checkLen("ResourceID", b.ResourceID, maxNameLen)); err != nil {
		return branchRow{}, err
	}
	created := b.CreateTime
	if created.IsZero() {
		created = time.Now()
	}
	data := b.ApplicationData
	if data == nil {
		data = []byte{}
	}
	return branchRow{
		XID:             b.XID,
		BranchID:        b.BranchID,
		Type:            int32(b.Type),
		ResourceID:      b.ResourceID,
		LockKeys:        b.LockKeys,
		ApplicationData: data,
		Status:          int32(b.Status),
		CreateTime:      micros(created),
		AsyncCommit:     b.AsyncCommit,
	}, nil
}

// countBranch counts row's branch in its global row while the session is in
// BEGIN and not past its deadline at the branch's creation, and otherwise
// refuses it (tc.ErrTimedOut, a *tc.StatusError or tc.ErrNotFound) without
// writing. Counting the branch in the global row locks that row until the
// transaction ends, so a concurrent status change waits for the branch, or
// the branch for the status change.
func (s *Store) countBranch(tx *gorm.DB, row *branchRow) error {
	res := tx.Model(&globalRow{}).Where("xid = ? AND status = ? AND deadline >= ?", row.XID, int32(tcv1.GlobalStatus_BEGIN), row.CreateTime).
		Updates(map[string]any{"branch_count": gorm.Expr("branch_count + 1"), "version": gorm.Expr("version + 1")})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected > 0 {
		return nil
	}
	err := s.statusConflict(tx, row.XID)
	var se *tc.StatusError
	if errors.As(err, &se) && se.Status == tcv1.GlobalStatus_BEGIN {
		return refuse(tc.ErrTimedOut)
	}
	return err
}

// insertBranch inserts row, or fails with ErrDuplicateBranch.
func insertBranch(tx *gorm.DB, row *branchRow) error {
	if err := tx.Create(row).Error; err != nil {
		if isDuplicateKey(err) {
			return ErrDuplicateBranch
		}
		return err
	}
	return nil
}

// UpdateBranch sets a branch's status, and its application data when data is
// not nil.
func (s *Store) UpdateBranch(ctx context.Context, xid string, branchID int64, status tcv1.BranchStatus, data []byte) error {
	set := map[string]any{"status": int32(status)}
	if data != nil {
		set["application_data"] = data
	}
	err := s.writes.do(ctx, false, func(db *gorm.DB) error {
		res := db.Model(&branchRow{}).Where("xid = ? AND branch_id = ?", xid, branchID).Updates(set)
		if res.Error != nil || res.RowsAffected > 0 {
			return res.Error
		}
		// MySQL counts only changed rows: an update to the same values
		// affects none, so tell that apart from a missing branch.
		var n int64
		if err := db.Model(&branchRow{}).Where("xid = ? AND branch_id = ?", xid, branchID).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return refuse(tc.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlstore: update branch %d of %s: %w", branchID, xid, err)
	}
	return nil
}

// ListGlobals returns sessions without branches, newest first.
func (s *Store) ListGlobals(ctx context.Context, f tc.ListFilter) ([]*tc.GlobalSession, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("sqlstore: list global sessions: %w: negative limit %d", ErrInvalidInput, f.Limit)
	}
	limit := f.Limit
	if limit == 0 {
		limit = defaultListLimit
	}
	q := s.db.WithContext(ctx)
	if len(f.Statuses) > 0 {
		q = q.Where("status IN ?", statusValues(f.Statuses))
	}
	var rows []globalRow
	if err := q.Order("begin_time DESC, xid DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("sqlstore: list global sessions: %w", err)
	}
	return sessions(rows), nil
}

// sessions converts rows.
func sessions(rows []globalRow) []*tc.GlobalSession {
	out := make([]*tc.GlobalSession, len(rows))
	for i := range rows {
		out[i] = rows[i].session()
	}
	return out
}

// claimable is the condition for ClaimDue, in both the search for candidates
// and the UPDATE that takes them, so that a row another replica took in
// between is left alone.
const claimable = "status IN ? AND next_attempt <= ? AND (owner = '' OR owner = ? OR lease_until <= ?)"

// ClaimDue selects up to limit candidates, then takes them in one UPDATE that
// repeats the whole condition, so that each row goes to one owner even when
// replicas race; it returns the rows that the owner holds afterwards.
func (s *Store) ClaimDue(ctx context.Context, owner string, statuses []tcv1.GlobalStatus, now time.Time, lease time.Duration, limit int) ([]*tc.GlobalSession, error) {
	switch {
	case owner == "":
		return nil, fmt.Errorf("sqlstore: claim due sessions: %w: empty owner", ErrInvalidInput)
	case lease <= 0:
		return nil, fmt.Errorf("sqlstore: claim due sessions: %w: lease %v is not positive", ErrInvalidInput, lease)
	case limit <= 0:
		return nil, fmt.Errorf("sqlstore: claim due sessions: %w: limit %d is not positive", ErrInvalidInput, limit)
	}
	if err := checkLen("owner", owner, maxNameLen); err != nil {
		return nil, fmt.Errorf("sqlstore: claim due sessions: %w", err)
	}
	var out []*tc.GlobalSession
	err := retry(ctx, s.log, func() error {
		var err error
		out, err = s.claim(s.db.WithContext(ctx), owner, statusValues(statuses), micros(now), micros(now.Add(lease)), limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: claim due sessions for %s: %w", owner, err)
	}
	return out, nil
}

// claim is one attempt of ClaimDue.
func (s *Store) claim(db *gorm.DB, owner string, sts []int32, nowUs, until int64, limit int) ([]*tc.GlobalSession, error) {
	var candidates []string
	err := db.Model(&globalRow{}).Where(claimable, sts, nowUs, owner, nowUs).
		Order("next_attempt, xid").Limit(limit).Pluck("xid", &candidates).Error
	if err != nil {
		return nil, fmt.Errorf("find candidates: %w", err)
	}
	if len(candidates) == 0 {
		return nil, nil
	}
	err = db.Model(&globalRow{}).Where("xid IN ?", candidates).Where(claimable, sts, nowUs, owner, nowUs).
		Updates(map[string]any{"owner": owner, "lease_until": until, "version": gorm.Expr("version + 1")}).Error
	if err != nil {
		return nil, fmt.Errorf("take candidates: %w", err)
	}
	var rows []globalRow
	err = db.Where("xid IN ? AND owner = ? AND lease_until = ?", candidates, owner, until).
		Order("next_attempt, xid").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("read claimed: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	out := sessions(rows)
	claimed := make([]string, len(out))
	for i, g := range out {
		claimed[i] = g.XID
	}
	byXID, err := s.branches(db, claimed)
	if err != nil {
		return nil, err
	}
	for _, g := range out {
		g.Branches = byXID[g.XID]
	}
	return out, nil
}

// ListTimedOut returns sessions in BEGIN whose deadline (BeginTime plus
// Timeout, stored at creation) is before now, earliest deadline first.
func (s *Store) ListTimedOut(ctx context.Context, now time.Time, limit int) ([]*tc.GlobalSession, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("sqlstore: list timed-out sessions: %w: limit %d is not positive", ErrInvalidInput, limit)
	}
	var rows []globalRow
	err := s.db.WithContext(ctx).Where("status = ? AND deadline < ?", int32(tcv1.GlobalStatus_BEGIN), micros(now)).
		Order("deadline, xid").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list timed-out sessions: %w", err)
	}
	return sessions(rows), nil
}

// DeleteFinished deletes up to limit finished sessions last updated before
// before, with their branches, in one transaction.
func (s *Store) DeleteFinished(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("sqlstore: delete finished sessions: %w: limit %d is not positive", ErrInvalidInput, limit)
	}
	var deleted int64
	err := s.transact(ctx, func(tx *gorm.DB) error {
		var xids []string
		err := tx.Model(&globalRow{}).Where("status IN ? AND update_time < ?", finalStatuses, micros(before)).
			Order("update_time, xid").Limit(limit).Pluck("xid", &xids).Error
		if err != nil || len(xids) == 0 {
			return err
		}
		if err := tx.Where("xid IN ?", xids).Delete(&branchRow{}).Error; err != nil {
			return err
		}
		res := tx.Where("xid IN ? AND status IN ?", xids, finalStatuses).Delete(&globalRow{})
		deleted = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return 0, fmt.Errorf("sqlstore: delete finished sessions: %w", err)
	}
	return int(deleted), nil
}
