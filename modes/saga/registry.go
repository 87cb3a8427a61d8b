package saga

import (
	"context"
	"fmt"
	"sync"
)

// Call is what an action or a compensation is handed.
type Call struct {
	// XID is the saga's global transaction.
	XID string
	// Step names the step.
	Step string
	// Key is the step's idempotency key, XID + "/" + Step: the same for the
	// action and its compensation, and for every retry of either. Use it as
	// the ID of what the step creates, or to deduplicate.
	Key string
	// Data is the step's data, as given in Step.Data.
	Data []byte
	// Attempt counts the action's attempts from 1. It is 0 in a
	// compensation, which the coordinator may run more than once.
	Attempt int
}

// Action is the forward work of a step. It must be idempotent by Call.Key:
// a retry, or a rerun after a crash, sends the same key again.
type Action func(ctx context.Context, c Call) error

// Compensation undoes a step. The coordinator calls it at least once, on any
// instance whose Registry holds its name, until it returns nil. It must be
// idempotent by Call.Key, and must succeed when the action never ran or
// never finished (an "empty compensation"): the branch is enlisted before
// the action runs.
type Compensation func(ctx context.Context, c Call) error

// Registry holds compensations by name. Every instance that may run
// compensations registers the same names at start-up, since the coordinator
// sends a rollback to any live instance of the saga's resource. A Registry
// is safe for concurrent use.
type Registry struct {
	mu sync.RWMutex
	m  map[string]Compensation
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{m: make(map[string]Compensation)}
}

// Register adds c under name. An empty name or a nil c is refused with
// ErrInvalidSaga, a name taken already with ErrDuplicateCompensation.
func (r *Registry) Register(name string, c Compensation) error {
	if name == "" || c == nil {
		return fmt.Errorf("%w: register needs a name and a compensation, got %q and nil=%t", ErrInvalidSaga, name, c == nil)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateCompensation, name)
	}
	r.m[name] = c
	return nil
}

// Lookup returns the compensation registered under name.
func (r *Registry) Lookup(name string) (Compensation, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.m[name]
	return c, ok
}
