package xa

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm"
)

// resource is one database known to the coordinator by its resource ID. All
// connectors opened with the same ID share it; the last to close stops it.
type resource struct {
	cfg Config
	log *slog.Logger
	tag string
	// db runs phase 2 and recovery on the wrapped driver directly.
	db *sql.DB

	refs int
	// seen holds when the recovery loop first saw each prepared branch;
	// only the loop touches it.
	seen map[branchXID]time.Time
	// alone holds the three-phase branches the recovery loop committed
	// without a coordinator, so that a rollback command for one, once a
	// coordinator is back, reports the heuristic commit instead of "done".
	aloneMu sync.Mutex
	alone   map[branchXID]bool
	stop    chan struct{}
	done    chan struct{}
}

// registry holds the open resources by ID, for the phase-2 handler to find:
// the explicit registry the XA mode keeps, as AT does.
var registry = struct {
	mu        sync.Mutex
	resources map[string]*resource
	handled   map[*rm.Manager]bool
}{resources: map[string]*resource{}, handled: map[*rm.Manager]bool{}}

// acquire returns the resource of cfg.ResourceID, opening it on first use.
func acquire(cfg Config, raw *sql.DB) (*resource, error) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if r := registry.resources[cfg.ResourceID]; r != nil {
		if r.cfg.Manager != cfg.Manager {
			return nil, fmt.Errorf("%w: resource %s is open already with another rm.Manager", ErrInvalidConfig, cfg.ResourceID)
		}
		r.refs++
		raw.Close()
		return r, nil
	}
	if err := cfg.Manager.AddResource(cfg.ResourceID, tcv1.BranchType_XA); err != nil {
		return nil, fmt.Errorf("xa: announce resource %s: %w", cfg.ResourceID, err)
	}
	if !registry.handled[cfg.Manager] {
		cfg.Manager.Handle(tcv1.BranchType_XA, handler{})
		registry.handled[cfg.Manager] = true
	}
	raw.SetMaxOpenConns(cfg.Phase2MaxOpenConns)
	raw.SetMaxIdleConns(cfg.Phase2MaxOpenConns)
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	r := &resource{
		cfg:   cfg,
		log:   log.With("component", "gtx.xa", "resource_id", cfg.ResourceID),
		tag:   resourceTag(cfg.ResourceID),
		db:    raw,
		refs:  1,
		seen:  map[branchXID]time.Time{},
		alone: map[branchXID]bool{},
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	registry.resources[cfg.ResourceID] = r
	go r.recoverLoop()
	return r, nil
}

// release drops one reference; the last stops the recovery loop and closes
// the phase-2 pool.
func (r *resource) release() error {
	registry.mu.Lock()
	r.refs--
	last := r.refs == 0
	if last {
		delete(registry.resources, r.cfg.ResourceID)
	}
	registry.mu.Unlock()
	if !last {
		return nil
	}
	close(r.stop)
	<-r.done
	return r.db.Close()
}

func lookup(id string) (*resource, error) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	r := registry.resources[id]
	if r == nil {
		return nil, fmt.Errorf("%w: %s is not open in this process", ErrUnknownResource, id)
	}
	return r, nil
}

// handler runs phase 2 of XA branches for every open resource.
type handler struct{}

// Commit commits the prepared branch on the resource's own pool.
func (handler) Commit(ctx context.Context, b rm.Branch) error {
	r, id, err := branchOf(b)
	if err != nil {
		return err
	}
	return r.finish(ctx, id, true)
}

// Rollback rolls the prepared branch back on the resource's own pool.
func (handler) Rollback(ctx context.Context, b rm.Branch) error {
	r, id, err := branchOf(b)
	if err != nil {
		return err
	}
	return r.finish(ctx, id, false)
}

func branchOf(b rm.Branch) (*resource, branchXID, error) {
	r, err := lookup(b.ResourceID)
	if err != nil {
		return nil, branchXID{}, err
	}
	id, err := newBranchXID(b.XID, b.BranchID, b.ResourceID, bytes.Equal(b.ApplicationData, threePhaseData))
	if err != nil {
		return nil, branchXID{}, rm.Unretryable(err)
	}
	return r, id, nil
}

// finish commits or rolls back a prepared branch. A branch the database
// does not hold prepared was finished before (delivery is at least once),
// or, for a rollback, never prepared: both are done.
func (r *resource) finish(ctx context.Context, id branchXID, commit bool) error {
	r.aloneMu.Lock()
	alone := r.alone[id]
	if alone && commit {
		delete(r.alone, id)
	}
	r.aloneMu.Unlock()
	if alone && !commit {
		return rm.Unretryable(fmt.Errorf("%w: branch %s was committed while no coordinator answered, and its transaction was rolled back", ErrHeuristicCommit, id))
	}
	d := r.cfg.Dialect
	var err error
	if commit {
		err = d.commitPrepared(ctx, r.db, id)
	} else {
		err = d.rollbackPrepared(ctx, r.db, id)
	}
	if errors.Is(err, errNotPrepared) {
		return nil
	}
	if err != nil {
		what := "rollback"
		if commit {
			what = "commit"
		}
		return fmt.Errorf("xa: %s of branch %s: %w", what, id, err)
	}
	return nil
}

// recoverLoop resolves the resource's prepared branches at once and then
// every Recover.Interval, until the resource is released.
func (r *resource) recoverLoop() {
	defer close(r.done)
	t := time.NewTicker(r.cfg.Recover.Interval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Recover.Timeout)
		go func() {
			select {
			case <-r.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := r.recoverOnce(ctx); err != nil {
			r.log.Warn("recovering prepared branches failed; trying again later", "err", err)
		}
		cancel()
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
	}
}

// decision is what the coordinator's status means for a prepared branch.
type decision int

const (
	undecided decision = iota
	commit
	rollback
)

// decisionOf maps a global status to what a prepared branch of it must do.
func decisionOf(s tcv1.GlobalStatus) decision {
	switch {
	case s.IsCommitDecided():
		return commit
	case s.IsRollbackDecided():
		return rollback
	}
	return undecided
}

// answer is what the coordinator said about one global transaction.
type answer struct {
	status   tcv1.GlobalStatus
	notFound bool
	err      error
}

// verdict is what the recovery loop does with one prepared branch.
type verdict struct {
	id       branchXID
	decision decision
}

// plan decides what to do with each prepared branch from the coordinator's
// answers about their global transactions. A branch seen for the first
// time is only noted: the coordinator is likely finishing it this moment.
// From the second sighting on, what is decided is committed or rolled
// back, what is in BEGIN or could not be asked is left, and a branch whose
// transaction the coordinator does not know is rolled back once grace has
// passed since its first sighting. A branch of a three-phase transaction
// is precommitted once prepared: when no coordinator has answered for it
// since preCommitTimeout after its first sighting, it is committed, as the
// protocol prescribes. seen holds the first sightings; plan updates it and
// drops the branches no longer prepared. It does no I/O.
func plan(prepared []branchXID, answers map[string]answer, seen map[branchXID]time.Time, now time.Time, grace, preCommitTimeout time.Duration) []verdict {
	listed := make(map[branchXID]bool, len(prepared))
	var out []verdict
	for _, id := range prepared {
		listed[id] = true
		first, ok := seen[id]
		if !ok {
			seen[id] = now
			continue
		}
		a := answers[id.xid]
		switch {
		case a.notFound:
			if now.Sub(first) >= grace {
				out = append(out, verdict{id: id, decision: rollback})
			}
		case a.err != nil:
			if id.threePhase && now.Sub(first) >= preCommitTimeout {
				out = append(out, verdict{id: id, decision: commit})
			}
		default:
			if d := decisionOf(a.status); d != undecided {
				out = append(out, verdict{id: id, decision: d})
			}
		}
	}
	for id := range seen {
		if !listed[id] {
			delete(seen, id)
		}
	}
	return out
}

// recoverOnce lists the prepared branches, asks the coordinator about
// their transactions and carries out plan's verdicts.
func (r *resource) recoverOnce(ctx context.Context) error {
	prepared, err := r.cfg.Dialect.listPrepared(ctx, r.db, r.tag)
	if err != nil {
		return fmt.Errorf("xa: list prepared branches: %w", err)
	}
	answers := make(map[string]answer)
	var errs []error
	for _, id := range prepared {
		if _, asked := answers[id.xid]; asked {
			continue
		}
		if _, seen := r.seen[id]; !seen {
			// plan only notes a first sighting.
			continue
		}
		resp, err := r.cfg.Status.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: id.xid})
		switch {
		case status.Code(err) == codes.NotFound:
			answers[id.xid] = answer{notFound: true}
		case err != nil:
			answers[id.xid] = answer{err: err}
			errs = append(errs, fmt.Errorf("xa: status of %s: %w", id.xid, err))
		default:
			answers[id.xid] = answer{status: resp.GetStatus()}
		}
	}
	for _, v := range plan(prepared, answers, r.seen, r.cfg.now(), r.cfg.Recover.UnknownGrace, r.cfg.Recover.PreCommitTimeout) {
		switch a := answers[v.id.xid]; {
		case a.notFound:
			r.log.Warn("rolling back a prepared branch the coordinator does not know", "branch", v.id.String(), "seen_since", r.seen[v.id])
		case a.err != nil:
			r.log.Warn("committing a precommitted three-phase branch alone: no coordinator answered", "branch", v.id.String(), "seen_since", r.seen[v.id], "err", a.err)
		}
		if err := r.finish(ctx, v.id, v.decision == commit); err != nil {
			errs = append(errs, err)
			continue
		}
		if answers[v.id.xid].err != nil {
			r.aloneMu.Lock()
			r.alone[v.id] = true
			r.aloneMu.Unlock()
		}
		delete(r.seen, v.id)
		r.log.Info("recovered a prepared branch", "branch", v.id.String(), "commit", v.decision == commit)
	}
	return errors.Join(errs...)
}
