package rm

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// Config configures a Manager. Start from DefaultConfig, set Application and
// Coordinators, and change what you need; New rejects a Config that does not
// pass Validate.
type Config struct {
	// Application names the service, for the coordinator's operators.
	Application string
	// ClientID names this instance in the coordinator's logs. DefaultConfig
	// makes one from the host name, the process ID and a random suffix.
	ClientID string
	// Coordinators holds one client per coordinator replica. The Manager
	// attaches to every one of them, since any replica may drive phase 2,
	// and sends RegisterBranch and ReportBranch to any, trying the next when
	// one is unavailable.
	Coordinators []tcv1.CoordinatorClient
	// Discovery, when set, finds further coordinators while the Manager
	// runs (a DNS name of a Kubernetes headless service, say); the Manager
	// attaches to each one it finds and detaches from each one that goes.
	// Either Coordinators or Discovery must be given.
	Discovery *Discovery
	// ReconnectInitial and ReconnectMax bound the exponential backoff, with
	// jitter, between attempts to re-attach to a coordinator that refused
	// or ended the stream. While a coordinator is unreachable no backoff
	// applies: the attempt waits for its connection, whose own reconnect
	// policy (FastReconnect) decides how soon a coordinator that is back is
	// seen.
	ReconnectInitial time.Duration
	ReconnectMax     time.Duration
	// BranchTimeout bounds one call of a Handler.
	BranchTimeout time.Duration
	// Workers caps how many branch commands run at once, over all
	// coordinators. A command waits for a free worker before the next one
	// is read from its stream.
	Workers int
	// Logger receives the Manager's logs; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a Config with a generated ClientID, re-attach backoff
// from 100ms to 1s, a 10s branch timeout and 16 workers. Application and
// Coordinators are left for the caller.
func DefaultConfig() Config {
	return Config{
		ClientID:         defaultClientID(),
		ReconnectInitial: 100 * time.Millisecond,
		ReconnectMax:     time.Second,
		BranchTimeout:    10 * time.Second,
		Workers:          16,
	}
}

func defaultClientID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "rm"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Validate reports the first problem with c, as an error matching
// ErrInvalidConfig.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.Application == "":
		return bad("Application is empty: name the service")
	case c.ClientID == "":
		return bad("ClientID is empty: start from DefaultConfig, which generates one")
	case len(c.Coordinators) == 0 && c.Discovery == nil:
		return bad("no Coordinators and no Discovery: give one client per coordinator replica, or a Discovery")
	case c.ReconnectInitial <= 0 || c.ReconnectMax < c.ReconnectInitial:
		return bad("need 0 < ReconnectInitial <= ReconnectMax, got %v and %v", c.ReconnectInitial, c.ReconnectMax)
	case c.BranchTimeout <= 0:
		return bad("BranchTimeout must be positive, got %v", c.BranchTimeout)
	case c.Workers <= 0:
		return bad("Workers must be positive, got %d", c.Workers)
	}
	if c.Discovery != nil {
		if err := c.Discovery.validate(); err != nil {
			return bad("%v", err)
		}
	}
	for i, cc := range c.Coordinators {
		if cc == nil {
			return bad("Coordinators[%d] is nil", i)
		}
	}
	return nil
}
