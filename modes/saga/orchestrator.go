package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tm"
)

// Config configures an Orchestrator.
type Config struct {
	// TM begins and ends the sagas' global transactions.
	TM *tm.Manager
	// RM enlists each step as a SAGA branch. Its SAGA handler must be a
	// Handler over the same Registry (on this and every other instance).
	RM *rm.Manager
	// Registry holds the compensations; Run checks that each step's
	// compensation is in it.
	Registry *Registry
	// ResourceID is the resource the branches belong to; every instance that
	// can run the compensations serves it. New adds it to RM.
	ResourceID string
	// Timeout is the global transaction's timeout: past it the coordinator
	// rolls the saga back, compensating what was done, even when the
	// orchestrating process died. 0 takes the TM's default.
	Timeout time.Duration
	// Logger receives the Orchestrator's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports the first problem with c, as an error matching
// ErrInvalidConfig.
func (c *Config) Validate() error {
	switch {
	case c.TM == nil:
		return fmt.Errorf("%w: TM is nil: give the transaction manager that begins the sagas", ErrInvalidConfig)
	case c.RM == nil:
		return fmt.Errorf("%w: RM is nil: give the resource manager that enlists the steps", ErrInvalidConfig)
	case c.Registry == nil:
		return fmt.Errorf("%w: Registry is nil: give the registry of compensations", ErrInvalidConfig)
	case c.ResourceID == "":
		return fmt.Errorf("%w: ResourceID is empty: name the resource the saga branches belong to", ErrInvalidConfig)
	case c.Timeout < 0:
		return fmt.Errorf("%w: Timeout is %v: use 0 for the default or a positive duration", ErrInvalidConfig, c.Timeout)
	}
	return nil
}

// Orchestrator runs code sagas: each in a global transaction of its own,
// with each step enlisted as a SAGA branch so that the coordinator
// compensates the steps in reverse order when the saga fails, times out or
// its orchestrator dies.
type Orchestrator struct {
	cfg Config
	log *slog.Logger
}

// New returns an Orchestrator for cfg and adds cfg.ResourceID to cfg.RM as
// a SAGA resource.
func New(cfg Config) (*Orchestrator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.RM.AddResource(cfg.ResourceID, tcv1.BranchType_SAGA); err != nil {
		return nil, fmt.Errorf("saga: add resource %q: %w", cfg.ResourceID, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Orchestrator{cfg: cfg, log: log.With("component", "saga")}, nil
}

// Run runs s in a new global transaction. It returns nil when every step
// succeeded and the transaction committed. When a step fails on its last
// attempt, Run rolls the transaction back (the coordinator runs the
// compensations of the enlisted steps, newest first, the failed step
// included, retrying each until it succeeds) and returns an error matching
// ErrStepFailed and the action's error. A rollback the coordinator could not
// finish at once is still driven by it in the background.
func (o *Orchestrator) Run(ctx context.Context, s *Saga) error {
	if err := s.Validate(o.cfg.Registry); err != nil {
		return err
	}
	opts := []tm.Option{tm.WithPropagation(tm.RequiresNew)}
	if o.cfg.Timeout > 0 {
		opts = append(opts, tm.Timeout(o.cfg.Timeout))
	}
	return o.cfg.TM.WithGlobalTx(ctx, s.name, func(ctx context.Context) error {
		xid, _ := gtx.XIDFromContext(ctx)
		for _, g := range s.groups {
			if err := o.group(ctx, xid, g); err != nil {
				return err
			}
		}
		return nil
	}, opts...)
}

// group runs the steps of g, in parallel when there are several, and
// returns the first error once all have ended.
func (o *Orchestrator) group(ctx context.Context, xid string, g []Step) error {
	if len(g) == 1 {
		return o.step(ctx, xid, g[0])
	}
	errs := make([]error, len(g))
	var wg sync.WaitGroup
	for i, st := range g {
		wg.Go(func() { errs[i] = o.step(ctx, xid, st) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// step enlists st, then runs its action by its retry policy.
//
// The branch is registered BEFORE the action runs. Registering after would
// leave a window, between the action's effect and the registration, in
// which a crash of this process loses the compensation for good: the
// coordinator would roll back without knowing the step existed. Registering
// first closes it at the cost of "empty compensations": a compensation may
// run for an action that never ran or never finished, which it must accept.
func (o *Orchestrator) step(ctx context.Context, xid string, st Step) error {
	if st.Compensation != "" {
		data, err := json.Marshal(branchData{Step: st.Name, Compensation: st.Compensation, Data: st.Data})
		if err != nil {
			return fmt.Errorf("saga: encode step %q: %w", st.Name, err)
		}
		if _, err := o.cfg.RM.RegisterBranch(ctx, xid, tcv1.BranchType_SAGA, o.cfg.ResourceID, "", data); err != nil {
			return fmt.Errorf("saga: enlist step %q of %s: %w", st.Name, xid, err)
		}
	}
	call := Call{XID: xid, Step: st.Name, Key: Key(xid, st.Name), Data: st.Data}
	n := st.Retry.attempts()
	var err error
	for call.Attempt = 1; call.Attempt <= n; call.Attempt++ {
		if err = st.Action(ctx, call); err == nil {
			return nil
		}
		if isPermanent(err) || call.Attempt == n {
			break
		}
		o.log.DebugContext(ctx, "saga step failed, retrying", "xid", xid, "step", st.Name, "attempt", call.Attempt, "err", err)
		if serr := sleep(ctx, st.Retry.wait(call.Attempt)); serr != nil {
			err = errors.Join(err, serr)
			break
		}
	}
	return &StepError{Step: st.Name, Attempts: min(call.Attempt, n), Err: err}
}
