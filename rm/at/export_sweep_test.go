package at

import "context"

// SweepNow runs one pass of the sweeper of an open resource and returns how
// many undo rows it deleted.
func SweepNow(ctx context.Context, resourceID string) (int, error) {
	r, err := lookup(resourceID)
	if err != nil {
		return 0, err
	}
	return r.sweep.pass(ctx)
}
