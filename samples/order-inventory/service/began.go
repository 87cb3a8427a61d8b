package service

import "context"

// begunKey is the context key of RecordBegun's destination.
type begunKey struct{}

// RecordBegun returns ctx such that a global transaction that the
// service's transaction manager begins under it (a saga's, say) writes its
// XID to xid at once, before anything in it runs: an order answered after
// a failure then names the transaction that was rolled back, even when no
// step got to see the XID. Only the first transaction begun is recorded.
func RecordBegun(ctx context.Context, xid *string) context.Context {
	return context.WithValue(ctx, begunKey{}, xid)
}

// recordBegun is the transaction manager's AfterBegin hook.
func recordBegun(ctx context.Context, xid string) {
	if dst, ok := ctx.Value(begunKey{}).(*string); ok && *dst == "" {
		*dst = xid
	}
}
