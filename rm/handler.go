package rm

import (
	"context"
	"errors"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// Branch is the branch a phase-2 command is for.
type Branch struct {
	XID        string
	BranchID   int64
	Type       tcv1.BranchType
	ResourceID string
	// ApplicationData is what the branch registered with (a TCC action's
	// context, for instance).
	ApplicationData []byte
}

// Handler runs phase 2 for the branches of one branch type. Each mode (AT,
// TCC, saga, XA) provides one.
//
// Delivery is at least once: the coordinator sends a command again when it
// got no answer (a lost result, a reconnect, another replica taking over), so
// the same branch may be committed or rolled back more than once, even
// concurrently on different instances. Handlers must be idempotent by
// (XID, BranchID).
//
// A nil error reports success. An error wrapped with Unretryable reports a
// failure that retrying cannot fix (a dirty write found by an AT rollback);
// the coordinator stops retrying the transaction and leaves it to an
// operator. Any other error is retried by the coordinator with backoff. The
// context carries the XID and is cancelled after Config.BranchTimeout or when
// the Manager closes.
type Handler interface {
	Commit(ctx context.Context, b Branch) error
	Rollback(ctx context.Context, b Branch) error
}

// ErrUnretryable is matched by every error Unretryable returns.
var ErrUnretryable = errors.New("rm: unretryable")

// Unretryable marks err, returned by a Handler, as a failure that must not be
// retried. The result still matches err with errors.Is and errors.As.
// Unretryable(nil) is nil.
func Unretryable(err error) error {
	if err == nil {
		return nil
	}
	return &unretryableError{err: err}
}

type unretryableError struct{ err error }

func (e *unretryableError) Error() string        { return e.err.Error() }
func (e *unretryableError) Unwrap() error        { return e.err }
func (e *unretryableError) Is(target error) bool { return target == ErrUnretryable }
