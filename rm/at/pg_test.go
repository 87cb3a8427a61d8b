package at_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/rm/at/internal/attest"
)

// pgSchema creates the PostgreSQL test tables, with every column type the
// undo log must keep exactly, and seeds them. flag's key is GENERATED
// ALWAYS, so that rollback must put deleted rows back with OVERRIDING
// SYSTEM VALUE.
func pgSchema() []string {
	return []string{
		"DROP TABLE IF EXISTS acct, line, flag, nopk, child",
		// Types are made once per database: dropping a type that the
		// pool's prepared statements use fails them (XX000), as it would
		// a plain pgx pool.
		`DO $$ BEGIN
			CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
			CREATE DOMAIN posint AS INT CHECK (VALUE > 0);
		EXCEPTION WHEN duplicate_object THEN NULL;
		END $$`,
		`CREATE TABLE acct (
			id BIGSERIAL PRIMARY KEY,
			code VARCHAR(32) NOT NULL UNIQUE,
			balance NUMERIC(30,10) NOT NULL,
			ts TIMESTAMP(6) NULL,
			tz TIMESTAMPTZ NULL,
			doc JSONB NULL,
			raw JSON NULL,
			data BYTEA NULL,
			big BIGINT NULL,
			f DOUBLE PRECISION NULL,
			r REAL NULL,
			u UUID NULL,
			ok BOOLEAN NULL,
			tags TEXT[] NULL,
			n NUMERIC NULL,
			d DATE NULL,
			iv INTERVAL NULL,
			ip INET NULL,
			m mood NULL,
			pos posint NULL,
			half BIGINT GENERATED ALWAYS AS (big / 2) STORED,
			txt TEXT NULL)`,
		"CREATE TABLE line (order_id INT NOT NULL, line_no INT NOT NULL, qty INT NOT NULL, PRIMARY KEY (order_id, line_no))",
		"CREATE TABLE flag (id INT GENERATED ALWAYS AS IDENTITY (START WITH 100) PRIMARY KEY, acct_id BIGINT NOT NULL DEFAULT 0, flag INT NOT NULL DEFAULT 0)",
		`INSERT INTO acct (id, code, balance, ts, tz, doc, raw, data, big, f, r, u, ok, tags, n, d, iv, ip, m, pos, txt) VALUES
			(1, 'a1', 12.3456000001, '2024-02-29 23:59:59.123456', '2024-02-29 23:59:59.123456+05:30', '{"k": [1, 2.50, "x"]}', '{"k":  [1, 2.50]}',
			 '\x00ff10', 9223372036854775807, 0.30000000000000004, 1.1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, '{a,"b c",NULL}', 1.500, '2024-02-29',
			 '1 year 2 mons 3 days 04:05:06.000007', '192.168.0.1/24', 'happy', 7, 'it''s ☃'),
			(2, 'a2', -9999999999.9999999999, '1970-01-01 00:00:01.000001', '1970-01-01 00:00:01.000001+00', NULL, 'null', '\x', 0, -1e300, -0.5, NULL, false, '{}', 'NaN', '0001-01-01 BC',
			 '-1 microsecond', '::1', 'sad', 1, NULL),
			(3, 'a3', 0, 'infinity', '-infinity', 'null', NULL, NULL, NULL, 'Infinity', 'NaN', NULL, NULL, NULL, NULL, 'infinity',
			 NULL, NULL, NULL, NULL, E'back\\slash\ttab')`,
		"SELECT setval('acct_id_seq', 10)",
		"INSERT INTO line VALUES (1, 1, 10), (1, 2, 20), (2, 1, 30)",
		"INSERT INTO flag (id, acct_id, flag) OVERRIDING SYSTEM VALUE VALUES (1, 1, 1), (2, 2, 0), (3, 3, 5)",
	}
}

// pgDumpAll returns the rows of every test table in PostgreSQL's text
// output, which shows every difference of value, type modifier and scale.
func pgDumpAll(t *testing.T, db *sql.DB) [][][]any {
	t.Helper()
	out := make([][][]any, len(tables))
	for i, tb := range tables {
		rows, err := db.Query("SELECT x::text FROM " + tb + " x ORDER BY 1")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out[i] = append(out[i], []any{s})
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func pgCases() []dmlCase {
	blob := allBytes()
	return []dmlCase{
		{name: "insert single serial", sql: "INSERT INTO acct (code, balance, ts, tz, doc, raw, data, big, f, r, u, ok, tags, n, d, iv, ip, m, pos, txt) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
			args: []any{"n1", "42.0000000001", "2025-12-31 12:00:00.999999", "2025-12-31 12:00:00.000001-08", `{"a": null}`, `[1,  2]`, blob, int64(-7), 1.5, 2.25,
				"00000000-0000-0000-0000-000000000001", true, "{x,y}", "0.10", "2000-02-29", "1 day 00:00:00.5", "10.0.0.0/8", "ok", int64(3), "naïve ' text"}},
		{name: "insert default values", sql: "INSERT INTO flag DEFAULT VALUES"},
		{name: "insert multi-row serial", sql: "INSERT INTO acct (code, balance) VALUES ('m1', 1.5), ('m2', 2.5), ($1, $2)", args: []any{"m3", "3.5"}},
		{name: "insert explicit key", sql: "INSERT INTO acct (id, code, balance) VALUES (100, 'e1', 3), ($1, 'e2', 4)", args: []any{int64(101)}},
		{name: "insert key from expression", sql: "INSERT INTO acct (id, code, balance) VALUES (40 + 2, 'x1', 1)"},
		{name: "insert composite key", sql: "INSERT INTO line (order_id, line_no, qty) VALUES (1, 3, 7), (3, 1, $1)", args: []any{int64(8)}},
		{name: "insert identity", sql: "INSERT INTO flag (acct_id, flag) VALUES (1, 2), ($1, 3)", args: []any{int64(2)}},
		{name: "insert returning", sql: "INSERT INTO acct (code, balance) VALUES ('r1', 1) RETURNING id, code"},
		{name: "insert schema-qualified", sql: "INSERT INTO public.line VALUES (5, 5, 5)"},
		{name: "update by where", sql: `UPDATE acct SET balance = balance + $1, ts = $2, tz = $3, data = $4, txt = NULL, doc = doc || '{"z": 1}', tags = array_append(tags, 'q'), ok = NOT ok, d = d + 1 WHERE id IN (1, 2)`,
			args: []any{"0.5", "2030-01-01 00:00:00.5", "2030-01-01 00:00:00.5+01", []byte("new\x00data")}},
		{name: "update row constructor", sql: "UPDATE acct SET (iv, ip, m, pos) = ('2 hours', '10.1.2.3', 'sad', $1) WHERE id = 2", args: []any{int64(9)}},
		{name: "update only", sql: "UPDATE ONLY acct SET big = big - 1, m = 'ok' WHERE id = 1"},
		{name: "update every row", sql: "UPDATE acct SET data = $1, doc = NULL, raw = '{}', u = gen_random_uuid()", args: []any{[]byte{1, 2, 3}}},
		{name: "update composite key", sql: "UPDATE line SET qty = qty + 1 WHERE order_id = $1", args: []any{int64(1)}},
		{name: "update repeated placeholder", sql: "UPDATE acct SET big = $1 WHERE big IS DISTINCT FROM $1", args: []any{int64(5)}},
		{name: "update jsonb operator", sql: "UPDATE acct SET txt = 'has k?' WHERE doc ? 'k' OR doc ?| array['z']"},
		{name: "update from", sql: "UPDATE acct a SET balance = a.balance * 2 FROM flag f WHERE f.acct_id = a.id AND f.flag > $1", args: []any{int64(0)}},
		{name: "update from values", sql: "UPDATE acct SET txt = v.t FROM (VALUES (1, 'one'), (3, 'three')) AS v(id, t) WHERE acct.id = v.id"},
		{name: "update schema-qualified", sql: "UPDATE public.acct SET r = r * 2 WHERE id = 1"},
		{name: "update returning", sql: "UPDATE acct SET big = 1 WHERE id = 2 RETURNING *"},
		{name: "delete by where", sql: "DELETE FROM acct WHERE id = $1 OR code = 'a3'", args: []any{int64(1)}},
		{name: "delete composite key", sql: "DELETE FROM line WHERE order_id = 1 AND line_no = 2"},
		{name: "delete using", sql: "DELETE FROM flag f USING acct a WHERE f.acct_id = a.id AND a.code LIKE 'a%' AND a.id > $1", args: []any{int64(1)}},
		{name: "delete subquery", sql: "DELETE FROM line WHERE order_id IN (SELECT id FROM acct WHERE balance > $1)", args: []any{"1"}},
		{name: "delete identity rows", sql: "DELETE FROM flag"},
		{name: "upsert do update", sql: "INSERT INTO acct (code, balance) VALUES ('a1', 5), ('new', 6) ON CONFLICT (code) DO UPDATE SET balance = acct.balance + excluded.balance, txt = 'dup'"},
		{name: "upsert do nothing", sql: "INSERT INTO acct (id, code, balance) VALUES (1, 'zz', 0), ($1, 'n2', 1) ON CONFLICT DO NOTHING", args: []any{int64(200)}},
		{name: "upsert on constraint do nothing", sql: "INSERT INTO line VALUES (1, 2, 0), (9, 9, 9) ON CONFLICT ON CONSTRAINT line_pkey DO NOTHING"},
		{name: "upsert do update where", sql: "INSERT INTO line (order_id, line_no, qty) VALUES (1, 2, 0), (2, 1, 0), (9, 9, 9) ON CONFLICT (order_id, line_no) DO UPDATE SET qty = line.qty + 100 WHERE line.qty < 25"},
		{name: "upsert setting a key to excluded", sql: "INSERT INTO acct (id, code, balance) VALUES (1, 'a1', 3), ($1, 'b7', 4) ON CONFLICT (id) DO UPDATE SET code = excluded.code, balance = excluded.balance", args: []any{int64(7)}},
		{name: "upsert composite", sql: "INSERT INTO line (order_id, line_no, qty) VALUES (1, 1, 99), (4, 4, 4) ON CONFLICT (order_id, line_no) DO UPDATE SET qty = excluded.qty"},
		{name: "multi-statement", sql: "UPDATE acct SET balance = 0 WHERE id = 2; DELETE FROM line WHERE order_id = 2; INSERT INTO flag (acct_id, flag) VALUES (1, 4)"},
		{name: "insert, update and delete one row", sql: "INSERT INTO flag (id, acct_id, flag) OVERRIDING SYSTEM VALUE VALUES (9, 1, 4); UPDATE flag SET flag = 7 WHERE id = 9; DELETE FROM flag WHERE id = 9; UPDATE line SET qty = 1 WHERE order_id = 2"},
		{name: "autocommit update", sql: "UPDATE acct SET big = 5 WHERE id = 1", autocommit: true},
	}
}

var placeholder = regexp.MustCompile(`\$(\d+)`)

// pgRunPlain runs a case in a plain pgx transaction, one statement at a
// time with its placeholders numbered from $1 (the extended protocol takes
// one statement).
func pgRunPlain(ctx context.Context, db *sql.DB, c dmlCase) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, s := range strings.Split(c.sql, "; ") {
		var args []any
		local := map[string]string{}
		s = placeholder.ReplaceAllStringFunc(s, func(p string) string {
			if _, ok := local[p]; !ok {
				n, _ := strconv.Atoi(p[1:])
				args = append(args, c.args[n-1])
				local[p] = fmt.Sprintf("$%d", len(args))
			}
			return local[p]
		})
		if _, err := tx.ExecContext(ctx, s, args...); err != nil {
			tx.Rollback()
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return tx.Commit()
}

func pgSetup(t *testing.T) (*attest.Coordinator, *attest.Backend) {
	c := attest.StartCoordinator(t)
	b := attest.PostgresBackend(t)
	attest.MustExec(t, b.Raw, schema(b)...)
	return c, b
}

var uuidText = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

func dropUUIDs(d [][][]any) [][][]any {
	out := make([][][]any, len(d))
	for i, rows := range d {
		for _, r := range rows {
			out[i] = append(out[i], []any{uuidText.ReplaceAllString(r[0].(string), "uuid")})
		}
	}
	return out
}

// TestPostgresReturning checks that RETURNING of INSERT, UPDATE and DELETE
// is answered inside a global transaction, generated keys included.
func TestPostgresReturning(t *testing.T) {
	c, b := pgSetup(t)
	db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
	ctx := context.Background()
	err := c.TM.WithGlobalTx(ctx, "returning", func(ctx context.Context) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		var ids []int64
		rows, err := tx.QueryContext(ctx, "INSERT INTO acct (code, balance) VALUES ($1, 1), ($2, 2) RETURNING id, code", "k1", "k2")
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			var code string
			if err := rows.Scan(&id, &code); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if len(ids) != 2 || ids[0] != 11 || ids[1] != 12 {
			t.Errorf("generated keys %v, want [11 12]", ids)
		}
		var balance, code string
		if err := tx.QueryRowContext(ctx, "UPDATE acct SET balance = balance * 3 WHERE id = $1 RETURNING balance, code", ids[1]).Scan(&balance, &code); err != nil {
			return err
		}
		if balance != "6.0000000000" || code != "k2" {
			t.Errorf("UPDATE RETURNING %q %q", balance, code)
		}
		var qty int64
		if err := tx.QueryRowContext(ctx, "DELETE FROM line WHERE order_id = 2 RETURNING qty").Scan(&qty); err != nil || qty != 30 {
			t.Errorf("DELETE RETURNING %d, %v", qty, err)
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		return errForceRollback
	})
	if !errors.Is(err, errForceRollback) {
		t.Fatal(err)
	}
}

// TestPostgresUpdateOfOtherRows runs an UPDATE whose WHERE matches another
// row each time it is evaluated: the rows it changed (as its RETURNING
// tells) are not the ones its before image holds, so the statement must
// abort the branch, and rolling back must leave every row as it was.
func TestPostgresUpdateOfOtherRows(t *testing.T) {
	c, b := pgSetup(t)
	db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
	attest.MustExec(t, b.Raw, "DROP SEQUENCE IF EXISTS pick", "CREATE SEQUENCE pick")
	seed := dumpAll(t, b)
	ctx := context.Background()
	err := c.TM.WithGlobalTx(ctx, "moving where", func(ctx context.Context) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, "UPDATE acct SET balance = balance + 100 WHERE id = (SELECT nextval('pick'))"); err != nil {
			return err
		}
		return tx.Commit()
	})
	if !errors.Is(err, at.ErrTxAborted) {
		t.Fatalf("got %v, want at.ErrTxAborted", err)
	}
	compare(t, "after the aborted branch", dumpAll(t, b), seed)
}

// TestPostgresRefusedStatements checks what PostgreSQL SQL is refused in a
// global transaction, leaving the data as it was.
func TestPostgresRefusedStatements(t *testing.T) {
	c, b := pgSetup(t)
	db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
	attest.MustExec(t, b.Raw, "CREATE TABLE nopk (a INT, b INT)", "INSERT INTO nopk VALUES (1, 1)",
		"CREATE TABLE child (id INT PRIMARY KEY, order_id INT, line_no INT, FOREIGN KEY (order_id, line_no) REFERENCES line ON DELETE CASCADE)",
		"INSERT INTO child VALUES (1, 1, 1)")
	seed := dumpAll(t, b)
	cases := []struct{ name, sql string }{
		{"insert select", "INSERT INTO flag (acct_id, flag) SELECT id, 0 FROM acct"},
		{"ddl", "ALTER TABLE acct ADD COLUMN extra INT"},
		{"truncate", "TRUNCATE line"},
		{"table without primary key", "UPDATE nopk SET a = 2"},
		{"delete cascading to another table", "DELETE FROM line WHERE order_id = 1"},
		{"update of primary key", "UPDATE acct SET id = id + 100 WHERE id = 1"},
		{"merge", "MERGE INTO line l USING acct a ON l.order_id = a.id WHEN MATCHED THEN DELETE"},
		{"writable cte", "WITH d AS (DELETE FROM line RETURNING *) SELECT count(*) FROM d"},
		{"update with cte", "WITH x AS (SELECT 1 AS id) UPDATE acct SET txt = 'x' FROM x WHERE acct.id = x.id"},
		{"transaction control", "SAVEPOINT s"},
		{"returning expression", "DELETE FROM acct WHERE id = 1 RETURNING id, balance + 1"},
		{"upsert without a usable key", "INSERT INTO acct (code, balance) VALUES (upper('a1'), 1) ON CONFLICT (code) DO NOTHING"},
		{"upsert assigning a key", "INSERT INTO line (order_id, line_no, qty) VALUES (1, 1, 5) ON CONFLICT (order_id, line_no) DO UPDATE SET line_no = 9"},
		{"upsert on constraint", "INSERT INTO line (order_id, line_no, qty) VALUES (1, 1, 5) ON CONFLICT ON CONSTRAINT line_pkey DO UPDATE SET qty = 9"},
		{"upsert without a column list", "INSERT INTO line VALUES (1, 1, 5) ON CONFLICT (order_id, line_no) DO UPDATE SET qty = 9"},
		{"upsert conflict column not given", "INSERT INTO acct (id, balance) VALUES (1, 5) ON CONFLICT (code) DO UPDATE SET balance = 9"},
		{"upsert on a partial index", "INSERT INTO acct (id, code, balance) VALUES (1, 'a1', 5) ON CONFLICT (code) WHERE balance > 0 DO UPDATE SET balance = 9"},
		{"upsert on an expression", "INSERT INTO acct (id, code, balance) VALUES (1, 'a1', 5) ON CONFLICT (lower(code)) DO UPDATE SET balance = 9"},
		{"copy", "COPY line FROM STDIN"},
		{"do block", "DO $$ BEGIN DELETE FROM line; END $$"},
		{"unparsable", "UPDATE acct SET"},
	}
	checkRefused(t, c, b, db, seed, cases)
}

// TestPostgresSchemaChange adds a column behind the cached metadata: the
// first statement naming it is refused and drops the cache (42703), the
// next one works and rolls back exactly.
func TestPostgresSchemaChange(t *testing.T) {
	c, b := pgSetup(t)
	db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
	ctx := context.Background()
	inGlobal := func(query string) error {
		err := c.TM.WithGlobalTx(ctx, "ddl", func(ctx context.Context) error {
			if err := updateInBranch(ctx, db, query); err != nil {
				return err
			}
			return errForceRollback
		})
		if errors.Is(err, errForceRollback) {
			return nil
		}
		return err
	}
	if err := inGlobal("UPDATE acct SET txt = 'warm' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	attest.MustExec(t, b.Raw, "ALTER TABLE acct ADD COLUMN extra INT NOT NULL DEFAULT 5")
	if err := inGlobal("UPDATE acct SET extra = 7 WHERE id = 1"); !errors.Is(err, at.ErrRefused) {
		t.Fatalf("first statement on the new column: got %v, want ErrRefused", err)
	}
	seed := dumpAll(t, b)
	if err := inGlobal("UPDATE acct SET extra = 7 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	attest.MustExec(t, b.Raw, "DROP TABLE flag")
	if err := inGlobal("DELETE FROM flag"); err == nil {
		t.Fatal("statement on a dropped table worked")
	}
	attest.MustExec(t, b.Raw, "CREATE TABLE flag (id INT PRIMARY KEY, acct_id BIGINT NOT NULL, flag INT NOT NULL)",
		"INSERT INTO flag VALUES (1, 1, 1), (2, 2, 0), (3, 3, 5)")
	if err := inGlobal("DELETE FROM flag WHERE id = 1"); err != nil {
		t.Fatalf("statement on the re-created table: %v", err)
	}
	if got := dumpAll(t, b); !attest.SameRows(got[0], seed[0]) {
		t.Fatalf("acct after rollbacks:\n%s want:\n%s", attest.FormatRows(got[0]), attest.FormatRows(seed[0]))
	}
}

func pgRandomStatement(rng *rand.Rand) (string, []any) {
	texts := []any{nil, "", "x", "it's", "tab\ttab", "☃", "2001-02-03 04:05:06.5", "?"}
	blobs := []any{nil, []byte{}, []byte{0}, []byte{0xff, 0xfe, '\\'}, []byte("plain")}
	v := func() any { return texts[rng.Intn(len(texts))] }
	blob := func() any { return blobs[rng.Intn(len(blobs))] }
	id := int64(1 + rng.Intn(40))
	switch rng.Intn(8) {
	case 0:
		return "INSERT INTO acct (code, balance, txt, data, tags) VALUES ($1, $2, $3, $4, ARRAY[$3])", []any{fmt.Sprintf("r%d", rng.Int63()), int64(rng.Intn(1000)), v(), blob()}
	case 1:
		return "INSERT INTO line (order_id, line_no, qty) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", []any{int64(100 + rng.Intn(1000)), int64(rng.Intn(1000)), int64(rng.Intn(9))}
	case 2:
		return "UPDATE acct SET txt = $1, data = $2, balance = balance + 1.25, tz = tz + interval '1 microsecond' WHERE id < $3", []any{v(), blob(), id}
	case 3:
		return "UPDATE line SET qty = qty * 2 WHERE order_id % 2 = $1", []any{int64(rng.Intn(2))}
	case 4:
		return "DELETE FROM acct WHERE id = $1 OR txt = $2", []any{id, v()}
	case 5:
		return "UPDATE acct a SET big = coalesce(a.big % 1000, 0) + l.qty FROM line l WHERE l.order_id = a.id AND l.qty > $1", []any{int64(rng.Intn(30))}
	case 6:
		return "INSERT INTO acct (code, balance) VALUES ($1, 1) ON CONFLICT (code) DO UPDATE SET balance = acct.balance + 1", []any{fmt.Sprintf("a%d", 1+rng.Intn(4))}
	}
	return "DELETE FROM line WHERE qty > $1", []any{int64(rng.Intn(30))}
}

// TestPostgresRandomDMLRollback is TestRandomDMLRollback on PostgreSQL.
func TestPostgresRandomDMLRollback(t *testing.T) {
	c, b := pgSetup(t)
	db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
	rng := rand.New(rand.NewSource(1))
	for round := int64(0); round < 15; round++ {
		randomRollback(t, c, b, db, rand.New(rand.NewSource(round)), 8, pgRandomStatement)
		q, args := pgRandomStatement(rng)
		if _, err := b.Raw.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzPostgresRandomDMLRollback is FuzzRandomDMLRollback on PostgreSQL.
func FuzzPostgresRandomDMLRollback(f *testing.F) {
	for _, s := range []int64{1, 2, 3} {
		f.Add(s)
	}
	c := attest.StartCoordinator(f)
	b := attest.PostgresBackend(f)
	db := attest.OpenAT(f, b, attest.NewRM(f, c), c)
	f.Fuzz(func(t *testing.T, seedValue int64) {
		attest.MustExec(t, b.Raw, schema(b)...)
		randomRollback(t, c, b, db, rand.New(rand.NewSource(seedValue)), 8, pgRandomStatement)
	})
}

// TestPostgresSweeper leaves undo rows behind on PostgreSQL, as lost
// phase-2 deletions would: the sweeper deletes the row of a COMMITTED
// transaction and that of a transaction the coordinator does not know once
// older than UnknownAfter, and keeps a younger unknown one.
func TestPostgresSweeper(t *testing.T) {
	c, b := pgSetup(t)
	ctx := context.Background()
	if err := at.Migrate(ctx, b.Raw, attest.DialectOf(b), ""); err != nil {
		t.Fatal(err)
	}
	tx, err := c.TM.Begin(ctx, "sweep-committed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	attest.WaitStatus(t, c, tx.XID())
	leave := "INSERT INTO gtx_undo_log (xid, branch_id, state, rollback_info, created_at) VALUES ($1, 1, 0, '\\x', clock_timestamp() - $2::interval)"
	for _, r := range [][2]string{{tx.XID(), "1 minute"}, {"unknown-old", "2 hours"}, {"unknown-young", "1 minute"}} {
		if _, err := b.Raw.Exec(leave, r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	attest.OpenAT(t, b, attest.NewRM(t, c), c, fastSweep)
	left := func() []string {
		var xids []string
		rows, err := b.Raw.Query("SELECT xid FROM gtx_undo_log ORDER BY xid")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var x string
			if err := rows.Scan(&x); err != nil {
				t.Fatal(err)
			}
			xids = append(xids, x)
		}
		return xids
	}
	deadline := time.Now().Add(20 * time.Second)
	for got := left(); len(got) != 1 || got[0] != "unknown-young"; got = left() {
		if time.Now().After(deadline) {
			t.Fatalf("undo rows left: %v, want only unknown-young", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
