package xa

import "errors"

var (
	// ErrInvalidConfig is matched by the errors of Config.Validate.
	ErrInvalidConfig = errors.New("xa: invalid config")
	// ErrXIDTooLong is returned by a transaction begun under an XID the
	// database cannot name (MySQL's gtrid holds 64 bytes); nothing is
	// registered or started.
	ErrXIDTooLong = errors.New("xa: xid too long for the database's xa identifier")
	// ErrAborted is returned by Commit of a PostgreSQL branch in which a
	// statement failed: the database aborted the transaction, so it is
	// rolled back instead of prepared.
	ErrAborted = errors.New("xa: transaction aborted by a failed statement")
	// ErrPrepare is wrapped by the error of a Commit whose prepare failed;
	// the branch is rolled back and reported failed.
	ErrPrepare = errors.New("xa: prepare failed")
	// ErrUnknownResource is returned by phase 2 for a resource ID no open
	// XA database of this process has; the coordinator retries, possibly
	// on another instance.
	ErrUnknownResource = errors.New("xa: unknown resource")
	// ErrHeuristicCommit is returned, unretryable, by the rollback of a
	// three-phase branch that the recovery loop committed alone past
	// Recover.PreCommitTimeout: the transaction's outcome is split, and the
	// coordinator marks it ROLLBACK_FAILED for an operator. Only the
	// process that committed it remembers (XA's heuristic commit).
	ErrHeuristicCommit = errors.New("xa: three-phase branch committed alone, but its transaction rolled back")
	// ErrDone is returned by statements run on a transaction that has
	// committed (prepared) or rolled back.
	ErrDone = errors.New("xa: transaction has already been committed or rolled back")
)
