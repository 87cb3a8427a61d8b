package tm

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Propagation says how WithGlobalTx treats a global transaction the context
// already carries, as in Seata and Spring.
type Propagation int

const (
	// Required joins the transaction in the context, or begins one when
	// there is none. It is the default.
	Required Propagation = iota
	// RequiresNew suspends the transaction in the context, if any, and
	// begins a new one; the outer transaction is in effect again when
	// WithGlobalTx returns.
	RequiresNew
	// NotSupported runs the function outside any global transaction,
	// suspending the one in the context.
	NotSupported
	// Supports joins the transaction in the context, or runs the function
	// outside any when there is none.
	Supports
	// Never runs the function outside any global transaction, and fails with
	// ErrTransactionExists when the context carries one.
	Never
	// Mandatory joins the transaction in the context, and fails with
	// ErrNoTransaction when there is none.
	Mandatory
)

var propagationNames = [...]string{"Required", "RequiresNew", "NotSupported", "Supports", "Never", "Mandatory"}

func (p Propagation) String() string {
	if p >= 0 && int(p) < len(propagationNames) {
		return propagationNames[p]
	}
	return "Propagation(" + strconv.Itoa(int(p)) + ")"
}

// Option changes how one global transaction is begun or joined.
type Option func(*options)

type options struct {
	timeout     time.Duration
	propagation Propagation
	threePhase  bool
	voters      []Voter
}

// Timeout sets the transaction's timeout: the coordinator rolls it back when
// it is still in BEGIN after d. It overrides Config.DefaultTimeout and only
// applies when a transaction is begun, not joined. It is sent in
// milliseconds, rounded up.
func Timeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// Voter is a participant's vote in the first phase of a three-phase commit
// (ThreePhase): CanCommit answers nil when the participant expects to be able
// to do its part of the transaction xid, and an error (its reason) when not.
// It must hold nothing: no locks, no reservations; the work comes later, in
// the transaction's function.
type Voter interface {
	CanCommit(ctx context.Context, xid string) error
}

// ThreePhase makes a transaction WithGlobalTx begins commit in three phases,
// for XA and TCC branches:
//
//  1. CanCommit: every voter votes, concurrently, before the transaction's
//     function runs; one no rolls the transaction back at once (nothing was
//     done yet) and WithGlobalTx fails with ErrVotedNo.
//  2. PreCommit: the function runs with a context marked with
//     gtx.WithThreePhase; its XA branches prepare, its TCC branches Try.
//  3. DoCommit: the commit, as in two phases.
//
// What a participant does when the coordinator goes silent after
// PreCommit is its own, documented choice: rm/xa follows the protocol and
// commits a precommitted branch alone once no coordinator has answered for
// Recover.PreCommitTimeout (unsafe when the network splits; see
// docs/consistency.md); TCC branches wait for the coordinator as in two
// phases. ThreePhase applies only where WithGlobalTx begins the
// transaction, not where it joins one.
func ThreePhase(voters ...Voter) Option {
	return func(o *options) {
		o.threePhase = true
		o.voters = append(o.voters, voters...)
	}
}

// WithPropagation sets how WithGlobalTx treats a transaction the context
// already carries. Begin ignores it: Begin always begins a new transaction.
func WithPropagation(p Propagation) Option {
	return func(o *options) { o.propagation = p }
}

func (m *Manager) options(opts []Option) (options, error) {
	o := options{timeout: m.cfg.DefaultTimeout}
	for _, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: nil option", ErrInvalidArgument)
		}
		opt(&o)
	}
	if o.timeout < 0 {
		return o, fmt.Errorf("%w: timeout %v is negative", ErrInvalidArgument, o.timeout)
	}
	if o.propagation < Required || o.propagation > Mandatory {
		return o, fmt.Errorf("%w: unknown propagation %v", ErrInvalidArgument, o.propagation)
	}
	for i, v := range o.voters {
		if v == nil {
			return o, fmt.Errorf("%w: voter %d of ThreePhase is nil", ErrInvalidArgument, i)
		}
	}
	return o, nil
}
