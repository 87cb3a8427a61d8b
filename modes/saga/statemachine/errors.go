package statemachine

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidConfig is matched by the errors of Config.Validate and New.
	ErrInvalidConfig = errors.New("statemachine: invalid config")
	// ErrUnknownDefinition is returned for an instance or a SubStateMachine
	// naming a definition the engine was not given.
	ErrUnknownDefinition = errors.New("statemachine: unknown definition")
	// ErrUnknownService is returned when a ServiceTask names a service the
	// engine was not given.
	ErrUnknownService = errors.New("statemachine: unknown service")
	// ErrInstanceNotFound is returned for an instance ID the store does
	// not hold.
	ErrInstanceNotFound = errors.New("statemachine: instance not found")
	// ErrClosed is returned by the methods of a closed Engine, and by Wait
	// when the engine closes before the instance ends.
	ErrClosed = errors.New("statemachine: engine closed")
	// ErrNotStarted is returned by methods that need Engine.Start first.
	ErrNotStarted = errors.New("statemachine: engine not started")
)

// Error codes the engine gives failures that carry none. Retry and Catch
// rules match them like any other code.
const (
	// CodeError is the code of a service error that is not a *TaskError.
	CodeError = "Error"
	// CodeTimeout is the code of an attempt that ran past TimeoutSeconds.
	CodeTimeout = "Timeout"
	// CodeNoChoice is the code of a Choice where nothing held and there is
	// no Default.
	CodeNoChoice = "NoChoice"
	// CodeSubStateMachineFailed is the code of a failed child instance.
	CodeSubStateMachineFailed = "SubStateMachineFailed"
	// CodeInput is the code of an Input or Output mapping that failed.
	CodeInput = "InputOutput"
)

// TaskError is a service failure with a code that Retry and Catch rules
// match on. Services return one (see Errorf); a NATS step's reply carries
// one in its headers.
type TaskError struct {
	Code    string
	Message string
}

func (e *TaskError) Error() string { return e.Code + ": " + e.Message }

// Errorf returns a *TaskError with code and a formatted message.
func Errorf(code, format string, args ...any) error {
	return &TaskError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// codeOf returns the code of err: its *TaskError's code, or CodeError.
func codeOf(err error) string {
	var te *TaskError
	if errors.As(err, &te) && te.Code != "" {
		return te.Code
	}
	return CodeError
}

// FailedError is returned by Engine.Run and Engine.Wait for an instance
// that ended as failed (compensated, when there was anything to undo).
type FailedError struct {
	InstanceID string
	Code       string
	Message    string
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("statemachine: instance %s failed: %s: %s", e.InstanceID, e.Code, e.Message)
}
