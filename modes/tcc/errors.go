package tcc

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidConfig is matched by the errors of FenceConfig.Validate and
	// of the constructors given a bad configuration.
	ErrInvalidConfig = errors.New("tcc: invalid config")
	// ErrInvalidArgument is returned for bad input; nothing was changed.
	ErrInvalidArgument = errors.New("tcc: invalid argument")
	// ErrNoTransaction is returned by Action.Try when its context carries no
	// XID: call it inside a global transaction (tm.WithGlobalTx), or behind
	// the gtx interceptors of a caller that runs one.
	ErrNoTransaction = errors.New("tcc: no global transaction in context")
	// ErrTryRefused is matched by a *FenceError from Try when the branch
	// already has a fence row: its Cancel came first (the row is
	// suspended), or the same Try ran before. The business work did not run.
	ErrTryRefused = errors.New("tcc: try refused by the fence")
	// ErrNotTried is matched by a *FenceError from Confirm when the branch
	// has no fence row: its Try has not committed (yet). The coordinator
	// retries the Confirm.
	ErrNotTried = errors.New("tcc: confirm before try")
	// ErrFenceConflict is matched by a *FenceError when a branch was asked
	// for the opposite of its recorded outcome: Confirm after Cancel, or
	// Cancel after Confirm. Retrying cannot help; an operator must look.
	ErrFenceConflict = errors.New("tcc: fence conflict")
	// ErrBadActionContext is returned when a branch's application data is
	// not an action context this package wrote, or its request does not
	// decode into the action's request type.
	ErrBadActionContext = errors.New("tcc: bad action context")
	// ErrUnknownAction is returned for a phase-2 command whose resource ID
	// names no action registered with the Participant.
	ErrUnknownAction = errors.New("tcc: unknown action")
	// ErrActionExists is returned by Register for a name already taken.
	ErrActionExists = errors.New("tcc: action already registered")
	// ErrClosed is returned by the methods of a closed Fence.
	ErrClosed = errors.New("tcc: fence closed")
)

// FenceError reports a fence refusing a call. It matches ErrTryRefused,
// ErrNotTried or ErrFenceConflict.
type FenceError struct {
	// Op is the refused phase: "try", "confirm" or "cancel".
	Op       string
	XID      string
	BranchID int64
	// Status is the fence row found; FenceNone when there was none.
	Status FenceStatus

	kind error
}

func (e *FenceError) Error() string {
	switch e.kind {
	case ErrTryRefused:
		return fmt.Sprintf("tcc: try of %s branch %d refused: the fence row is already %s (a cancel or an earlier try came first); the business work did not run", e.XID, e.BranchID, e.Status)
	case ErrNotTried:
		return fmt.Sprintf("tcc: confirm of %s branch %d: no fence row, its try has not committed; the coordinator retries", e.XID, e.BranchID)
	default:
		return fmt.Sprintf("tcc: %s of %s branch %d conflicts with its fence row %s; an operator must reconcile the branch", e.Op, e.XID, e.BranchID, e.Status)
	}
}

// Is matches the sentinel of the refusal.
func (e *FenceError) Is(target error) bool { return target == e.kind }
