package at_test

import (
	"context"
	"testing"

	"github.com/gtx-io/gtx/rm/at/internal/attest"
)

// TestSQLiteUpserts runs SQLite's upserts on the seeded schema through
// checkCase, and checks the upserts that cannot be undone are refused.
func TestSQLiteUpserts(t *testing.T) {
	c := attest.StartCoordinator(t)
	b := attest.SQLiteBackend(t)
	db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
	cases := []dmlCase{
		{name: "do update by primary key", sql: "INSERT INTO acct (id, code, balance) VALUES (1, 'a1', 5), (100, 'new', ?) ON CONFLICT (id) DO UPDATE SET balance = balance + excluded.balance, txt = 'dup'",
			args: []any{"6"}},
		{name: "do update by unique key, key set from excluded", sql: `INSERT INTO "acct" ("code","balance","txt") VALUES (?,?,?),(?,?,?) ON CONFLICT ("code") DO UPDATE SET "code"="excluded"."code","balance"="excluded"."balance","txt"="excluded"."txt"`,
			args: []any{"a2", "7.5", "x", "n9", "8", nil}},
		{name: "do update where", sql: "INSERT INTO acct (id, code, balance, txt) VALUES (1, 'a1', 0, 'one'), (3, 'a3', 0, 'three') ON CONFLICT (id) DO UPDATE SET txt = excluded.txt WHERE balance > ?",
			args: []any{int64(0)}},
		{name: "do nothing", sql: "INSERT INTO acct (id, code, balance) VALUES (1, 'zz', 0), (200, 'n2', 1) ON CONFLICT DO NOTHING"},
		{name: "do nothing by target", sql: "INSERT INTO acct (id, code, balance) VALUES (7, 'a1', 0), (201, 'n3', 1) ON CONFLICT (code) DO NOTHING"},
		{name: "or ignore", sql: "INSERT OR IGNORE INTO acct (id, code, balance) VALUES (?, 'zz', 0), (200, 'n2', 1)", args: []any{int64(2)}},
		{name: "composite key", sql: "INSERT INTO line (order_id, line_no, qty) VALUES (?, 1, ?), (9, 9, 9) ON CONFLICT (order_id, line_no) DO UPDATE SET qty = qty + excluded.qty * ?",
			args: []any{int64(1), int64(5), int64(2)}},
		{name: "several clauses", sql: "INSERT INTO acct (id, code, balance) VALUES (2, 'a3', 1), (3, 'q', 1) ON CONFLICT (id) DO UPDATE SET balance = 99 ON CONFLICT DO NOTHING"},
		{name: "or abort", sql: "INSERT OR ABORT INTO flag VALUES (4, 1, ?)", args: []any{int64(1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkCase(t, c, b, db, tc) })
	}

	attest.MustExec(t, b.Raw, schema(b)...)
	seed := dumpAll(t, b)
	refused := []struct{ name, sql string }{
		{"or replace", "INSERT OR REPLACE INTO acct (id, code, balance) VALUES (1, 'a1', 0)"},
		{"replace", "REPLACE INTO acct (id, code, balance) VALUES (1, 'a1', 0)"},
		{"or fail", "INSERT OR FAIL INTO flag VALUES (1, 1, 1), (9, 1, 1)"},
		{"do update without target", "INSERT INTO acct (id, code, balance) VALUES (1, 'a1', 0) ON CONFLICT DO UPDATE SET balance = 1"},
		{"do update of a key", "INSERT INTO acct (id, code, balance) VALUES (1, 'a1', 0) ON CONFLICT (id) DO UPDATE SET code = 'other'"},
		{"target by expression", "INSERT INTO flag (id, acct_id, flag) VALUES (abs(-1), 1, 1) ON CONFLICT (id) DO UPDATE SET flag = 9"},
		{"upsert among other statements", "UPDATE flag SET flag = 2 WHERE id = 1; INSERT OR IGNORE INTO flag VALUES (4, 1, 1)"},
		{"numbered placeholder", "INSERT INTO flag (id, acct_id, flag) VALUES (?1, 1, 1) ON CONFLICT (id) DO UPDATE SET flag = 9"},
	}
	for _, tc := range refused {
		t.Run("refused "+tc.name, func(t *testing.T) {
			var args []any
			if tc.name == "numbered placeholder" {
				args = []any{int64(1)}
			}
			checkRefusal(t, c, b, seed, func(ctx context.Context) error {
				_, err := db.ExecContext(ctx, tc.sql, args...)
				return err
			})
		})
	}
}
