package idgen

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"gorm.io/gorm"
)

// DefaultNodeTable is the table SQLLeaser keeps node leases in.
const DefaultNodeTable = "gtx_idgen_nodes"

// SQLLeaserConfig configures an SQLLeaser.
type SQLLeaserConfig struct {
	// Table is the lease table, created if missing. It has one row per node
	// ever held: node_id (primary key), owner (the lease's token, empty once
	// released), expires_at (Unix milliseconds by the database's clock) and
	// high_ms (the node's high mark; added to tables of earlier versions).
	Table string
	// MinNode and MaxNode bound the node IDs this leaser hands out,
	// inclusive, within 0..MaxNodeID.
	MinNode, MaxNode int64
}

// DefaultSQLLeaserConfig returns DefaultNodeTable and all 1024 nodes.
func DefaultSQLLeaserConfig() SQLLeaserConfig {
	return SQLLeaserConfig{Table: DefaultNodeTable, MinNode: 0, MaxNode: MaxNodeID}
}

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// Validate reports whether c can be used, with ErrInvalidConfig otherwise.
func (c SQLLeaserConfig) Validate() error {
	if !tableName.MatchString(c.Table) {
		return fmt.Errorf("%w: table name %q must match %s", ErrInvalidConfig, c.Table, tableName)
	}
	return validateRange(c.MinNode, c.MaxNode)
}

// SQLLeaser leases node IDs as rows of a table through gorm, on SQLite,
// MySQL/MariaDB and PostgreSQL. Expiry is judged by the database's clock, so
// the hosts' clocks need not agree. A claim inserts the row of a node that
// has none, or takes over an expired row with a conditional UPDATE; the
// database's row locking lets only one of two racing claimers win. A SQLite
// file shared by several processes needs a busy timeout in its DSN (for
// github.com/glebarez/sqlite: "?_pragma=busy_timeout(10000)").
type SQLLeaser struct {
	db    *gorm.DB
	cfg   SQLLeaserConfig
	nowMs string // SQL expression: the database's clock in Unix ms

	selectSQL, updateSQL, insertSQL, renewSQL, heldSQL, releaseSQL, highSQL, raiseSQL string
}

// NewSQLLeaser returns a leaser over db, creating the lease table if it is
// missing. The dialect comes from db: "sqlite", "mysql" or "postgres".
func NewSQLLeaser(ctx context.Context, db *gorm.DB, cfg SQLLeaserConfig) (*SQLLeaser, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: gorm db is nil", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &SQLLeaser{db: db, cfg: cfg}
	var upsert string
	switch name := db.Name(); name {
	case "sqlite":
		s.nowMs = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
		upsert = "ON CONFLICT (node_id) DO NOTHING"
	case "mysql":
		// UTC_TIMESTAMP and plain date arithmetic: no session time zone, so
		// no hour that repeats when daylight saving time ends.
		s.nowMs = "(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000)"
		upsert = "ON DUPLICATE KEY UPDATE node_id = node_id"
	case "postgres":
		s.nowMs = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
		upsert = "ON CONFLICT (node_id) DO NOTHING"
	default:
		return nil, fmt.Errorf("%w: gorm dialect %q is not supported, use sqlite, mysql or postgres", ErrInvalidConfig, name)
	}
	t := cfg.Table
	s.selectSQL = fmt.Sprintf("SELECT node_id, CASE WHEN expires_at < %s THEN 1 ELSE 0 END AS expired FROM %s WHERE node_id BETWEEN ? AND ?", s.nowMs, t)
	s.updateSQL = fmt.Sprintf("UPDATE %s SET owner = ?, expires_at = %s + ? WHERE node_id = ? AND expires_at < %s", t, s.nowMs, s.nowMs)
	s.insertSQL = fmt.Sprintf("INSERT INTO %s (node_id, owner, expires_at) VALUES (?, ?, %s + ?) %s", t, s.nowMs, upsert)
	s.renewSQL = fmt.Sprintf("UPDATE %s SET expires_at = %s + ? WHERE node_id = ? AND owner = ?", t, s.nowMs)
	s.heldSQL = fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE node_id = ? AND owner = ?", t)
	s.releaseSQL = fmt.Sprintf("UPDATE %s SET owner = '', expires_at = 0, high_ms = ? WHERE node_id = ? AND owner = ?", t)
	s.highSQL = fmt.Sprintf("SELECT high_ms FROM %s WHERE node_id = ? AND owner = ?", t)
	s.raiseSQL = fmt.Sprintf("UPDATE %s SET high_ms = ? WHERE node_id = ? AND owner = ? AND high_ms < ?", t)
	if err := s.createTable(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// createTable creates the lease table if it is missing. Processes that start
// together may race to create it; PostgreSQL can then fail one CREATE TABLE IF
// NOT EXISTS, so an error counts only if the table is not there afterwards.
func (s *SQLLeaser) createTable(ctx context.Context) error {
	db := s.db.WithContext(ctx)
	err := db.Exec("CREATE TABLE IF NOT EXISTS " + s.cfg.Table +
		" (node_id BIGINT NOT NULL PRIMARY KEY, owner VARCHAR(64) NOT NULL, expires_at BIGINT NOT NULL, high_ms BIGINT NOT NULL DEFAULT 0)").Error
	if err != nil {
		var n int64
		if db.Raw("SELECT COUNT(*) FROM "+s.cfg.Table).Scan(&n).Error != nil {
			return fmt.Errorf("idgen: create lease table %s: %w", s.cfg.Table, err)
		}
	}
	// Tables of versions before the high mark lack its column.
	var n int64
	if db.Raw("SELECT COUNT(high_ms) FROM "+s.cfg.Table).Scan(&n).Error == nil {
		return nil
	}
	if err := db.Exec("ALTER TABLE " + s.cfg.Table + " ADD COLUMN high_ms BIGINT NOT NULL DEFAULT 0").Error; err != nil {
		if db.Raw("SELECT COUNT(high_ms) FROM "+s.cfg.Table).Scan(&n).Error == nil {
			return nil // another process added it
		}
		return fmt.Errorf("idgen: add column high_ms to lease table %s: %w", s.cfg.Table, err)
	}
	return nil
}

// Claim takes the lowest node of the range that has no row or an expired
// one. A claimer that loses a race for a node moves on to the next.
func (s *SQLLeaser) Claim(ctx context.Context, owner string, ttl time.Duration, high int64) (int64, int64, error) {
	db := s.db.WithContext(ctx)
	var rows []struct {
		NodeID  int64
		Expired int
	}
	if err := db.Raw(s.selectSQL, s.cfg.MinNode, s.cfg.MaxNode).Scan(&rows).Error; err != nil {
		return 0, 0, fmt.Errorf("idgen: read lease table %s: %w", s.cfg.Table, err)
	}
	expired := make(map[int64]bool, len(rows))
	for _, r := range rows {
		expired[r.NodeID] = r.Expired == 1
	}
	ms := ttl.Milliseconds()
	for n := s.cfg.MinNode; n <= s.cfg.MaxNode; n++ {
		exp, exists := expired[n]
		var res *gorm.DB
		switch {
		case !exists:
			res = db.Exec(s.insertSQL, n, owner, ms)
		case exp:
			res = db.Exec(s.updateSQL, owner, ms, n)
		default:
			continue
		}
		if res.Error != nil {
			return 0, 0, fmt.Errorf("idgen: claim node %d in %s: %w", n, s.cfg.Table, res.Error)
		}
		if res.RowsAffected == 1 {
			var prev int64
			if err := db.Raw(s.highSQL, n, owner).Scan(&prev).Error; err != nil {
				return 0, 0, fmt.Errorf("idgen: read the high mark of node %d in %s: %w", n, s.cfg.Table, err)
			}
			if err := db.Exec(s.raiseSQL, high, n, owner, high).Error; err != nil {
				return 0, 0, fmt.Errorf("idgen: raise the high mark of node %d in %s: %w", n, s.cfg.Table, err)
			}
			return n, prev, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: all of nodes %d..%d are held in table %s", ErrNoFreeNode, s.cfg.MinNode, s.cfg.MaxNode, s.cfg.Table)
}

// Renew moves node's expiry to ttl from now if owner still holds it.
func (s *SQLLeaser) Renew(ctx context.Context, node int64, owner string, ttl time.Duration, high int64) error {
	db := s.db.WithContext(ctx)
	res := db.Exec(s.renewSQL, ttl.Milliseconds(), node, owner)
	if res.Error != nil {
		return fmt.Errorf("idgen: renew node %d in %s: %w", node, s.cfg.Table, res.Error)
	}
	if res.RowsAffected == 1 {
		return s.raise(db, node, owner, high)
	}
	// MySQL counts a row whose values did not change as unaffected, so a
	// renewal within the same millisecond needs a second look.
	var held int64
	if err := db.Raw(s.heldSQL, node, owner).Scan(&held).Error; err != nil {
		return fmt.Errorf("idgen: renew node %d in %s: %w", node, s.cfg.Table, err)
	}
	if held == 0 {
		return fmt.Errorf("%w: node %d in %s was taken over by another owner", ErrLeaseLost, node, s.cfg.Table)
	}
	return s.raise(db, node, owner, high)
}

// raise lifts node's high mark to high if owner holds it.
func (s *SQLLeaser) raise(db *gorm.DB, node int64, owner string, high int64) error {
	if err := db.Exec(s.raiseSQL, high, node, owner, high).Error; err != nil {
		return fmt.Errorf("idgen: raise the high mark of node %d in %s: %w", node, s.cfg.Table, err)
	}
	return nil
}

// Release frees node's row and sets its high mark if owner still holds it;
// the row stays, so that the mark does.
func (s *SQLLeaser) Release(ctx context.Context, node int64, owner string, high int64) error {
	if err := s.db.WithContext(ctx).Exec(s.releaseSQL, high, node, owner).Error; err != nil {
		return fmt.Errorf("idgen: release node %d in %s: %w", node, s.cfg.Table, err)
	}
	return nil
}
