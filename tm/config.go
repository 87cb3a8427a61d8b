package tm

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// Config configures a Manager. Start from DefaultConfig and change what you
// need; New rejects a Config that does not pass Validate.
type Config struct {
	// Application names the service that begins transactions; the
	// coordinator keeps it for operators. DefaultConfig takes the executable's
	// name.
	Application string
	// ClientID, when set, names this process to the coordinator as the
	// ClientID of its resource manager (rm.Config.ClientID) does: give both
	// the same value. The coordinator then watches that resource manager's
	// Attach streams, and when they end and none comes back within its
	// detach grace (tc.Config.DetachGrace, 5s by default), takes this
	// process for dead and rolls back the transactions it began and left
	// open, without waiting for their timeout. Empty leaves them to their
	// timeout.
	ClientID string
	// DefaultTimeout is the timeout of a global transaction begun without the
	// Timeout option: the coordinator rolls back a transaction still in BEGIN
	// after it. Zero leaves the choice to the coordinator.
	DefaultTimeout time.Duration
	// StatusPollInterval is the first pause between status queries while the
	// outcome of a commit or rollback whose answer was lost is resolved. The
	// pause doubles (with jitter) up to ten times this value.
	StatusPollInterval time.Duration
	// StatusPollTimeout bounds how long a Manager keeps asking the coordinator
	// for the outcome of a commit or rollback whose answer was lost. When it
	// runs out, the call fails with ErrOutcomeUnknown; it never guesses.
	StatusPollTimeout time.Duration
	// Hooks are called around begin, commit and rollback.
	Hooks Hooks
	// Logger receives the Manager's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Hooks are called around the life of every global transaction a Manager
// begins (never for a joined one). Any of them may be nil. They run on the
// caller's goroutine and must not block for long.
type Hooks struct {
	// BeforeBegin is called before the coordinator is asked for an XID; it
	// gets the transaction's name, since there is no XID yet.
	BeforeBegin func(ctx context.Context, name string)
	// AfterBegin is called with the new XID.
	AfterBegin func(ctx context.Context, xid string)
	// BeforeCommit is called before commit is asked for.
	BeforeCommit func(ctx context.Context, xid string)
	// AfterCommit is called with the status the commit reached and the
	// error Commit returns.
	AfterCommit func(ctx context.Context, xid string, status tcv1.GlobalStatus, err error)
	// BeforeRollback is called before rollback is asked for.
	BeforeRollback func(ctx context.Context, xid string)
	// AfterRollback is called with the status the rollback reached and the
	// error Rollback returns.
	AfterRollback func(ctx context.Context, xid string, status tcv1.GlobalStatus, err error)
}

// DefaultConfig returns a Config with the application named after the
// executable, the coordinator's default transaction timeout, and outcome
// resolution that polls from every 100ms up to every second for at most 30s.
func DefaultConfig() Config {
	app := filepath.Base(os.Args[0])
	if app == "" || app == "." || app == string(filepath.Separator) {
		app = "gtx-app"
	}
	return Config{
		Application:        app,
		StatusPollInterval: 100 * time.Millisecond,
		StatusPollTimeout:  30 * time.Second,
	}
}

// Validate reports the first problem with c, as an error matching
// ErrInvalidConfig.
func (c *Config) Validate() error {
	switch {
	case c.Application == "":
		return fmt.Errorf("%w: Application is empty: name the service that begins transactions", ErrInvalidConfig)
	case c.DefaultTimeout < 0:
		return fmt.Errorf("%w: DefaultTimeout is %v: use zero for the coordinator's default or a positive duration", ErrInvalidConfig, c.DefaultTimeout)
	case c.StatusPollInterval <= 0:
		return fmt.Errorf("%w: StatusPollInterval is %v: it must be positive", ErrInvalidConfig, c.StatusPollInterval)
	case c.StatusPollTimeout < c.StatusPollInterval:
		return fmt.Errorf("%w: StatusPollTimeout %v is shorter than StatusPollInterval %v", ErrInvalidConfig, c.StatusPollTimeout, c.StatusPollInterval)
	}
	return nil
}
