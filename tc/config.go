package tc

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// IDGenerator hands out unique 64-bit IDs; the coordinator uses it for XIDs
// and branch IDs. *idgen.Generator implements it. An error (a leased node ID
// that was lost) fails the call that needed the ID with Unavailable.
type IDGenerator interface {
	NextID() (int64, error)
}

// Config tunes a coordinator. Start from DefaultConfig.
type Config struct {
	// ServerID names this replica. It owns the phase-2 leases this replica
	// takes, so a replica restarted with the same ServerID resumes its own
	// sessions at once instead of waiting for their leases to run out. Every
	// replica sharing a store needs its own.
	ServerID string
	// IDs generates XIDs and branch IDs. Replicas sharing a store need
	// generators with distinct node IDs.
	IDs IDGenerator
	// DefaultTimeout is a transaction's timeout when Begin asks for none.
	DefaultTimeout time.Duration
	// MaxTimeout caps the timeout a client may ask for.
	MaxTimeout time.Duration
	// BranchTimeout bounds one phase-2 command to a resource manager.
	BranchTimeout time.Duration
	// RetryInitial and RetryMax bound the exponential backoff between
	// phase-2 attempts of one transaction.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// MaxAttempts, when positive, ends phase 2 in COMMIT_FAILED or
	// ROLLBACK_FAILED after that many failed attempts.
	MaxAttempts int
	// RetryBudget, when positive, ends phase 2 in COMMIT_FAILED or
	// ROLLBACK_FAILED once this much time has passed since Begin.
	RetryBudget time.Duration
	// Lease is how long a replica owns a session whose phase 2 it drives;
	// another replica may take it over once the lease runs out.
	Lease time.Duration
	// DetachGrace is how long after the last Attach stream of a process
	// (by the client ID of its resource manager) ends this replica waits
	// for one to come back before it takes the process for dead and rolls
	// back the transactions that process began through it and left in
	// BEGIN (see BeginRequest.client_id), instead of waiting for their
	// timeout. Keep it above the resource managers' re-attach time; a
	// process alive but cut off that long finds its transactions rolled
	// back. Zero turns this off.
	DetachGrace time.Duration
	// TimeoutCheckInterval is how often transactions past their timeout are
	// looked for, and how often DetachGrace is checked.
	TimeoutCheckInterval time.Duration
	// RecoveryInterval is how often due phase-2 work is looked for.
	RecoveryInterval time.Duration
	// Workers is how many sessions background phase 2 drives at once: the
	// recovery loop's claims, and, separately, the asynchronous commits the
	// replica drives right after deciding them.
	Workers int
	// Retention keeps finished sessions this long for operators before they
	// are deleted; zero keeps them forever.
	Retention time.Duration
	// Limits bounds what callers may ask; see Limits.
	Limits Limits
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// Metrics, when not nil, gets the coordinator's Prometheus metrics, one
	// registry per Server: gtx_tc_transactions_begun_total,
	// gtx_tc_transactions_finished_total{mode,outcome},
	// gtx_tc_phase2_attempt_seconds{mode,action}, gtx_tc_retry_backlog and
	// gtx_tc_lock_conflicts_total. Begun transactions and lock conflicts are
	// counted by Server.UnaryInterceptor, which must be installed.
	Metrics prometheus.Registerer
	// Clock tells the time for every decision that depends on it: timeouts,
	// back-off, retry budgets and leases. DefaultConfig uses SystemClock;
	// tests may pass one they move by hand.
	Clock Clock
	// TracerProvider, when not nil, makes the OpenTelemetry spans of begin,
	// commit, rollback and each branch's phase 2.
	TracerProvider trace.TracerProvider
	// Messages, when not nil, delivers two-phase messages and asks their
	// producers about those prepared but not submitted in time (see
	// Messenger); modes/msg's Courier is one.
	Messages Messenger
}

// DefaultConfig returns a configuration for one coordinator; set IDs (and,
// for replicas, ServerID) before use.
func DefaultConfig() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "tc"
	}
	return Config{
		ServerID:             host,
		Clock:                SystemClock{},
		DefaultTimeout:       60 * time.Second,
		MaxTimeout:           10 * time.Minute,
		BranchTimeout:        10 * time.Second,
		RetryInitial:         200 * time.Millisecond,
		RetryMax:             10 * time.Second,
		RetryBudget:          24 * time.Hour,
		Lease:                60 * time.Second,
		DetachGrace:          5 * time.Second,
		TimeoutCheckInterval: time.Second,
		RecoveryInterval:     time.Second,
		Workers:              16,
		Retention:            7 * 24 * time.Hour,
		Limits:               DefaultLimits(),
	}
}

// ErrInvalidConfig is matched by every error Validate returns.
var ErrInvalidConfig = errors.New("tc: invalid config")

// FieldError is the error Validate returns for a setting out of range: it
// names the field (and the other field the rule compares it with), so a
// program that sets the fields from its own flags can say which flag to
// fix (Describe). It matches ErrInvalidConfig.
type FieldError struct {
	Field string // the Config field, e.g. "MaxTimeout"
	Value any    // its value
	Rule  string // what it must be, e.g. "must not be below"
	// Other is the field the rule compares Field with, and OtherValue its
	// value; empty when the rule stands alone.
	Other      string
	OtherValue any
}

// Describe says what is wrong, naming each field as name gives it.
func (e *FieldError) Describe(name func(field string) string) string {
	msg := fmt.Sprintf("%s %v %s", name(e.Field), e.Value, e.Rule)
	if e.Other != "" {
		msg += fmt.Sprintf(" %s %v", name(e.Other), e.OtherValue)
	}
	return msg
}

func (e *FieldError) Error() string {
	return ErrInvalidConfig.Error() + ": " + e.Describe(func(f string) string { return f })
}

// Unwrap makes a FieldError match ErrInvalidConfig.
func (e *FieldError) Unwrap() error { return ErrInvalidConfig }

// Validate checks c and says what to fix; a value out of range is a
// *FieldError.
func (c *Config) Validate() error {
	bad := func(field string, value any, rule string) error {
		return &FieldError{Field: field, Value: value, Rule: rule}
	}
	cmp := func(field string, value any, rule, other string, otherValue any) error {
		return &FieldError{Field: field, Value: value, Rule: rule, Other: other, OtherValue: otherValue}
	}
	switch {
	case c.ServerID == "":
		return bad("ServerID", `""`, "is empty; name this replica")
	case c.IDs == nil:
		return bad("IDs", "nil", "is not set; pass an *idgen.Generator")
	case c.Clock == nil:
		return bad("Clock", "nil", "is not set; use tc.SystemClock{} or start from DefaultConfig")
	case c.DefaultTimeout <= 0:
		return bad("DefaultTimeout", c.DefaultTimeout, "must be positive")
	case c.MaxTimeout < c.DefaultTimeout:
		return cmp("MaxTimeout", c.MaxTimeout, "must not be below", "DefaultTimeout", c.DefaultTimeout)
	case c.BranchTimeout <= 0:
		return bad("BranchTimeout", c.BranchTimeout, "must be positive")
	case c.RetryInitial <= 0:
		return bad("RetryInitial", c.RetryInitial, "must be positive")
	case c.RetryMax < c.RetryInitial:
		return cmp("RetryMax", c.RetryMax, "must not be below", "RetryInitial", c.RetryInitial)
	case c.MaxAttempts < 0:
		return bad("MaxAttempts", c.MaxAttempts, "must not be negative")
	case c.RetryBudget < 0:
		return bad("RetryBudget", c.RetryBudget, "must not be negative")
	case c.Lease < 2*c.BranchTimeout:
		return cmp("Lease", c.Lease, "must be at least twice", "BranchTimeout", c.BranchTimeout)
	case c.DetachGrace < 0:
		return bad("DetachGrace", c.DetachGrace, "must not be negative (zero turns it off)")
	case c.TimeoutCheckInterval <= 0:
		return bad("TimeoutCheckInterval", c.TimeoutCheckInterval, "must be positive")
	case c.RecoveryInterval <= 0:
		return bad("RecoveryInterval", c.RecoveryInterval, "must be positive")
	case c.Workers <= 0:
		return bad("Workers", c.Workers, "must be positive")
	case c.Retention < 0:
		return bad("Retention", c.Retention, "must not be negative")
	}
	return c.Limits.validate()
}

// backoff returns the wait before phase-2 attempt number attempts+1.
func (c *Config) backoff(attempts int) time.Duration {
	d := c.RetryInitial
	for i := 1; i < attempts && d < c.RetryMax; i++ {
		d *= 2
	}
	return min(d, c.RetryMax)
}
