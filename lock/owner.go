package lock

import "context"

type ownerKey struct{}

// WithOwner returns a context that carries owner as the lock owner identity.
// Lock calls made with contexts carrying the same non-empty owner re-enter a
// lock that owner already holds in the same Client instead of waiting for it.
// A context without an owner never re-enters.
func WithOwner(ctx context.Context, owner string) context.Context {
	return context.WithValue(ctx, ownerKey{}, owner)
}

// OwnerFromContext returns the owner identity set by WithOwner, or "".
func OwnerFromContext(ctx context.Context) string {
	s, _ := ctx.Value(ownerKey{}).(string)
	return s
}
