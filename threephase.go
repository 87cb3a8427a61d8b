package gtx

import "context"

type threePhaseKey struct{}

// WithThreePhase marks ctx as running in a global transaction that commits
// with three phases (tm.ThreePhase): its votes were taken (CanCommit), so a
// branch prepared with it is precommitted, and a resource manager that
// implements the protocol's rule commits it on its own after a timeout
// without the coordinator (rm/xa's Recover.PreCommitTimeout).
func WithThreePhase(ctx context.Context) context.Context {
	return context.WithValue(ctx, threePhaseKey{}, true)
}

// ThreePhaseFromContext reports whether ctx is marked with WithThreePhase.
func ThreePhaseFromContext(ctx context.Context) bool {
	v, _ := ctx.Value(threePhaseKey{}).(bool)
	return v
}
