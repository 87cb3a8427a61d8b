package msg

import "errors"

var (
	// ErrInvalidMessage means a message, target or check address is
	// malformed or too large; nothing was sent. The error says what to fix.
	ErrInvalidMessage = errors.New("msg: invalid message")
	// ErrInvalidConfig is matched by every error a Validate method returns.
	ErrInvalidConfig = errors.New("msg: invalid config")
	// ErrRolledBack means the prepared message was rolled back before its
	// local transaction committed: the coordinator asked the producer
	// (the message timed out) and found no commit, so the local
	// transaction is refused and nothing is delivered. Prepare again.
	ErrRolledBack = errors.New("msg: message rolled back before its local transaction committed")
	// ErrOutcomeUnknown means the commit of the local transaction failed
	// in a way that leaves unknown whether it committed. The barrier row
	// decides: the coordinator asks the producer, and delivers the
	// message exactly when the local transaction did commit.
	ErrOutcomeUnknown = errors.New("msg: outcome of the local transaction unknown; the coordinator will ask the barrier")
)
