package tcc

import (
	"encoding/json"
	"fmt"
)

// BranchContext is an action's context for one branch: the Try request and
// the values Try added. It is stored with the branch as JSON and handed to
// Confirm and Cancel. It is not safe for concurrent use.
type BranchContext[Req any] struct {
	XID      string
	BranchID int64
	// Action is the action's name.
	Action string
	// Request is Try's argument.
	Request Req

	values map[string]json.RawMessage
}

// Set records v (encoded as JSON) under key, for Confirm and Cancel. Only
// values set during Try are stored.
func (c *BranchContext[Req]) Set(key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: value %q of %s: %w", ErrInvalidArgument, key, c.Action, err)
	}
	if c.values == nil {
		c.values = make(map[string]json.RawMessage)
	}
	c.values[key] = raw
	return nil
}

// Get decodes the value under key into v (a pointer) and reports whether
// there was one.
func (c *BranchContext[Req]) Get(key string, v any) (bool, error) {
	raw, ok := c.values[key]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("%w: value %q of %s: %w", ErrBadActionContext, key, c.Action, err)
	}
	return true, nil
}

// storedContext is a branch's application data.
type storedContext struct {
	Request json.RawMessage            `json:"request"`
	Values  map[string]json.RawMessage `json:"values,omitempty"`
}

func encodeContext(req json.RawMessage, values map[string]json.RawMessage) ([]byte, error) {
	b, err := json.Marshal(storedContext{Request: req, Values: values})
	if err != nil {
		return nil, fmt.Errorf("%w: encode action context: %w", ErrInvalidArgument, err)
	}
	return b, nil
}
