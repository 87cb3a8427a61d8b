package at

import "database/sql"

// SetAfterRegisterHook makes the resource run f between registering a branch
// and writing its undo log: the window a rollback can arrive in.
func SetAfterRegisterHook(resourceID string, f func(xid string, branchID int64)) {
	r, err := lookup(resourceID)
	if err != nil {
		panic(err)
	}
	r.afterRegister = f
}

// Phase2Stats returns the statistics of the pool phase 2 of the open
// resource runs on.
func Phase2Stats(resourceID string) sql.DBStats {
	r, err := lookup(resourceID)
	if err != nil {
		panic(err)
	}
	return r.db.Stats()
}
