package at

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// StatusQuerier asks the coordinator for the status of a global
// transaction. tcv1.CoordinatorClient implements it.
type StatusQuerier interface {
	GetStatus(ctx context.Context, in *tcv1.GetStatusRequest, opts ...grpc.CallOption) (*tcv1.GetStatusResponse, error)
}

// SweepConfig configures the sweeper of a resource: a background worker
// that deletes undo rows phase 2 leaves behind. Every Interval it reads up
// to Batch undo rows of committed branches (state 0, older than Age by the
// database's clock), asks the coordinator for each transaction's status,
// and deletes the rows of transactions that are COMMITTED: their deletion
// was lost, as when the process stopped with deletions queued. Rows of
// transactions in any other status stay: the coordinator still drives them
// (their phase 2 deletes or uses the row), or an operator must
// (COMMIT_FAILED, ROLLBACK_FAILED), and a rollback always needs its row. A
// row whose transaction the coordinator does not know is deleted only once
// older than UnknownAfter.
//
// The same pass reads up to Batch defense rows (state 1, left by phase 2
// rollback) older than DefenseAge and deletes those of transactions that
// are rolled back for good (ROLLBACKED, TIMEOUT_ROLLBACKED) or that the
// coordinator does not know.
type SweepConfig struct {
	// Interval is the time between passes; 0 turns the sweeper off.
	Interval time.Duration
	// Age is how old an undo row must be before the sweeper looks at it,
	// leaving younger ones to phase 2 and its cleanup.
	Age time.Duration
	// Batch bounds the undo rows one pass looks at, of each state; the
	// next pass goes on after the last of them.
	Batch int
	// UnknownAfter is how old the undo row of a transaction the coordinator
	// reports NotFound must be before the sweeper deletes it; 0 keeps such
	// rows. A state-0 row outlives its transaction's record only when the
	// transaction committed and the coordinator purged it after its
	// retention (a rolled-back branch's row is a defense row, state 1), or
	// when the coordinator's store was lost: keep UnknownAfter longer than
	// the coordinator's retention (tc.Config.Retention, a week by default).
	UnknownAfter time.Duration
	// DefenseAge is how old a defense row must be before the sweeper
	// deletes it, its transaction being final. A defense row makes a phase
	// 1 that registered its branch but had not committed when the rollback
	// ran fail at its local commit; it must outlive any such phase 1
	// (which only writes the undo row and commits after registering). 0
	// keeps defense rows (PurgeDefended deletes them by age).
	DefenseAge time.Duration
	// Status answers the status queries. It defaults to Config.Locks when
	// that implements StatusQuerier (tcv1.CoordinatorClient does).
	Status StatusQuerier
}

// DefaultSweepConfig returns a SweepConfig sweeping every minute, at most
// 500 undo rows older than 10 minutes per pass, deleting rows of
// transactions the coordinator does not know once older than 30 days, and
// defense rows of final transactions once older than an hour.
func DefaultSweepConfig() SweepConfig {
	return SweepConfig{
		Interval:     time.Minute,
		Age:          10 * time.Minute,
		Batch:        500,
		UnknownAfter: 30 * 24 * time.Hour,
		DefenseAge:   time.Hour,
	}
}

// validate checks c, taking Status from locks when unset.
func (c *SweepConfig) validate(locks LockQuerier) error {
	if c.Status == nil {
		if sq, ok := locks.(StatusQuerier); ok {
			c.Status = sq
		}
	}
	switch {
	case c.Interval < 0:
		return fmt.Errorf("Sweep.Interval is negative (0 turns the sweeper off)")
	case c.Interval == 0:
		return nil
	case c.Age <= 0:
		return fmt.Errorf("Sweep.Age must be positive, got %v", c.Age)
	case c.Batch <= 0:
		return fmt.Errorf("Sweep.Batch must be positive, got %d", c.Batch)
	case c.UnknownAfter < 0:
		return fmt.Errorf("Sweep.UnknownAfter is negative (0 keeps rows of unknown transactions)")
	case c.DefenseAge < 0:
		return fmt.Errorf("Sweep.DefenseAge is negative (0 keeps defense rows)")
	case c.Status == nil:
		return fmt.Errorf("Sweep.Status is nil and Locks does not implement GetStatus: set it, or set Sweep.Interval to 0")
	}
	return nil
}

// sweeper is the background worker of one resource's SweepConfig.
type sweeper struct {
	cfg   SweepConfig
	d     Dialect
	table string
	db    *sql.DB
	log   *slog.Logger
	// mu serializes passes.
	mu sync.Mutex
	// after and afterDefense are where the next pass goes on, in the
	// state-0 and the defense rows: the last row the previous one looked
	// at, or the zero key to start over.
	after        branchKey
	afterDefense branchKey
	cancel       context.CancelFunc
	done         chan struct{}
}

// startSweeper starts the sweeper of cfg on db; a zero Interval starts
// nothing. stop ends it.
func startSweeper(cfg SweepConfig, d Dialect, table string, db *sql.DB, log *slog.Logger) *sweeper {
	s := &sweeper{cfg: cfg, d: d, table: table, db: db, log: log, done: make(chan struct{})}
	if cfg.Interval == 0 {
		close(s.done)
		return s
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(ctx)
	return s
}

// stop ends the sweeper, waiting for a pass in progress to give up.
func (s *sweeper) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	<-s.done
}

func (s *sweeper) run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.pass(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("sweeping undo rows of committed branches failed; the next pass tries again", "err", err)
		case n > 0:
			s.log.Info("swept undo rows of committed branches", "count", n)
		}
	}
}

// pass looks at up to Batch undo rows of each state after where the last
// pass stopped and deletes those whose transactions let them go. It
// returns how many it deleted.
func (s *sweeper) pass(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	verdicts := map[string]sweepVerdict{}
	n, err := s.sweepState(ctx, stateNormal, s.cfg.Age, &s.after, verdicts)
	if err != nil || s.cfg.DefenseAge == 0 {
		return n, err
	}
	m, err := s.sweepState(ctx, stateDefended, s.cfg.DefenseAge, &s.afterDefense, verdicts)
	return n + m, err
}

// sweepState looks at up to Batch undo rows in state older than age after
// *after, moves *after on, and deletes the rows of transactions whose
// verdict lets rows of that state go.
func (s *sweeper) sweepState(ctx context.Context, state int64, age time.Duration, after *branchKey, verdicts map[string]sweepVerdict) (int, error) {
	cond, ageArg := s.d.CreatedBefore(age)
	table := s.d.Quote(s.table)
	query, err := bind(s.d, "SELECT xid, branch_id FROM "+table+" WHERE state = ? AND "+cond+
		" AND (xid > ? OR (xid = ? AND branch_id > ?)) ORDER BY xid, branch_id LIMIT ?")
	if err != nil {
		return 0, err
	}
	rows, err := s.db.QueryContext(ctx, query, state, ageArg, after.xid, after.xid, after.branchID, s.cfg.Batch)
	if err != nil {
		return 0, fmt.Errorf("at: sweep %s: read undo rows: %w", s.table, err)
	}
	var keys []branchKey
	for rows.Next() {
		var k branchKey
		if err := rows.Scan(&k.xid, &k.branchID); err != nil {
			rows.Close()
			return 0, fmt.Errorf("at: sweep %s: read undo rows: %w", s.table, err)
		}
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("at: sweep %s: read undo rows: %w", s.table, err)
	}
	if len(keys) < s.cfg.Batch {
		*after = branchKey{}
	} else {
		*after = keys[len(keys)-1]
	}
	var old []branchKey // of transactions the coordinator does not know
	var done []branchKey
	for _, k := range keys {
		v, seen := verdicts[k.xid]
		if !seen {
			v = s.verdict(ctx, k.xid)
			verdicts[k.xid] = v
		}
		switch {
		case v == sweepUnknown && state == stateDefended:
			// A defense row outlives its transaction's record whenever
			// the coordinator purged it: nothing asks for the row.
			done = append(done, k)
		case v == sweepUnknown:
			old = append(old, k)
		case v == sweepCommitted && state == stateNormal, v == sweepRolledBack && state == stateDefended:
			done = append(done, k)
		}
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	n, err := s.delete(ctx, state, done, "")
	if err != nil || len(old) == 0 || s.cfg.UnknownAfter == 0 {
		return n, err
	}
	cond, arg := s.d.CreatedBefore(max(s.cfg.UnknownAfter, s.cfg.Age))
	m, err := s.delete(ctx, state, old, " AND "+cond, arg)
	if m > 0 {
		s.log.Warn("deleted undo rows of transactions the coordinator does not know", "count", m, "older_than", max(s.cfg.UnknownAfter, s.cfg.Age))
	}
	return n + m, err
}

// sweepVerdict is what the sweeper does with a transaction's undo rows.
type sweepVerdict int

const (
	// sweepKeep keeps the rows: the transaction is not final, or its
	// status could not be read.
	sweepKeep sweepVerdict = iota
	// sweepCommitted lets the state-0 rows go.
	sweepCommitted
	// sweepRolledBack lets the defense rows go.
	sweepRolledBack
	// sweepUnknown: the coordinator does not know the transaction.
	sweepUnknown
)

// verdict asks the coordinator about xid. Only a final status lets rows
// go: COMMITTED those of state 0, ROLLBACKED and TIMEOUT_ROLLBACKED the
// defense rows; an error keeps them for a later pass.
func (s *sweeper) verdict(ctx context.Context, xid string) sweepVerdict {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := s.cfg.Status.GetStatus(cctx, &tcv1.GetStatusRequest{Xid: xid})
	switch {
	case status.Code(err) == codes.NotFound:
		return sweepUnknown
	case err != nil:
		if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			s.log.Debug("sweeper could not get a transaction's status; its undo rows stay", "xid", xid, "err", err)
		}
		return sweepKeep
	case !resp.GetStatus().IsDone():
		return sweepKeep
	case resp.GetStatus().IsCommitDecided():
		return sweepCommitted
	}
	return sweepRolledBack
}

// delete deletes the undo rows in state of keys matching the extra
// condition, and returns how many it deleted.
func (s *sweeper) delete(ctx context.Context, state int64, keys []branchKey, extra string, extraArgs ...any) (int, error) {
	total := 0
	for start := 0; start < len(keys); start += maxKeysPerQuery {
		batch := keys[start:min(start+maxKeysPerQuery, len(keys))]
		args := []any{state}
		for _, k := range batch {
			args = append(args, k.xid, k.branchID)
		}
		args = append(args, extraArgs...)
		query, err := bind(s.d, "DELETE FROM "+s.d.Quote(s.table)+" WHERE state = ? AND "+keysMatch(undoKey, len(batch))+extra)
		if err != nil {
			return total, err
		}
		res, err := s.db.ExecContext(ctx, query, args...)
		if err != nil {
			return total, fmt.Errorf("at: sweep %s: delete %d undo rows: %w", s.table, len(batch), err)
		}
		n, _ := res.RowsAffected()
		total += int(n)
	}
	return total, nil
}
