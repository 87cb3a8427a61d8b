// Package gtx holds what every part of gtx shares: the XID that names a
// global transaction, its validation, the metadata key that carries it between
// processes, and the context plumbing that carries it inside one.
//
// The coordinator lives in package tc, the transaction API in tm, the resource
// manager core in rm, and the modes in rm/at, modes/tcc and modes/saga.
package gtx

import (
	"context"
	"errors"
	"fmt"
)

// MetadataKey is the one key that carries the XID in gRPC metadata, HTTP
// headers and NATS message headers. It follows kratos's "x-md-global-"
// convention, so kratos services pass it on across hops with no code.
const MetadataKey = "x-md-global-gtx-xid"

// MaxXIDLen is the longest XID accepted anywhere.
const MaxXIDLen = 128

// ErrInvalidXID is returned by ValidateXID for an XID that is empty, longer
// than MaxXIDLen, or has a character outside [0-9A-Za-z._:-].
var ErrInvalidXID = errors.New("gtx: invalid xid")

// ValidateXID reports whether s is a well-formed XID. It is called wherever an
// XID enters a process; a malformed one is rejected there, never passed on.
func ValidateXID(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidXID)
	}
	if len(s) > MaxXIDLen {
		return fmt.Errorf("%w: %d bytes long, at most %d allowed", ErrInvalidXID, len(s), MaxXIDLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '.', c == '_', c == ':', c == '-':
		default:
			return fmt.Errorf("%w: byte %d is %q, only [0-9A-Za-z._:-] allowed", ErrInvalidXID, i, c)
		}
	}
	return nil
}

type xidKey struct{}

type globalLockKey struct{}

// ContextWithXID returns a context that carries xid. The XID must be valid
// (see ValidateXID); callers that take an XID from outside validate it first.
func ContextWithXID(ctx context.Context, xid string) context.Context {
	return context.WithValue(ctx, xidKey{}, xid)
}

// XIDFromContext returns the XID ctx carries, and whether it carries one.
func XIDFromContext(ctx context.Context) (string, bool) {
	xid, ok := ctx.Value(xidKey{}).(string)
	return xid, ok && xid != ""
}

// ContextWithoutXID returns a context that carries no XID, even where its
// parent does: the work done with it runs outside any global transaction.
func ContextWithoutXID(ctx context.Context) context.Context {
	return context.WithValue(ctx, xidKey{}, "")
}

// WithGlobalLock marks ctx so that a local transaction run with it checks the
// coordinator's global row locks before it commits, without joining a global
// transaction: the analogue of Seata's @GlobalLock.
func WithGlobalLock(ctx context.Context) context.Context {
	return context.WithValue(ctx, globalLockKey{}, true)
}

// GlobalLockFromContext reports whether ctx asks for global lock checks.
func GlobalLockFromContext(ctx context.Context) bool {
	v, _ := ctx.Value(globalLockKey{}).(bool)
	return v
}
