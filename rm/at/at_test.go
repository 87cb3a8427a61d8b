package at_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm/at/internal/attest"
)

var errForceRollback = errors.New("force rollback")

// schema creates the test tables with every column type the undo log must
// keep exactly, and seeds them.
func schema(b *attest.Backend) []string {
	switch b.Driver {
	case "pgx":
		return pgSchema()
	case "mysql":
		return []string{
			"DROP TABLE IF EXISTS acct", "DROP TABLE IF EXISTS line", "DROP TABLE IF EXISTS flag",
			`CREATE TABLE acct (
				id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
				code VARCHAR(32) NOT NULL,
				balance DECIMAL(30,10) NOT NULL,
				ts DATETIME(6) NULL,
				doc JSON NULL,
				data BLOB NULL,
				big BIGINT UNSIGNED NULL,
				f DOUBLE NULL,
				r FLOAT NULL,
				note VARBINARY(64) NULL,
				txt TEXT NULL,
				UNIQUE KEY uk_code (code))`,
			"CREATE TABLE line (order_id INT NOT NULL, line_no INT NOT NULL, qty INT NOT NULL, PRIMARY KEY (order_id, line_no))",
			"CREATE TABLE flag (id BIGINT NOT NULL PRIMARY KEY, acct_id BIGINT NOT NULL, flag INT NOT NULL)",
			`INSERT INTO acct (id, code, balance, ts, doc, data, big, f, r, note, txt) VALUES
				(1, 'a1', 12.3456000001, '2024-02-29 23:59:59.123456', '{"k": [1, 2.50, "x"]}', x'00ff10', 18446744073709551615, 0.30000000000000004, 1.1, x'c328', 'it''s ☃'),
				(2, 'a2', -9999999999.9999999999, '1970-01-01 00:00:01.000001', NULL, x'', 0, -1e300, -0.5, NULL, NULL),
				(3, 'a3', 0, NULL, 'null', NULL, NULL, NULL, NULL, x'5c27225f2c3b3a25', 'back\\slash')`,
			"INSERT INTO line VALUES (1, 1, 10), (1, 2, 20), (2, 1, 30)",
			"INSERT INTO flag VALUES (1, 1, 1), (2, 2, 0), (3, 3, 5)",
		}
	}
	return []string{
		"DROP TABLE IF EXISTS acct", "DROP TABLE IF EXISTS line", "DROP TABLE IF EXISTS flag",
		`CREATE TABLE acct (
			id INTEGER PRIMARY KEY,
			code TEXT NOT NULL UNIQUE,
			balance DECIMAL(30,10) NOT NULL,
			ts DATETIME NULL,
			doc JSON NULL,
			data BLOB NULL,
			big INTEGER NULL,
			f REAL NULL,
			r REAL NULL,
			note BLOB NULL,
			txt TEXT NULL)`,
		"CREATE TABLE line (order_id INT NOT NULL, line_no INT NOT NULL, qty INT NOT NULL, PRIMARY KEY (order_id, line_no))",
		"CREATE TABLE flag (id INTEGER NOT NULL PRIMARY KEY, acct_id INTEGER NOT NULL, flag INT NOT NULL)",
		`INSERT INTO acct (id, code, balance, ts, doc, data, big, f, r, note, txt) VALUES
			(1, 'a1', '12.3456000001', '2024-02-29 23:59:59.123456', '{"k": [1, 2.50, "x"]}', x'00ff10', 9223372036854775807, 0.30000000000000004, 1.1, x'c328', 'it''s ☃'),
			(2, 'a2', -12.5, '1970-01-01T00:00:01.000001Z', NULL, x'', 0, -1e300, -0.5, NULL, NULL),
			(3, 'a3', 0, NULL, 'null', NULL, NULL, NULL, NULL, x'5c27225f2c3b3a25', 'back\slash')`,
		"INSERT INTO line VALUES (1, 1, 10), (1, 2, 20), (2, 1, 30)",
		"INSERT INTO flag VALUES (1, 1, 1), (2, 2, 0), (3, 3, 5)",
	}
}

type dmlCase struct {
	name  string
	mysql bool // MySQL syntax only
	sql   string
	args  []any
	// autocommit runs the statement outside any *sql.Tx.
	autocommit bool
}

// allBytes returns every byte value once, in order.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func dmlCases() []dmlCase {
	blob := allBytes()
	return []dmlCase{
		{name: "insert single auto-increment", sql: "INSERT INTO acct (code, balance, ts, doc, data, big, f, r, note, txt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			args: []any{"n1", "42.0000000001", "2025-12-31 12:00:00.999999", `{"a": null}`, blob, int64(7), 1.5, 2.25, []byte{0xff, 0x00}, "naïve \x00 text"}},
		{name: "insert multi-row auto-increment", sql: "INSERT INTO acct (code, balance) VALUES ('m1', 1.5), ('m2', 2.5), (?, ?)", args: []any{"m3", "3.5"}},
		{name: "insert explicit key", sql: "INSERT INTO acct (id, code, balance) VALUES (100, 'e1', 3), (?, 'e2', 4)", args: []any{int64(101)}},
		{name: "insert composite key", sql: "INSERT INTO line (order_id, line_no, qty) VALUES (1, 3, 7), (3, 1, ?)", args: []any{int64(8)}},
		{name: "update by where", sql: "UPDATE acct SET balance = balance + ?, ts = ?, data = ?, txt = NULL WHERE id IN (1, 2)", args: []any{"0.5", "2030-01-01 00:00:00.5", []byte("new\x00data")}},
		{name: "update every row", sql: "UPDATE acct SET note = ?, doc = NULL", args: []any{[]byte{1, 2, 3}}},
		{name: "update composite key", sql: "UPDATE line SET qty = qty + 1 WHERE order_id = ?", args: []any{int64(1)}},
		{name: "delete by where", sql: "DELETE FROM acct WHERE id = ? OR code = 'a3'", args: []any{int64(1)}},
		{name: "delete composite key", sql: "DELETE FROM line WHERE order_id = 1 AND line_no = 2"},
		{name: "multi-statement", sql: "UPDATE acct SET balance = 0 WHERE id = 2; DELETE FROM line WHERE order_id = 2; INSERT INTO flag VALUES (9, 1, 4)"},
		{name: "insert, update and delete one row", sql: "INSERT INTO flag VALUES (9, 1, 4); UPDATE flag SET flag = 7 WHERE id = 9; DELETE FROM flag WHERE id = 9; UPDATE line SET qty = 1 WHERE order_id = 2"},
		{name: "autocommit update", sql: "UPDATE acct SET big = 5 WHERE id = 1", autocommit: true},
		{name: "insert ignore", mysql: true, sql: "INSERT IGNORE INTO acct (id, code, balance) VALUES (1, 'zz', 0), (200, 'n2', 1)"},
		{name: "delete order by limit", mysql: true, sql: "DELETE FROM acct ORDER BY balance DESC LIMIT ?", args: []any{int64(2)}},
		{name: "update order by limit", mysql: true, sql: "UPDATE acct SET r = r * 2 ORDER BY code LIMIT 2"},
		{name: "insert on duplicate key update", mysql: true, sql: "INSERT INTO acct (code, balance) VALUES ('a1', 5), ('new', 6) ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance), txt = 'dup'"},
		{name: "update join", mysql: true, sql: "UPDATE acct a JOIN flag f ON f.acct_id = a.id SET a.balance = a.balance * 2, f.flag = f.flag + 1 WHERE f.flag > ?", args: []any{int64(0)}},
		{name: "delete join", mysql: true, sql: "DELETE a, f FROM acct a JOIN flag f ON f.acct_id = a.id WHERE a.id = 2"},
		{name: "delete join one target", mysql: true, sql: "DELETE f FROM flag f JOIN acct a ON f.acct_id = a.id WHERE a.code LIKE 'a%'"},
	}
}

var tables = []string{"acct", "line", "flag"}

// dumpAll returns the rows of every test table of b; on PostgreSQL in its
// text output (pgDumpAll).
func dumpAll(t *testing.T, b *attest.Backend) [][][]any {
	if b.Driver == "pgx" {
		return pgDumpAll(t, b.Raw)
	}
	out := make([][][]any, len(tables))
	for i, tb := range tables {
		out[i] = attest.Dump(t, b.Raw, tb)
	}
	return out
}

func compare(t *testing.T, what string, got, want [][][]any) {
	t.Helper()
	for i := range tables {
		if !attest.SameRows(got[i], want[i]) {
			t.Fatalf("%s: table %s:\n got:\n%s want:\n%s", what, tables[i], attest.FormatRows(got[i]), attest.FormatRows(want[i]))
		}
	}
}

// runPlain runs a case in a plain local transaction of b, one statement at
// a time (the plain driver does not take multi-statement strings).
func runPlain(ctx context.Context, b *attest.Backend, c dmlCase) error {
	if b.Driver == "pgx" {
		return pgRunPlain(ctx, b.Raw, c)
	}
	tx, err := b.Raw.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	args := c.args
	for _, s := range strings.Split(c.sql, "; ") {
		n := strings.Count(s, "?")
		if _, err := tx.ExecContext(ctx, s, args[:n]...); err != nil {
			tx.Rollback()
			return err
		}
		args = args[n:]
	}
	return tx.Commit()
}

func runIn(ctx context.Context, db *sql.DB, c dmlCase) error {
	if c.autocommit {
		_, err := db.ExecContext(ctx, c.sql, c.args...)
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, c.sql, c.args...); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// TestStatementCommitAndRollback runs every statement kind of each backend
// through checkCase.
func TestStatementCommitAndRollback(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.AllBackends(t, func(t *testing.T, b *attest.Backend) {
		db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
		cases := dmlCases()
		if b.Driver == "pgx" {
			cases = pgCases()
		}
		for _, tc := range cases {
			if tc.mysql && b.Driver != "mysql" {
				continue
			}
			t.Run(tc.name, func(t *testing.T) { checkCase(t, c, b, db, tc) })
		}
	})
}

// checkCase runs tc three times on a freshly seeded schema: in a plain
// local transaction (the expected result, which must differ from the
// seed), in a global transaction that commits (must match it), and in one
// that rolls back (must restore the seed byte for byte).
func checkCase(t *testing.T, c *attest.Coordinator, b *attest.Backend, db *sql.DB, tc dmlCase) {
	t.Helper()
	ctx := context.Background()
	attest.MustExec(t, b.Raw, schema(b)...)
	seed := dumpAll(t, b)
	if err := runPlain(ctx, b, tc); err != nil {
		t.Fatalf("plain: %v", err)
	}
	want := dumpAll(t, b)
	changed := false
	for i := range tables {
		changed = changed || !attest.SameRows(want[i], seed[i])
	}
	if !changed {
		t.Fatal("the case changes nothing: it tests nothing")
	}

	attest.MustExec(t, b.Raw, schema(b)...)
	if err := c.TM.WithGlobalTx(ctx, "commit-"+tc.name, func(ctx context.Context) error { return runIn(ctx, db, tc) }); err != nil {
		t.Fatalf("global commit: %v", err)
	}
	got := dumpAll(t, b)
	if strings.Contains(tc.sql, "gen_random_uuid") {
		// Random per run: compare all but that column's effect.
		got, want = dropUUIDs(got), dropUUIDs(want)
	}
	compare(t, "after global commit", got, want)

	attest.MustExec(t, b.Raw, schema(b)...)
	var xid string
	err := c.TM.WithGlobalTx(ctx, "rollback-"+tc.name, func(ctx context.Context) error {
		xid, _ = gtx.XIDFromContext(ctx)
		if err := runIn(ctx, db, tc); err != nil {
			t.Errorf("statement: %v", err)
		}
		return errForceRollback
	})
	if !errors.Is(err, errForceRollback) {
		t.Fatalf("global rollback: %v", err)
	}
	if st := attest.WaitStatus(t, c, xid); st != tcv1.GlobalStatus_ROLLBACKED {
		t.Fatalf("status %s", st)
	}
	compare(t, "after global rollback", dumpAll(t, b), seed)
}
