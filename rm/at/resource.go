package at

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm"
)

// resource is one database known to the coordinator by its resource ID. All
// connectors opened with the same ID share it; the last to close stops it.
type resource struct {
	cfg   Config
	log   *slog.Logger
	cache *metaCache
	undo  undoStore
	// db runs phase 2 and the sweeper on the wrapped driver directly, with
	// at most cfg.Phase2MaxOpenConns connections.
	db *sql.DB

	refs int
	// afterRegister, when set by a test, runs between branch registration
	// and the undo log insert.
	afterRegister func(xid string, branchID int64)
	pending       chan branchKey
	sweep         *sweeper
	stop          chan struct{}
	done          chan struct{}
}

// registry holds the open resources by ID, for the phase-2 handler to find:
// the explicit registry the AT mode keeps, like database/sql's drivers.
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
	if err := cfg.Manager.AddResource(cfg.ResourceID, tcv1.BranchType_AT); err != nil {
		return nil, fmt.Errorf("at: announce resource %s: %w", cfg.ResourceID, err)
	}
	if !registry.handled[cfg.Manager] {
		cfg.Manager.Handle(tcv1.BranchType_AT, handler{})
		registry.handled[cfg.Manager] = true
	}
	raw.SetMaxOpenConns(cfg.Phase2MaxOpenConns)
	raw.SetMaxIdleConns(cfg.Phase2MaxOpenConns)
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	r := &resource{
		cfg:     cfg,
		log:     log.With("resource_id", cfg.ResourceID),
		cache:   newMetaCache(cfg.MetadataTTL),
		undo:    undoStore{d: cfg.Dialect, table: cfg.UndoTable},
		db:      raw,
		refs:    1,
		pending: make(chan branchKey, 16*cfg.CleanupBatch),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	registry.resources[cfg.ResourceID] = r
	go r.cleanup()
	r.sweep = startSweeper(cfg.Sweep, cfg.Dialect, cfg.UndoTable, raw, r.log)
	return r, nil
}

// release drops one reference; the last stops the sweeper and the cleanup,
// flushing what is queued, and closes the phase-2 pool.
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
	r.sweep.stop()
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

// cleanup deletes committed branches' undo logs in batches.
func (r *resource) cleanup() {
	defer close(r.done)
	t := time.NewTicker(r.cfg.CleanupInterval)
	defer t.Stop()
	var batch []branchKey
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := r.undo.deleteUndo(ctx, r.db, batch)
		cancel()
		if err != nil {
			// The rows stay; the next flush tries again.
			r.log.Warn("deleting undo logs of committed branches failed", "count", len(batch), "err", err)
			if len(batch) > 4*r.cfg.CleanupBatch {
				r.log.Error("dropping undo log deletions after repeated failures; the rows stay in the undo table", "count", len(batch))
				batch = batch[:0]
			}
			return
		}
		batch = batch[:0]
	}
	for {
		select {
		case b := <-r.pending:
			batch = append(batch, b)
			if len(batch) >= r.cfg.CleanupBatch {
				flush()
			}
		case <-t.C:
			flush()
		case <-r.stop:
			for {
				select {
				case b := <-r.pending:
					batch = append(batch, b)
				default:
					flush()
					return
				}
			}
		}
	}
}

// handler runs phase 2 of AT branches for every open resource.
type handler struct{}

// Commit queues the branch's undo log for deletion: the local transaction
// committed in phase 1 already.
func (handler) Commit(ctx context.Context, b rm.Branch) error {
	r, err := lookup(b.ResourceID)
	if err != nil {
		return err
	}
	select {
	case r.pending <- branchKey{xid: b.XID, branchID: b.BranchID}:
		return nil
	default:
		return r.undo.deleteUndo(ctx, r.db, []branchKey{{xid: b.XID, branchID: b.BranchID}})
	}
}

// Rollback undoes the branch from its undo log; a dirty write is reported
// as unretryable, with the rows.
func (handler) Rollback(ctx context.Context, b rm.Branch) error {
	r, err := lookup(b.ResourceID)
	if err != nil {
		return err
	}
	err = r.undo.rollback(ctx, r.db, b.XID, b.BranchID)
	var dirty *DirtyWriteError
	if errors.As(err, &dirty) {
		r.log.Error("rollback found a dirty write and stopped", "xid", b.XID, "branch_id", b.BranchID, "err", err)
		return rm.Unretryable(err)
	}
	return err
}
