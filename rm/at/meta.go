package at

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Column describes one column of a table.
type Column struct {
	Name string
	// DataType is the database's type name in lower case ("bigint",
	// "datetime", "decimal"; for SQLite the declared type).
	DataType string
	// Unsigned is set for MySQL unsigned integer columns.
	Unsigned bool
	// AutoIncrement is set for the column the database numbers itself.
	AutoIncrement bool
	// Generated is set for a column the database computes from the others
	// (GENERATED ALWAYS AS ..., VIRTUAL or STORED): read in images, never
	// written back. SQLite's PRAGMA table_info does not list them at all.
	Generated bool
}

// TableMeta is what the proxy knows of a table: its columns and keys.
type TableMeta struct {
	// Name is the table's one canonical name: as stored (SQLite: lower
	// case), schema-qualified only outside the current database.
	Name    string
	Columns []Column
	// PK holds the positions in Columns of the primary key's columns.
	PK []int
	// Uniques holds, for each unique key other than the primary key, the
	// positions of its columns.
	Uniques [][]int
	// Refuse says, by statement kind, why writes of that kind to the
	// table cannot be imaged (PostgreSQL: a foreign key of another table
	// that cascades them there); nil when none.
	Refuse map[Kind]string
}

// ColumnIndex returns the position of column name (case-insensitive), or -1.
func (m *TableMeta) ColumnIndex(name string) int {
	for i, c := range m.Columns {
		if strings.EqualFold(c.Name, name) {
			return i
		}
	}
	return -1
}

// AutoIncrement returns the position of the auto-increment column, or -1.
func (m *TableMeta) AutoIncrement() int {
	for i, c := range m.Columns {
		if c.AutoIncrement {
			return i
		}
	}
	return -1
}

func (m *TableMeta) isPK(col int) bool {
	for _, p := range m.PK {
		if p == col {
			return true
		}
	}
	return false
}

func (m *TableMeta) inUnique(col int) bool {
	if m.isPK(col) {
		return true
	}
	for _, u := range m.Uniques {
		for _, p := range u {
			if p == col {
				return true
			}
		}
	}
	return false
}

// metaCache caches table metadata per table name. Entries are dropped when
// a statement fails with a schema-change error or DDL runs through the
// proxy, and reloaded once older than ttl, which bounds how long DDL run
// elsewhere goes unseen.
type metaCache struct {
	ttl    time.Duration
	mu     sync.Mutex
	tables map[string]cachedMeta
}

type cachedMeta struct {
	meta     *TableMeta
	loadedAt time.Time
}

func newMetaCache(ttl time.Duration) *metaCache {
	return &metaCache{ttl: ttl, tables: make(map[string]cachedMeta)}
}

func (c *metaCache) get(ctx context.Context, d Dialect, q queryer, ref TableRef) (*TableMeta, error) {
	key := ref.QualifiedName()
	c.mu.Lock()
	e, ok := c.tables[key]
	c.mu.Unlock()
	if ok && time.Since(e.loadedAt) < c.ttl {
		return e.meta, nil
	}
	m, err := d.LoadTable(ctx, q, ref)
	if err != nil {
		return nil, fmt.Errorf("at: read metadata of table %s: %w", ref.QualifiedName(), err)
	}
	c.mu.Lock()
	c.tables[key] = cachedMeta{meta: m, loadedAt: time.Now()}
	c.mu.Unlock()
	return m, nil
}

// invalidate drops every cached table.
func (c *metaCache) invalidate() {
	c.mu.Lock()
	clear(c.tables)
	c.mu.Unlock()
}
