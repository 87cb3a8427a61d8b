package tcc

import (
	"context"
	"fmt"
	"time"
)

// Clean deletes the finished fence rows (confirmed, cancelled, suspended)
// last changed before before, in batches of FenceConfig.CleanBatch, and
// returns how many it deleted. Rows still tried are kept.
func (f *Fence) Clean(ctx context.Context, before time.Time) (int64, error) {
	if f.isClosed() {
		return 0, ErrClosed
	}
	var total int64
	for {
		res, err := f.db.ExecContext(ctx, f.q.clean, before.UnixMilli(), f.cfg.CleanBatch)
		if err != nil {
			return total, fmt.Errorf("tcc: clean fence table %s: %w", f.cfg.Table, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("tcc: clean fence table %s: %w", f.cfg.Table, err)
		}
		total += n
		if n < int64(f.cfg.CleanBatch) {
			return total, nil
		}
	}
}

// cleanLoop cleans every CleanInterval until ctx is done.
func (f *Fence) cleanLoop(ctx context.Context) {
	defer close(f.done)
	t := time.NewTicker(f.cfg.CleanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := f.Clean(ctx, f.now().Add(-f.cfg.CleanAge))
		switch {
		case err != nil && ctx.Err() == nil:
			f.log.Warn("cleaning finished fence rows failed; trying again next round", "err", err)
		case n > 0:
			f.log.Debug("cleaned finished fence rows", "rows", n)
		}
	}
}
