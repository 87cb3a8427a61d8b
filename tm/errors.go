package tm

import (
	"errors"
	"fmt"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

var (
	// ErrInvalidConfig is matched by the errors of Config.Validate and New.
	ErrInvalidConfig = errors.New("tm: invalid config")
	// ErrInvalidArgument is returned for a bad name, XID or option; nothing
	// was sent to the coordinator.
	ErrInvalidArgument = errors.New("tm: invalid argument")
	// ErrTransactionExists is returned by WithGlobalTx with propagation Never
	// when the context already carries an XID.
	ErrTransactionExists = errors.New("tm: a global transaction is in progress, and the propagation is Never")
	// ErrNoTransaction is returned by WithGlobalTx with propagation Mandatory
	// when the context carries no XID.
	ErrNoTransaction = errors.New("tm: no global transaction is in progress, and the propagation is Mandatory")
	// ErrRolledBack is matched by a *RolledBackError: a commit ended in a
	// rollback.
	ErrRolledBack = errors.New("tm: global transaction was rolled back instead of committed")
	// ErrCommitted is returned by a rollback that found the transaction
	// already committing or committed.
	ErrCommitted = errors.New("tm: global transaction is already committed, it cannot be rolled back")
	// ErrPhase2Failed is matched by a *Phase2FailedError: the coordinator ran
	// out of its retry budget in phase 2 and an operator must act.
	ErrPhase2Failed = errors.New("tm: phase 2 failed")
	// ErrOutcomeUnknown is returned when the answer to a commit or rollback
	// was lost and the coordinator could not be asked for the status within
	// StatusPollTimeout. The transaction may have any outcome; ask again with
	// Manager.Status.
	ErrOutcomeUnknown = errors.New("tm: outcome of the global transaction is unknown")
	// ErrNotFound is returned when the coordinator does not know the XID:
	// never begun, or finished and cleaned up.
	ErrNotFound = errors.New("tm: global transaction not found by the coordinator")
	// ErrVotedNo is matched by the error of WithGlobalTx when a voter of a
	// three-phase transaction (ThreePhase) voted no: the transaction was
	// rolled back before its function ran.
	ErrVotedNo = errors.New("tm: a participant voted no in CanCommit")
	// ErrTxDone is returned by Tx.Commit and Tx.Rollback after the
	// transaction reached a known outcome.
	ErrTxDone = errors.New("tm: global transaction already committed or rolled back")
)

// RolledBackError says that a commit ended in a rollback: the coordinator
// had timed the transaction out, or had decided rollback, before the commit
// arrived. It matches ErrRolledBack. The business work must be retried as a
// whole.
type RolledBackError struct {
	XID string
	// Status is the rollback status the coordinator answered with.
	Status tcv1.GlobalStatus
}

func (e *RolledBackError) Error() string {
	return fmt.Sprintf("tm: global transaction %s was rolled back (%s) instead of committed: retry the whole transaction", e.XID, e.Status)
}

// Is makes errors.Is(err, ErrRolledBack) true.
func (e *RolledBackError) Is(target error) bool { return target == ErrRolledBack }

// Phase2FailedError says that the coordinator decided the transaction's
// outcome but gave up driving phase 2 after its retry budget
// (COMMIT_FAILED or ROLLBACK_FAILED). Some branches may not have finished;
// an operator must look at it (gtx tx show / gtx tx retry). It matches
// ErrPhase2Failed.
type Phase2FailedError struct {
	XID    string
	Status tcv1.GlobalStatus
}

func (e *Phase2FailedError) Error() string {
	return fmt.Sprintf("tm: global transaction %s is %s: phase 2 ran out of retries, an operator must inspect and retry it", e.XID, e.Status)
}

// Is makes errors.Is(err, ErrPhase2Failed) true.
func (e *Phase2FailedError) Is(target error) bool { return target == ErrPhase2Failed }
