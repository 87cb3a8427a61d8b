package tcc

import (
	"fmt"
	"log/slog"
	"regexp"
	"time"
)

// Dialect names the SQL dialect of a fence's database.
type Dialect string

// Supported dialects. Their names are those of gorm's dialectors.
const (
	MySQL    Dialect = "mysql" // MySQL and MariaDB
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// DefaultFenceTable is the fence table's name unless FenceConfig.Table says
// otherwise.
const DefaultFenceTable = "gtx_tcc_fence"

// FenceConfig configures a Fence. Start from DefaultFenceConfig.
type FenceConfig struct {
	// Dialect is the database's dialect. OpenFence needs it; OpenGormFence
	// takes it from the gorm dialector when it is empty.
	Dialect Dialect
	// Table is the fence table. It is created when missing.
	Table string
	// CleanAge is how long a finished fence row (confirmed, cancelled or
	// suspended) is kept. A suspended row is what refuses a late Try, so
	// keep rows longer than any Try can be delayed; rows still tried are
	// never cleaned.
	CleanAge time.Duration
	// CleanInterval is the pause between cleaning rounds. Zero runs no
	// cleaner; Fence.Clean still cleans on demand.
	CleanInterval time.Duration
	// CleanBatch caps the rows one DELETE removes, so a round never holds
	// many locks at once.
	CleanBatch int
	// Logger receives the fence's logs; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultFenceConfig keeps finished rows for 24 hours, cleans every 10
// minutes in batches of 500, in the table gtx_tcc_fence.
func DefaultFenceConfig() FenceConfig {
	return FenceConfig{
		Table:         DefaultFenceTable,
		CleanAge:      24 * time.Hour,
		CleanInterval: 10 * time.Minute,
		CleanBatch:    500,
	}
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Validate reports the first problem with c, as an error matching
// ErrInvalidConfig.
func (c *FenceConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.Dialect != MySQL && c.Dialect != Postgres && c.Dialect != SQLite:
		return bad("dialect %q is not one of mysql, postgres, sqlite", c.Dialect)
	case !identifier.MatchString(c.Table):
		return bad("table %q is not a plain SQL identifier (letters, digits, underscore; at most 63)", c.Table)
	case c.CleanAge <= 0:
		return bad("CleanAge must be positive, got %v", c.CleanAge)
	case c.CleanInterval < 0:
		return bad("CleanInterval must not be negative, got %v", c.CleanInterval)
	case c.CleanBatch <= 0:
		return bad("CleanBatch must be positive, got %d", c.CleanBatch)
	}
	return nil
}
