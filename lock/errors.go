package lock

import "errors"

var (
	// ErrEmptyName is returned when a lock name is empty.
	ErrEmptyName = errors.New("lock: empty lock name; pass the name of the resource to lock")
	// ErrNotAcquired is returned by TryLock when another owner holds the lock.
	ErrNotAcquired = errors.New("lock: lock is held by another owner")
	// ErrNotHeld is returned when unlocking a lease that is no longer held
	// (unlocked twice), and by a Backend when a token does not hold a lock.
	ErrNotHeld = errors.New("lock: lock is not held by this lease")
	// ErrLockLost is the cause of a lease's context when the lock was lost:
	// renewal found another holder or the lock expired before it could be
	// renewed. Unlock of a lost lease returns it too.
	ErrLockLost = errors.New("lock: lock lost (expired or taken over); stop using what it protects")
	// ErrValidityShort is returned by Lease.Do when the lock is known held
	// for less than the time the caller asked for.
	ErrValidityShort = errors.New("lock: too little of the lock's validity is left for the work; ask Do for less, or renew sooner (Config.RenewInterval)")
	// ErrUnlocked is the cause of a lease's context after Unlock.
	ErrUnlocked = errors.New("lock: lease unlocked")
	// ErrClosed is returned after Client.Close, and is the cause of the
	// context of the leases it ended.
	ErrClosed = errors.New("lock: client closed")
	// ErrInvalidConfig is matched by errors from Config.Validate.
	ErrInvalidConfig = errors.New("lock: invalid config")
)
