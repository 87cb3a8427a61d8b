package statemachine

import "github.com/gtx-io/gtx/modes/saga/statemachine/statelang"

// The state language lives in package statelang; these names make this
// package usable on its own.
type (
	// Definition is a state machine in the state language.
	Definition = statelang.Definition
	// State is one state of a Definition.
	State = statelang.State
	// StateType is the type of a state.
	StateType = statelang.StateType
	// RecoverStrategy says what a restarted engine does with an instance
	// that was running forward.
	RecoverStrategy = statelang.RecoverStrategy
	// RetryRule retries a failed task by error code.
	RetryRule = statelang.RetryRule
	// CatchRule routes a task that failed for good by error code.
	CatchRule = statelang.CatchRule
	// ChoiceRule is one branch of a Choice.
	ChoiceRule = statelang.ChoiceRule
	// ValidationError is one problem of a definition, naming the state and
	// the field.
	ValidationError = statelang.ValidationError
)

// The state types and recover strategies.
const (
	ServiceTask         = statelang.ServiceTask
	Choice              = statelang.Choice
	Succeed             = statelang.Succeed
	Fail                = statelang.Fail
	CompensationTrigger = statelang.CompensationTrigger
	SubStateMachine     = statelang.SubStateMachine
	Compensate          = statelang.Compensate
	Forward             = statelang.Forward
)

// ErrInvalidDefinition is matched by every error of Parse and
// Definition.Validate.
var ErrInvalidDefinition = statelang.ErrInvalidDefinition

// Parse decodes and validates a definition in JSON or YAML; see
// statelang.Parse.
func Parse(data []byte) (*Definition, error) { return statelang.Parse(data) }
