package statelang

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// StateType is the type of a state.
type StateType string

// The state types.
const (
	// ServiceTask calls a service (a Go function, a gRPC method or a NATS
	// JetStream step). A ServiceTask with IsForCompensation set is a
	// compensation state: reached only as another task's CompensateState.
	ServiceTask StateType = "ServiceTask"
	// Choice picks the Next state by the first Choices expression that
	// holds, or Default.
	Choice StateType = "Choice"
	// Succeed ends the instance successfully.
	Succeed StateType = "Succeed"
	// Fail ends the instance as failed, with ErrorCode and Message.
	Fail StateType = "Fail"
	// CompensationTrigger compensates every task run so far, newest first,
	// then goes to Next (usually a Fail state) or ends the instance as
	// failed.
	CompensationTrigger StateType = "CompensationTrigger"
	// SubStateMachine runs another definition as a child instance in the
	// same global transaction.
	SubStateMachine StateType = "SubStateMachine"
)

// RecoverStrategy says what a restarted engine does with an instance that
// was running forward when the engine stopped.
type RecoverStrategy string

// The recover strategies.
const (
	// Compensate compensates what the instance did (the default).
	Compensate RecoverStrategy = "Compensate"
	// Forward carries on: a task that was in flight runs again with the
	// same idempotency key (a NATS step resumes waiting for its reply).
	Forward RecoverStrategy = "Forward"
)

// Definition is a state machine in the state language. Decode one with
// Parse; an engine takes it with Engine.Register.
type Definition struct {
	// Name identifies the definition; instances and SubStateMachine states
	// refer to it.
	Name string `json:"Name"`
	// Comment is for people.
	Comment string `json:"Comment,omitempty"`
	// Version is for people and operators.
	Version string `json:"Version,omitempty"`
	// StartState names the first state.
	StartState string `json:"StartState"`
	// RecoverStrategy is Compensate (the default) or Forward.
	RecoverStrategy RecoverStrategy `json:"RecoverStrategy,omitempty"`
	// States holds the states by name.
	States map[string]*State `json:"States"`
}

// State is one state. Which fields apply depends on Type; Validate rejects
// fields a type does not take.
type State struct {
	Type    StateType `json:"Type"`
	Comment string    `json:"Comment,omitempty"`
	// Next names the state that follows (ServiceTask, SubStateMachine,
	// CompensationTrigger). A ServiceTask or SubStateMachine without Next
	// ends the instance successfully.
	Next string `json:"Next,omitempty"`

	// ServiceName names a service registered with the engine, and
	// ServiceMethod the method it is asked for (ServiceTask).
	ServiceName   string `json:"ServiceName,omitempty"`
	ServiceMethod string `json:"ServiceMethod,omitempty"`
	// CompensateState names the compensation state that undoes this task.
	CompensateState string `json:"CompensateState,omitempty"`
	// IsForCompensation marks a compensation state.
	IsForCompensation bool `json:"IsForCompensation,omitempty"`
	// TimeoutSeconds bounds one attempt of a task; past it the attempt
	// fails with the error code "Timeout". 0 means no bound (a NATS step
	// then waits for its reply as long as it takes).
	TimeoutSeconds float64 `json:"TimeoutSeconds,omitempty"`
	// Input is the task's input: any JSON value, in which every string
	// that starts with "$" is a path into the instance's context, replaced
	// by the value found there. Absent means the whole context.
	Input any `json:"Input,omitempty"`
	// Output maps context variables to paths into the task's result ("$"
	// is the whole result); each is set in the context when the task
	// succeeds.
	Output map[string]string `json:"Output,omitempty"`
	// Retry lists retry rules, tried in order against a failed attempt.
	Retry []RetryRule `json:"Retry,omitempty"`
	// Catch lists where to go when a task fails for good, by error code.
	Catch []CatchRule `json:"Catch,omitempty"`

	// Choices are tried in order (Choice).
	Choices []ChoiceRule `json:"Choices,omitempty"`
	// Default is where a Choice goes when no expression holds.
	Default string `json:"Default,omitempty"`

	// ErrorCode and Message describe the failure (Fail).
	ErrorCode string `json:"ErrorCode,omitempty"`
	Message   string `json:"Message,omitempty"`

	// StateMachineName names the child definition (SubStateMachine).
	StateMachineName string `json:"StateMachineName,omitempty"`
}

// RetryRule retries a failed attempt whose error code is in Exceptions.
type RetryRule struct {
	// Exceptions lists error codes; "*" matches every code. Empty means
	// every code.
	Exceptions []string `json:"Exceptions,omitempty"`
	// IntervalSeconds is the wait before the first retry.
	IntervalSeconds float64 `json:"IntervalSeconds,omitempty"`
	// MaxAttempts is the number of retries (not counting the first
	// attempt); 0 means 3.
	MaxAttempts int `json:"MaxAttempts,omitempty"`
	// BackoffRate multiplies the wait after each retry; 0 means 1.5.
	BackoffRate float64 `json:"BackoffRate,omitempty"`
}

// CatchRule sends a task that failed for good with an error code in
// Exceptions to Next. The failure is put in the context under "Error" as
// {"code": ..., "message": ...}.
type CatchRule struct {
	// Exceptions lists error codes; "*" matches every code.
	Exceptions []string `json:"Exceptions"`
	// Next names the state to go to.
	Next string `json:"Next"`
}

// ChoiceRule goes to Next when Expression holds. See the package
// documentation for the expression syntax.
type ChoiceRule struct {
	Expression string `json:"Expression"`
	Next       string `json:"Next"`
}

// maxDefinitionSize bounds what Parse reads.
const maxDefinitionSize = 1 << 20

// Parse decodes a definition in JSON or YAML (JSON when the first
// non-blank byte is '{') and validates it. Unknown fields are errors. A
// decoding problem matches ErrInvalidDefinition; validation problems are
// *ValidationError values joined together, each naming the state and the
// field.
func Parse(data []byte) (*Definition, error) {
	if len(data) > maxDefinitionSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d allowed", ErrInvalidDefinition, len(data), maxDefinitionSize)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: empty document", ErrInvalidDefinition)
	}
	if trimmed[0] != '{' {
		var doc any
		if err := yaml.Unmarshal(trimmed, &doc); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidDefinition, err)
		}
		j, err := json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("%w: the yaml document does not map to JSON (keys must be strings): %v", ErrInvalidDefinition, err)
		}
		trimmed = j
	}
	var raw any
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDefinition, err)
	}
	if err := checkNames(raw, reflect.TypeFor[Definition](), ""); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var d Definition
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDefinition, err)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

// checkNames reports the first object key in v that names no field of t
// exactly: encoding/json matches names without regard to case, the state
// language does not.
func checkNames(v any, t reflect.Type, at string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil // a type mismatch, which decoding reports
		}
		for key, val := range obj {
			f, ok := fieldByName(t, key)
			if !ok {
				hint := ""
				if g, ok := fieldByFold(t, key); ok {
					hint = fmt.Sprintf(" (names are case-sensitive: %q)", g)
				}
				return fmt.Errorf("%w: %sunknown field %q%s", ErrInvalidDefinition, at, key, hint)
			}
			if err := checkNames(val, f.Type, at+key+": "); err != nil {
				return err
			}
		}
	case reflect.Map:
		if obj, ok := v.(map[string]any); ok {
			for key, val := range obj {
				if err := checkNames(val, t.Elem(), at+key+": "); err != nil {
					return err
				}
			}
		}
	case reflect.Slice:
		if arr, ok := v.([]any); ok {
			for i, val := range arr {
				if err := checkNames(val, t.Elem(), fmt.Sprintf("%s[%d]: ", strings.TrimSuffix(at, ": "), i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// jsonName is the name a field has in the state language.
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

func fieldByName(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); jsonName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func fieldByFold(t reflect.Type, key string) (string, bool) {
	for i := range t.NumField() {
		if n := jsonName(t.Field(i)); strings.EqualFold(n, key) {
			return n, true
		}
	}
	return "", false
}
