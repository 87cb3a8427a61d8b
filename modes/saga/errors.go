package saga

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidConfig is matched by the errors of Config.Validate and New.
	ErrInvalidConfig = errors.New("saga: invalid config")
	// ErrInvalidSaga is matched by the errors of Saga.Validate: a saga with
	// no step, a step with no name, no action or a duplicate name, or a
	// compensation that is not registered.
	ErrInvalidSaga = errors.New("saga: invalid saga")
	// ErrDuplicateCompensation is returned by Registry.Register for a name
	// that is registered already.
	ErrDuplicateCompensation = errors.New("saga: compensation registered twice")
	// ErrUnknownCompensation is returned when a branch names a compensation
	// that this instance's Registry does not hold. The coordinator retries
	// it, possibly on another instance.
	ErrUnknownCompensation = errors.New("saga: unknown compensation")
	// ErrBadBranchData is returned by the Handler for application data it
	// cannot decode; retrying cannot fix it.
	ErrBadBranchData = errors.New("saga: malformed branch data")
	// ErrStepFailed is matched by a *StepError.
	ErrStepFailed = errors.New("saga: step failed")
)

// StepError says that a step's action failed on its last attempt; the saga
// was rolled back and its completed steps compensated by the coordinator.
// It matches ErrStepFailed and unwraps to the action's last error.
type StepError struct {
	// Step names the failed step.
	Step string
	// Attempts is how many times its action ran.
	Attempts int
	// Err is the action's last error.
	Err error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("saga: step %q failed after %d attempt(s): %v", e.Step, e.Attempts, e.Err)
}

// Is makes errors.Is(err, ErrStepFailed) true.
func (e *StepError) Is(target error) bool { return target == ErrStepFailed }

// Unwrap returns the action's last error.
func (e *StepError) Unwrap() error { return e.Err }

// permanent marks an action error that must not be retried.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err, returned by an Action, as a failure that retrying
// cannot fix: the step fails at once, whatever its RetryPolicy. Permanent(nil)
// is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
