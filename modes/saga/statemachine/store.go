package statemachine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Instance statuses, as stored.
const (
	StatusRunning      = "Running"
	StatusCompensating = "Compensating"
	StatusSucceeded    = "Succeeded"
	StatusFailed       = "Failed"
)

// State execution statuses, as stored.
const (
	execRunning   = "Running"
	execSucceeded = "Succeeded"
	execFailed    = "Failed"
)

// instanceRow is one state-machine instance.
type instanceRow struct {
	ID           string `gorm:"column:id;primaryKey;size:128"`
	Machine      string `gorm:"column:machine;size:255;not null"`
	XID          string `gorm:"column:xid;size:128;not null;index"`
	ParentID     string `gorm:"column:parent_id;size:128;not null;index"`
	Status       string `gorm:"column:status;size:32;not null;index"`
	CurrentState string `gorm:"column:current_state;size:255;not null"`
	// NextSeq is the seq the next forward execution takes, as of the last
	// transition: a forward execution with a seq at least NextSeq was
	// started in CurrentState and is its execution.
	NextSeq      int    `gorm:"column:next_seq;not null"`
	Context      string `gorm:"column:context;type:text;not null"`
	ErrorCode    string `gorm:"column:error_code;size:255;not null"`
	ErrorMessage string `gorm:"column:error_message;type:text;not null"`
	// Reported is set once the coordinator has the final status.
	Reported bool `gorm:"column:reported;not null"`
	// Owner names the engine that runs a root instance, until LeaseUntil
	// (Unix ms); a child instance has none, its parent's runner runs it.
	Owner      string `gorm:"column:owner;size:128;not null"`
	LeaseUntil int64  `gorm:"column:lease_until;not null;index"`
	CreatedAt  int64  `gorm:"column:created_ms;not null"`
	UpdatedAt  int64  `gorm:"column:updated_ms;not null"`
}

func (instanceRow) TableName() string { return "gtx_saga_instances" }

// execRow is one execution of a task or a SubStateMachine state, forward or
// compensating.
type execRow struct {
	ID         int64  `gorm:"column:id;primaryKey;autoIncrement"`
	InstanceID string `gorm:"column:instance_id;size:128;not null;index"`
	// Seq orders forward executions within the instance; a compensation has
	// the Seq of the execution it undoes.
	Seq          int    `gorm:"column:seq;not null"`
	Name         string `gorm:"column:name;size:255;not null"`
	Compensation bool   `gorm:"column:compensation;not null"`
	Status       string `gorm:"column:status;size:32;not null"`
	Key          string `gorm:"column:idem_key;size:512;not null;uniqueIndex"`
	Attempts     int    `gorm:"column:attempts;not null"`
	Input        string `gorm:"column:input;type:text;not null"`
	Output       string `gorm:"column:output;type:text;not null"`
	ErrorCode    string `gorm:"column:error_code;size:255;not null"`
	ErrorMessage string `gorm:"column:error_message;type:text;not null"`
	// Compensated is set on a forward execution once it is undone.
	Compensated bool   `gorm:"column:compensated;not null"`
	ChildID     string `gorm:"column:child_id;size:128;not null"`
	// ForwardKey is, on a compensation, the Key of the execution it undoes.
	ForwardKey string `gorm:"column:forward_key;size:512;not null"`
	UpdatedAt  int64  `gorm:"column:updated_ms;not null"`
}

func (execRow) TableName() string { return "gtx_saga_states" }

// Migrate creates or updates the engine's tables in db: gtx_saga_instances
// and gtx_saga_states. Engine.Start calls it.
func Migrate(ctx context.Context, db *gorm.DB) error {
	if err := db.WithContext(ctx).AutoMigrate(&instanceRow{}, &execRow{}); err != nil {
		return fmt.Errorf("statemachine: migrate: %w", err)
	}
	return nil
}

// store is the engine's persistence over gorm.
type store struct {
	db *gorm.DB
}

func nowMs() int64 { return time.Now().UnixMilli() }

func (s *store) createInstance(ctx context.Context, r *instanceRow) error {
	r.CreatedAt, r.UpdatedAt = nowMs(), nowMs()
	return s.db.WithContext(ctx).Create(r).Error
}

func (s *store) instance(ctx context.Context, id string) (*instanceRow, error) {
	var r instanceRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrInstanceNotFound, id)
	}
	return &r, err
}

// errLostLease says that another engine took an instance over: this
// engine's lease on it ran out.
var errLostLease = errors.New("statemachine: another engine took the instance over (this engine's lease ran out)")

// saveInstance writes the mutable fields of r, provided r.Owner still owns
// it; errLostLease otherwise.
func (s *store) saveInstance(ctx context.Context, db *gorm.DB, r *instanceRow) error {
	// updated_ms always changes, so that MySQL counts the row as affected.
	r.UpdatedAt = max(nowMs(), r.UpdatedAt+1)
	res := db.WithContext(ctx).Model(&instanceRow{}).Where("id = ? AND owner = ?", r.ID, r.Owner).Updates(map[string]any{
		"status": r.Status, "current_state": r.CurrentState, "next_seq": r.NextSeq,
		"context": r.Context, "error_code": r.ErrorCode, "error_message": r.ErrorMessage, "reported": r.Reported,
		"updated_ms": r.UpdatedAt,
	})
	if res.Error == nil && res.RowsAffected == 0 {
		return errLostLease
	}
	return res.Error
}

// renew extends the lease of every unfinished root instance owner runs.
func (s *store) renew(ctx context.Context, owner string, ttl time.Duration) error {
	return s.db.WithContext(ctx).Model(&instanceRow{}).
		Where("owner = ? AND parent_id = ? AND (status IN ? OR reported = ?)", owner, "", []string{StatusRunning, StatusCompensating}, false).
		Update("lease_until", nowMs()+ttl.Milliseconds()).Error
}

// release ends owner's leases, so that another engine may take its
// instances over at once.
func (s *store) release(ctx context.Context, owner string) error {
	return s.db.WithContext(ctx).Model(&instanceRow{}).
		Where("owner = ? AND parent_id = ? AND lease_until > ?", owner, "", 0).
		Update("lease_until", 0).Error
}

// claim takes r over for owner if its lease has run out, and reports
// whether it did.
func (s *store) claim(ctx context.Context, r *instanceRow, owner string, ttl time.Duration) (bool, error) {
	now := nowMs()
	res := s.db.WithContext(ctx).Model(&instanceRow{}).
		Where("id = ? AND owner = ? AND lease_until = ? AND lease_until < ?", r.ID, r.Owner, r.LeaseUntil, now).
		Updates(map[string]any{"owner": owner, "lease_until": now + ttl.Milliseconds()})
	if res.Error != nil || res.RowsAffected == 0 {
		return false, res.Error
	}
	r.Owner, r.LeaseUntil = owner, now+ttl.Milliseconds()
	return true, nil
}

// startExec inserts e; an execution with its key stored already is kept.
func (s *store) startExec(ctx context.Context, e *execRow) error {
	e.UpdatedAt = nowMs()
	return s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(e).Error
}

// latestForward returns the instance's forward execution with the highest
// seq, or nil when it has none.
func (s *store) latestForward(ctx context.Context, instID string) (*execRow, error) {
	var rows []execRow
	err := s.db.WithContext(ctx).Where("instance_id = ? AND compensation = ?", instID, false).Order("seq DESC").Limit(1).Find(&rows).Error
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return &rows[0], nil
}

func (s *store) exec(ctx context.Context, key string) (*execRow, error) {
	var r execRow
	err := s.db.WithContext(ctx).Where("idem_key = ?", key).Take(&r).Error
	return &r, err
}

// finishExecTx is finishExec in the transaction tx.
func finishExecTx(tx *gorm.DB, key string, attempt int, output, code, msg string) (bool, error) {
	st := execSucceeded
	if code != "" {
		st = execFailed
	}
	res := tx.Model(&execRow{}).
		Where("idem_key = ? AND status = ? AND attempts = ?", key, execRunning, attempt).
		Updates(map[string]any{"status": st, "output": output, "error_code": code, "error_message": msg, "updated_ms": nowMs()})
	return res.RowsAffected == 1, res.Error
}

// finishExec records the outcome of attempt of the execution key, if it is
// still running that attempt. It reports whether it did: false means the
// outcome was recorded already (a duplicate reply) or the attempt is stale.
func (s *store) finishExec(ctx context.Context, key string, attempt int, output, code, msg string) (bool, error) {
	return finishExecTx(s.db.WithContext(ctx), key, attempt, output, code, msg)
}

// retryExec puts a failed execution back to running for its next attempt.
func (s *store) retryExec(ctx context.Context, key string, attempt int) error {
	return s.db.WithContext(ctx).Model(&execRow{}).
		Where("idem_key = ? AND status = ? AND attempts = ?", key, execFailed, attempt).
		Updates(map[string]any{"status": execRunning, "attempts": attempt + 1, "error_code": "", "error_message": "", "updated_ms": nowMs()}).Error
}

// forwardExecs returns inst's forward executions, newest first.
func (s *store) forwardExecs(ctx context.Context, instID string) ([]execRow, error) {
	var rows []execRow
	err := s.db.WithContext(ctx).Where("instance_id = ? AND compensation = ?", instID, false).Order("seq DESC").Find(&rows).Error
	return rows, err
}

func (s *store) execs(ctx context.Context, instID string) ([]execRow, error) {
	var rows []execRow
	err := s.db.WithContext(ctx).Where("instance_id = ?", instID).Order("id").Find(&rows).Error
	return rows, err
}

// markCompensated records, in tx, that the forward execution id is undone.
func markCompensated(tx *gorm.DB, id int64) error {
	return tx.Model(&execRow{}).Where("id = ?", id).
		Updates(map[string]any{"compensated": true, "updated_ms": nowMs()}).Error
}

// orphans returns up to limit root instances whose lease ran out and that
// are unfinished (running or compensating) or unreported.
func (s *store) orphans(ctx context.Context, limit int) ([]instanceRow, error) {
	var rows []instanceRow
	err := s.db.WithContext(ctx).
		Where("parent_id = ? AND lease_until < ? AND (status IN ? OR reported = ?)", "", nowMs(), []string{StatusRunning, StatusCompensating}, false).
		Order("created_ms").Limit(limit).Find(&rows).Error
	return rows, err
}
