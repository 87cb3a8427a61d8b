package statelang

import (
	"errors"
	"fmt"
)

// ErrInvalidDefinition is matched by every error of Parse and
// Definition.Validate, *ValidationError included.
var ErrInvalidDefinition = errors.New("statelang: invalid definition")

// ValidationError is one problem of a definition, naming the state (empty
// for the definition's own fields) and the field. It matches
// ErrInvalidDefinition.
type ValidationError struct {
	Definition string
	State      string
	Field      string
	Problem    string
}

func (e *ValidationError) Error() string {
	if e.State == "" {
		return fmt.Sprintf("statelang: definition %q: field %s: %s", e.Definition, e.Field, e.Problem)
	}
	return fmt.Sprintf("statelang: definition %q: state %q: field %s: %s", e.Definition, e.State, e.Field, e.Problem)
}

// Is makes errors.Is(err, ErrInvalidDefinition) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidDefinition }
