package saga

import "fmt"

// Step is one step of a saga: an action and the name of its compensation.
type Step struct {
	// Name identifies the step within its saga; with the XID it makes the
	// idempotency key.
	Name string
	// Action does the step's work.
	Action Action
	// Compensation names the Compensation, in the Registry of every
	// instance, that undoes the action. Empty means the step needs no
	// compensation (a read, a notification); it is not enlisted.
	Compensation string
	// Data travels with the step: handed to the action and, through the
	// coordinator, to the compensation. Keep it small (an order ID); it is
	// stored with the branch.
	Data []byte
	// Retry is the action's forward-retry policy.
	Retry RetryPolicy
}

// Saga is a named sequence of groups of steps. The steps of a group run in
// parallel; a group starts when the one before it finished. Build it with
// Define, Then and Parallel; a Saga is not changed by Run and may run many
// times, concurrently.
type Saga struct {
	name   string
	groups [][]Step
}

// Define returns an empty saga named name; the name is the global transaction's
// name, for operators.
func Define(name string) *Saga {
	return &Saga{name: name}
}

// Name returns the saga's name.
func (s *Saga) Name() string { return s.name }

// Then appends a step that runs alone, after every step before it.
func (s *Saga) Then(step Step) *Saga {
	s.groups = append(s.groups, []Step{step})
	return s
}

// Parallel appends a group of steps that run at the same time, after every
// step before them. The saga fails if any of them fails, once all of them
// have ended.
func (s *Saga) Parallel(steps ...Step) *Saga {
	s.groups = append(s.groups, append([]Step(nil), steps...))
	return s
}

// Validate reports the first problem with s, as an error matching
// ErrInvalidSaga. A non-nil reg must hold every compensation the steps name.
func (s *Saga) Validate(reg *Registry) error {
	if s.name == "" {
		return fmt.Errorf("%w: empty name: give the saga a name operators recognize", ErrInvalidSaga)
	}
	if len(s.groups) == 0 {
		return fmt.Errorf("%w: saga %q has no step", ErrInvalidSaga, s.name)
	}
	seen := make(map[string]bool)
	for gi, g := range s.groups {
		if len(g) == 0 {
			return fmt.Errorf("%w: saga %q: group %d is an empty Parallel", ErrInvalidSaga, s.name, gi)
		}
		for _, st := range g {
			switch {
			case st.Name == "":
				return fmt.Errorf("%w: saga %q: a step in group %d has no name", ErrInvalidSaga, s.name, gi)
			case seen[st.Name]:
				return fmt.Errorf("%w: saga %q: step name %q is used twice", ErrInvalidSaga, s.name, st.Name)
			case st.Action == nil:
				return fmt.Errorf("%w: saga %q: step %q has no action", ErrInvalidSaga, s.name, st.Name)
			}
			if err := st.Retry.Validate(); err != nil {
				return fmt.Errorf("saga %q: step %q: %w", s.name, st.Name, err)
			}
			if reg != nil && st.Compensation != "" {
				if _, ok := reg.Lookup(st.Compensation); !ok {
					return fmt.Errorf("%w: saga %q: step %q names compensation %q, which is not registered", ErrInvalidSaga, s.name, st.Name, st.Compensation)
				}
			}
			seen[st.Name] = true
		}
	}
	return nil
}
