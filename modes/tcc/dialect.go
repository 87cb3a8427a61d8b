package tcc

import (
	"fmt"
	"strings"
)

// queries holds a fence's SQL in its dialect.
type queries struct {
	create []string
	// insert adds a row (xid, branch_id, action, status, created_at,
	// updated_at) unless one exists; it affects no row then.
	insert string
	// suspend is Cancel's insert of a suspended row: like insert, and on
	// MySQL it locks an existing row exclusively.
	suspend string
	// move sets (status, updated_at) where (xid, branch_id, status).
	move string
	// status reads the status of (xid, branch_id), locking the row.
	status string
	// peek reads the status of (xid, branch_id) without locking.
	peek string
	// clean deletes at most a batch of finished rows updated before a time:
	// (updated_at, limit).
	clean string
}

func newQueries(d Dialect, table string) queries {
	var q queries
	cols := "(xid, branch_id, action, status, created_at, updated_at)"
	finished := "status IN ('" + string(FenceConfirmed) + "', '" + string(FenceCancelled) + "', '" + string(FenceSuspended) + "')"
	body := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	xid VARCHAR(128) NOT NULL,
	branch_id BIGINT NOT NULL,
	action VARCHAR(128) NOT NULL,
	status VARCHAR(16) NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (xid, branch_id)`, table)
	index := table + "_updated_at"
	switch d {
	case MySQL:
		q.create = []string{body + ",\n\tKEY " + index + " (updated_at)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"}
		q.insert = "INSERT IGNORE INTO " + table + " " + cols + " VALUES (?, ?, ?, ?, ?, ?)"
		q.suspend = "INSERT INTO " + table + " " + cols + " VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE updated_at = updated_at"
		q.status = "SELECT status FROM " + table + " WHERE xid = ? AND branch_id = ? FOR UPDATE"
		q.clean = "DELETE FROM " + table + " WHERE " + finished + " AND updated_at < ? LIMIT ?"
	case Postgres:
		q.create = []string{body + "\n)", "CREATE INDEX IF NOT EXISTS " + index + " ON " + table + " (updated_at)"}
		q.insert = "INSERT INTO " + table + " " + cols + " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
		q.status = "SELECT status FROM " + table + " WHERE xid = ? AND branch_id = ? FOR UPDATE"
		q.clean = "DELETE FROM " + table + " WHERE ctid IN (SELECT ctid FROM " + table + " WHERE " + finished + " AND updated_at < ? LIMIT ?)"
	case SQLite:
		q.create = []string{body + "\n)", "CREATE INDEX IF NOT EXISTS " + index + " ON " + table + " (updated_at)"}
		q.insert = "INSERT OR IGNORE INTO " + table + " " + cols + " VALUES (?, ?, ?, ?, ?, ?)"
		q.status = "SELECT status FROM " + table + " WHERE xid = ? AND branch_id = ?"
		q.clean = "DELETE FROM " + table + " WHERE rowid IN (SELECT rowid FROM " + table + " WHERE " + finished + " AND updated_at < ? LIMIT ?)"
	}
	if q.suspend == "" {
		q.suspend = q.insert
	}
	q.peek = "SELECT status FROM " + table + " WHERE xid = ? AND branch_id = ?"
	q.move = "UPDATE " + table + " SET status = ?, updated_at = ? WHERE xid = ? AND branch_id = ? AND status = ?"
	if d == Postgres {
		for _, p := range []*string{&q.insert, &q.suspend, &q.move, &q.status, &q.peek, &q.clean} {
			*p = numbered(*p)
		}
	}
	return q
}

// numbered turns ? placeholders into PostgreSQL's $1, $2, ...; the queries
// hold no other question marks.
func numbered(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
