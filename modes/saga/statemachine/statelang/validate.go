package statelang

import (
	"errors"
	"fmt"
	"slices"
)

// MaxNameLen bounds the names of definitions and states: they are stored,
// and are part of idempotency keys.
const MaxNameLen = 128

// Validate reports every problem of d, each a *ValidationError naming the
// state and the field, joined in a stable order (definition fields first,
// then states by name).
func (d *Definition) Validate() error {
	v := &validator{d: d}
	v.definition()
	names := make([]string, 0, len(d.States))
	for name := range d.States {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		v.state(name, d.States[name])
	}
	return errors.Join(v.errs...)
}

type validator struct {
	d    *Definition
	errs []error
}

func (v *validator) add(state, field, format string, args ...any) {
	v.errs = append(v.errs, &ValidationError{Definition: v.d.Name, State: state, Field: field, Problem: fmt.Sprintf(format, args...)})
}

func (v *validator) definition() {
	d := v.d
	if d.Name == "" {
		v.add("", "Name", "is empty; name the definition")
	}
	if len(d.Name) > MaxNameLen {
		v.add("", "Name", "is %d bytes long; at most %d allowed", len(d.Name), MaxNameLen)
	}
	switch d.RecoverStrategy {
	case "", Compensate, Forward:
	default:
		v.add("", "RecoverStrategy", "is %q; use %q or %q", d.RecoverStrategy, Compensate, Forward)
	}
	if len(d.States) == 0 {
		v.add("", "States", "is empty; a definition needs at least one state")
	}
	if d.StartState == "" {
		v.add("", "StartState", "is empty; name the first state")
	} else {
		v.target("", "StartState", d.StartState)
	}
}

// target checks that a transition field names a forward state.
func (v *validator) target(state, field, next string) {
	s, ok := v.d.States[next]
	switch {
	case !ok || s == nil:
		v.add(state, field, "names state %q, which does not exist", next)
	case s.IsForCompensation:
		v.add(state, field, "names compensation state %q; compensation states are only reached through CompensateState", next)
	}
}

// forbid reports the fields set on s that its type does not take.
func (v *validator) forbid(name string, s *State, fields ...string) {
	set := map[string]bool{
		"Next":              s.Next != "",
		"ServiceName":       s.ServiceName != "",
		"ServiceMethod":     s.ServiceMethod != "",
		"CompensateState":   s.CompensateState != "",
		"IsForCompensation": s.IsForCompensation,
		"TimeoutSeconds":    s.TimeoutSeconds != 0,
		"Input":             s.Input != nil,
		"Output":            s.Output != nil,
		"Retry":             s.Retry != nil,
		"Catch":             s.Catch != nil,
		"Choices":           s.Choices != nil,
		"Default":           s.Default != "",
		"ErrorCode":         s.ErrorCode != "",
		"Message":           s.Message != "",
		"StateMachineName":  s.StateMachineName != "",
	}
	for _, f := range fields {
		if set[f] {
			v.add(name, f, "does not apply to a %s state", s.Type)
		}
	}
}

func (v *validator) state(name string, s *State) {
	if name == "" {
		v.add(name, "States", "has a state with an empty name")
	}
	if len(name) > MaxNameLen {
		v.add(name, "States", "the state's name is %d bytes long; at most %d allowed", len(name), MaxNameLen)
	}
	if s == nil {
		v.add(name, "Type", "the state is null")
		return
	}
	switch s.Type {
	case ServiceTask:
		v.serviceTask(name, s)
	case Choice:
		v.forbid(name, s, "Next", "ServiceName", "ServiceMethod", "CompensateState", "IsForCompensation", "TimeoutSeconds", "Input", "Output", "Retry", "Catch", "ErrorCode", "Message", "StateMachineName")
		if len(s.Choices) == 0 {
			v.add(name, "Choices", "is empty; a Choice needs at least one")
		}
		for i, c := range s.Choices {
			field := fmt.Sprintf("Choices[%d]", i)
			if _, err := ParseExpression(c.Expression); err != nil {
				v.add(name, field+".Expression", "%v", err)
			}
			if c.Next == "" {
				v.add(name, field+".Next", "is empty; name the state to go to")
			} else {
				v.target(name, field+".Next", c.Next)
			}
		}
		if s.Default != "" {
			v.target(name, "Default", s.Default)
		}
	case Succeed:
		v.forbid(name, s, "Next", "ServiceName", "ServiceMethod", "CompensateState", "IsForCompensation", "TimeoutSeconds", "Input", "Output", "Retry", "Catch", "Choices", "Default", "ErrorCode", "Message", "StateMachineName")
	case Fail:
		v.forbid(name, s, "Next", "ServiceName", "ServiceMethod", "CompensateState", "IsForCompensation", "TimeoutSeconds", "Input", "Output", "Retry", "Catch", "Choices", "Default", "StateMachineName")
	case CompensationTrigger:
		v.forbid(name, s, "ServiceName", "ServiceMethod", "CompensateState", "IsForCompensation", "TimeoutSeconds", "Input", "Output", "Retry", "Catch", "Choices", "Default", "ErrorCode", "Message", "StateMachineName")
		if s.Next != "" {
			v.target(name, "Next", s.Next)
		}
	case SubStateMachine:
		v.forbid(name, s, "ServiceName", "ServiceMethod", "CompensateState", "IsForCompensation", "TimeoutSeconds", "Retry", "Choices", "Default", "ErrorCode", "Message")
		if s.StateMachineName == "" {
			v.add(name, "StateMachineName", "is empty; name the definition to run")
		}
		if s.Next != "" {
			v.target(name, "Next", s.Next)
		}
		if _, ok := s.Input.(map[string]any); s.Input != nil && !ok {
			v.add(name, "Input", "must be an object: it becomes the child's context")
		}
		v.mapping(name, s)
		v.catch(name, s)
	case "":
		v.add(name, "Type", "is empty; use one of ServiceTask, Choice, Succeed, Fail, CompensationTrigger, SubStateMachine")
	default:
		v.add(name, "Type", "is %q; use one of ServiceTask, Choice, Succeed, Fail, CompensationTrigger, SubStateMachine", s.Type)
	}
}

func (v *validator) serviceTask(name string, s *State) {
	v.forbid(name, s, "Choices", "Default", "ErrorCode", "Message", "StateMachineName")
	if s.ServiceName == "" {
		v.add(name, "ServiceName", "is empty; name a service registered with the engine")
	}
	if s.TimeoutSeconds < 0 {
		v.add(name, "TimeoutSeconds", "is %v; use 0 (no bound) or a positive number", s.TimeoutSeconds)
	}
	if s.IsForCompensation {
		v.forbid(name, s, "Next", "CompensateState", "Catch", "Retry")
	} else {
		if s.Next != "" {
			v.target(name, "Next", s.Next)
		}
		if s.CompensateState != "" {
			c, ok := v.d.States[s.CompensateState]
			switch {
			case !ok || c == nil:
				v.add(name, "CompensateState", "names state %q, which does not exist", s.CompensateState)
			case c.Type != ServiceTask || !c.IsForCompensation:
				v.add(name, "CompensateState", "names state %q, which is not a ServiceTask with IsForCompensation: true", s.CompensateState)
			}
		}
		v.catch(name, s)
	}
	v.mapping(name, s)
	for i, r := range s.Retry {
		field := fmt.Sprintf("Retry[%d]", i)
		if r.IntervalSeconds < 0 {
			v.add(name, field+".IntervalSeconds", "is %v; it must not be negative", r.IntervalSeconds)
		}
		if r.MaxAttempts < 0 {
			v.add(name, field+".MaxAttempts", "is %d; it must not be negative", r.MaxAttempts)
		}
		if r.BackoffRate != 0 && r.BackoffRate < 1 {
			v.add(name, field+".BackoffRate", "is %v; use 0 (the default, 1.5) or at least 1", r.BackoffRate)
		}
	}
}

func (v *validator) catch(name string, s *State) {
	for i, c := range s.Catch {
		field := fmt.Sprintf("Catch[%d]", i)
		if len(c.Exceptions) == 0 {
			v.add(name, field+".Exceptions", "is empty; list error codes, or \"*\" for all")
		}
		if c.Next == "" {
			v.add(name, field+".Next", "is empty; name the state to go to")
		} else {
			v.target(name, field+".Next", c.Next)
		}
	}
}

func (v *validator) mapping(name string, s *State) {
	if err := checkTemplate(s.Input); err != nil {
		v.add(name, "Input", "%v", err)
	}
	keys := make([]string, 0, len(s.Output))
	for k := range s.Output {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "" {
			v.add(name, "Output", "has an empty variable name")
		}
		if _, err := ParsePath(s.Output[k]); err != nil {
			v.add(name, "Output."+k, "%v", err)
		}
	}
}
