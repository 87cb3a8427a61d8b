package sqlstore

import (
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// Column sizes, enforced before a write so that every database refuses the
// same input with the same error.
const (
	// maxNameLen bounds names, applications, resource IDs and owners.
	maxNameLen = 255
	// maxTableLen bounds a locked table's name.
	maxTableLen = 128
	// maxPKLen bounds a locked primary key.
	maxPKLen = 255
	// MaxLastErrorLen is the longest GlobalUpdate.LastError the store keeps,
	// in bytes; callers truncate longer messages.
	MaxLastErrorLen = 65535
)

// Table names.
const (
	globalTable = "gtx_global_sessions"
	branchTable = "gtx_branch_sessions"
	lockTable   = "gtx_row_locks"
)

// globalRow is a row of gtx_global_sessions. Times are microseconds since the
// Unix epoch (UTC); 0 is the zero time.
type globalRow struct {
	XID         string `gorm:"column:xid;primaryKey;size:128"`
	Name        string `gorm:"column:name;size:255;not null"`
	Application string `gorm:"column:application;size:255;not null"`
	Status      int32  `gorm:"column:status;not null;index:idx_gtx_global_sessions_due,priority:1;index:idx_gtx_global_sessions_deadline,priority:1;index:idx_gtx_global_sessions_finished,priority:1"`
	TimeoutMs   int64  `gorm:"column:timeout_ms;not null"`
	BeginTime   int64  `gorm:"column:begin_time;not null;index:idx_gtx_global_sessions_begin"`
	Deadline    int64  `gorm:"column:deadline;not null;index:idx_gtx_global_sessions_deadline,priority:2"`
	UpdateTime  int64  `gorm:"column:update_time;not null;index:idx_gtx_global_sessions_finished,priority:2"`
	Attempts    int64  `gorm:"column:attempts;not null"`
	NextAttempt int64  `gorm:"column:next_attempt;not null;index:idx_gtx_global_sessions_due,priority:2"`
	LastError   string `gorm:"column:last_error;type:text;not null"`
	Owner       string `gorm:"column:owner;size:255;not null"`
	LeaseUntil  int64  `gorm:"column:lease_until;not null"`
	Version     int64  `gorm:"column:version;not null"`
	// BranchCount counts the branches AddBranch stored. AddBranch bumps it
	// in the global row itself, so that FinishEmpty's single conditional
	// UPDATE of that row sees every branch, in every database.
	BranchCount int64 `gorm:"column:branch_count;not null;default:0"`
}

func (globalRow) TableName() string { return globalTable }

// branchRow is a row of gtx_branch_sessions.
type branchRow struct {
	XID             string `gorm:"column:xid;primaryKey;size:128"`
	BranchID        int64  `gorm:"column:branch_id;primaryKey;autoIncrement:false"`
	Type            int32  `gorm:"column:branch_type;not null"`
	ResourceID      string `gorm:"column:resource_id;size:255;not null"`
	LockKeys        string `gorm:"column:lock_keys;size:16777215;not null"`
	ApplicationData []byte `gorm:"column:application_data;size:16777215;not null"`
	Status          int32  `gorm:"column:status;not null"`
	CreateTime      int64  `gorm:"column:create_time;not null"`
	AsyncCommit     bool   `gorm:"column:async_commit;not null;default:false"`
}

func (branchRow) TableName() string { return branchTable }

// lockRow is a row of gtx_row_locks.
type lockRow struct {
	ResourceID string `gorm:"column:resource_id;primaryKey;size:255"`
	Table      string `gorm:"column:table_name;primaryKey;size:128"`
	PK         string `gorm:"column:pk;primaryKey;size:255"`
	XID        string `gorm:"column:xid;size:128;not null;index:idx_gtx_row_locks_holder,priority:1"`
	BranchID   int64  `gorm:"column:branch_id;not null;index:idx_gtx_row_locks_holder,priority:2"`
	CreateTime int64  `gorm:"column:create_time;not null"`
}

func (lockRow) TableName() string { return lockTable }

// micros returns t as microseconds since the Unix epoch, 0 for the zero time.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromMicros is the inverse of micros; times come back in UTC.
func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func (r *globalRow) session() *tc.GlobalSession {
	return &tc.GlobalSession{
		XID:         r.XID,
		Name:        r.Name,
		Application: r.Application,
		Status:      tcv1.GlobalStatus(r.Status),
		Timeout:     time.Duration(r.TimeoutMs) * time.Millisecond,
		BeginTime:   fromMicros(r.BeginTime),
		UpdateTime:  fromMicros(r.UpdateTime),
		Attempts:    int(r.Attempts),
		NextAttempt: fromMicros(r.NextAttempt),
		LastError:   r.LastError,
		Owner:       r.Owner,
		LeaseUntil:  fromMicros(r.LeaseUntil),
	}
}

func (r *branchRow) branch() *tc.BranchSession {
	b := &tc.BranchSession{
		XID:         r.XID,
		BranchID:    r.BranchID,
		Type:        tcv1.BranchType(r.Type),
		ResourceID:  r.ResourceID,
		LockKeys:    r.LockKeys,
		Status:      tcv1.BranchStatus(r.Status),
		CreateTime:  fromMicros(r.CreateTime),
		AsyncCommit: r.AsyncCommit,
	}
	if len(r.ApplicationData) > 0 {
		b.ApplicationData = r.ApplicationData
	}
	return b
}

func (r *lockRow) lock() tc.RowLock {
	return tc.RowLock{ResourceID: r.ResourceID, Table: r.Table, PK: r.PK, XID: r.XID, BranchID: r.BranchID}
}
