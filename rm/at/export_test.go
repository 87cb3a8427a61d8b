package at

// SetAfterRegisterHook makes the resource run f between registering a branch
// and writing its undo log: the window a rollback can arrive in.
func SetAfterRegisterHook(resourceID string, f func(xid string, branchID int64)) {
	r, err := lookup(resourceID)
	if err != nil {
		panic(err)
	}
	r.afterRegister = f
}
