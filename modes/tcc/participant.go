package tcc

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm"
)

// Participant is the TCC side of a service: the registry of its actions
// and the rm.Handler that runs their Confirm and Cancel when the
// coordinator sends them over the resource manager's stream. Each action is
// a resource of the rm.Manager, named after the action, so the coordinator
// sends its phase 2 to any live instance that registered it.
type Participant struct {
	rm  *rm.Manager
	log *slog.Logger

	mu      sync.RWMutex
	actions map[string]phase2
}

// phase2 is what the Participant needs of an Action, whatever its request
// type.
type phase2 interface {
	confirm(ctx context.Context, b rm.Branch) error
	cancel(ctx context.Context, b rm.Branch) error
}

// NewParticipant returns a Participant for m and sets it as m's handler of
// TCC branches. Like rm.Manager.Handle, it panics when m has a TCC handler
// already: a Manager has one Participant. logger may be nil for
// slog.Default().
func NewParticipant(m *rm.Manager, logger *slog.Logger) *Participant {
	if m == nil {
		panic("tcc: nil *rm.Manager")
	}
	if logger == nil {
		logger = slog.Default()
	}
	p := &Participant{rm: m, log: logger.With("component", "gtx.tcc"), actions: make(map[string]phase2)}
	m.Handle(tcv1.BranchType_TCC, p)
	return p
}

func (p *Participant) add(name string, a phase2) error {
	p.mu.Lock()
	if _, ok := p.actions[name]; ok {
		p.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrActionExists, name)
	}
	p.actions[name] = a
	p.mu.Unlock()
	if err := p.rm.AddResource(name, tcv1.BranchType_TCC); err != nil {
		p.mu.Lock()
		delete(p.actions, name)
		p.mu.Unlock()
		return fmt.Errorf("tcc: register action %q with the resource manager: %w", name, err)
	}
	return nil
}

func (p *Participant) action(b rm.Branch) (phase2, error) {
	p.mu.RLock()
	a := p.actions[b.ResourceID]
	p.mu.RUnlock()
	if a == nil {
		return nil, fmt.Errorf("%w: %q (%s branch %d): register it on this instance", ErrUnknownAction, b.ResourceID, b.XID, b.BranchID)
	}
	return a, nil
}

// Commit runs the Confirm of the branch's action; the rm.Manager calls it.
func (p *Participant) Commit(ctx context.Context, b rm.Branch) error {
	a, err := p.action(b)
	if err != nil {
		return err
	}
	return a.confirm(ctx, b)
}

// Rollback runs the Cancel of the branch's action; the rm.Manager calls it.
func (p *Participant) Rollback(ctx context.Context, b rm.Branch) error {
	a, err := p.action(b)
	if err != nil {
		return err
	}
	return a.cancel(ctx, b)
}
