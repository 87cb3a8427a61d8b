package tc

import (
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// maxNameLen bounds transaction names, applications and resource IDs, as
// every store keeps them.
const maxNameLen = 255

// GlobalSession is the durable record of one global transaction.
type GlobalSession struct {
	XID         string
	Name        string
	Application string
	Status      tcv1.GlobalStatus
	// Timeout is how long the transaction may stay in BEGIN before the
	// coordinator rolls it back.
	Timeout    time.Duration
	BeginTime  time.Time
	UpdateTime time.Time
	// Attempts counts phase-2 attempts so far.
	Attempts int
	// NextAttempt is when phase 2 is due again; zero means now.
	NextAttempt time.Time
	// LastError is the last phase-2 failure, for operators.
	LastError string
	// Owner is the replica driving phase 2 until LeaseUntil; empty when none.
	Owner      string
	LeaseUntil time.Time
	// Branches is filled by Store.GetGlobal, oldest first.
	Branches []*BranchSession
}

// updated returns g with u applied as Store.UpdateGlobal applies it,
// sharing g's branches.
func (g *GlobalSession) updated(u GlobalUpdate) *GlobalSession {
	out := *g
	out.Status, out.Attempts, out.NextAttempt, out.LastError = u.Status, u.Attempts, u.NextAttempt, u.LastError
	out.Owner, out.LeaseUntil = u.Owner, u.LeaseUntil
	return &out
}

// BranchSession is the durable record of one branch of a global transaction.
type BranchSession struct {
	XID             string
	BranchID        int64
	Type            tcv1.BranchType
	ResourceID      string
	LockKeys        string
	ApplicationData []byte
	Status          tcv1.BranchStatus
	CreateTime      time.Time
	// AsyncCommit says phase-2 commit may run after the TM was answered;
	// AT branches may always.
	AsyncCommit bool
}

// GlobalUpdate is a change to a global session applied by Store.UpdateGlobal.
// Status is always written; the other fields are written as given (zero values
// clear them).
type GlobalUpdate struct {
	Status      tcv1.GlobalStatus
	Attempts    int
	NextAttempt time.Time
	LastError   string
	Owner       string
	LeaseUntil  time.Time
}
