package at_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/rm/at/internal/attest"
)

// typeTable is a table with one column per type of a backend, seeded with
// values its text forms round: the images must keep each exactly whether
// the statement's before image is read with or without arguments (text or
// binary protocol on MySQL), prepared or interpolated.
type typeTable struct {
	create []string
	// exact lists select expressions that show every bit of each row: the
	// value, as the binary protocol reads it, and its bytes (HEX).
	exact string
}

func typeTableOf(b *attest.Backend) typeTable {
	switch b.Driver {
	case "mysql":
		return typeTable{
			create: []string{
				"DROP TABLE IF EXISTS ty",
				`CREATE TABLE ty (
					id INT NOT NULL PRIMARY KEY,
					f FLOAT NULL, fu FLOAT UNSIGNED NULL, d DOUBLE NULL, dec1 DECIMAL(65,30) NULL,
					bits BIT(64) NULL, ts TIMESTAMP(6) NULL, dt DATETIME(6) NULL, tm TIME(6) NULL,
					j JSON NULL, e ENUM('a','b c') NULL, s SET('x','y','z') NULL, y YEAR NULL,
					bin VARBINARY(16) NULL, txt TEXT NULL, n INT NOT NULL DEFAULT 0)`,
				`INSERT INTO ty (id, f, fu, d, dec1, bits, ts, dt, tm, j, e, s, y, bin, txt) VALUES
					(1, 16777217, 3.4028234663852886e38, 0.30000000000000004, 12345678901234567890123456789012345.123456789012345678901234567891,
					 b'1010101010101010101010101010101010101010101010101010101010101011', '2024-02-29 23:59:59.999999', '1000-01-01 00:00:00.000001',
					 '-838:59:59.000000', '{"k": [1, 2.50, "x"], "u": "\u00e9"}', 'b c', 'x,z', 2155, x'00ff', 'é'),
					(2, 1.17549435e-38, 0.1, 4.9e-324, -0.000000000000000000000000000001, b'0', '1970-01-01 00:00:01.000001', '9999-12-31 23:59:59.999999',
					 '838:59:59.999999', '[]', 'a', '', 1901, x'', ''),
					(3, -123456.789, 7, 1.7976931348623157e308, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
			},
			exact: "id, f * 1e0, fu * 1e0, d, HEX(d), dec1, HEX(bits), CAST(ts AS CHAR), UNIX_TIMESTAMP(ts), dt, tm, HEX(j), e, s, y, HEX(bin), HEX(txt), n",
		}
	case "pgx":
		return typeTable{
			create: []string{
				"DROP TABLE IF EXISTS ty",
				`CREATE TABLE ty (
					id INT PRIMARY KEY, r REAL NULL, d DOUBLE PRECISION NULL, num NUMERIC NULL, bits BIT VARYING(64) NULL,
					ts TIMESTAMP(6) NULL, tz TIMESTAMPTZ NULL, tzs TIMESTAMPTZ[] NULL, j JSON NULL, jb JSONB NULL,
					bin BYTEA NULL, txt TEXT NULL, n INT NOT NULL DEFAULT 0)`,
				`INSERT INTO ty (id, r, d, num, bits, ts, tz, tzs, j, jb, bin, txt) VALUES
					(1, 16777217, 0.30000000000000004, 12345678901234567890.1234567890123456789000, B'1011', '2024-02-29 23:59:59.999999',
					 '2024-02-29 23:59:59.999999+05:30', '{"2024-01-01 00:00:00.5+00","1999-12-31 23:00:00-07"}', '{"k":  [1, 2.50]}', '{"k": [1, 2.50]}', '\x00ff', 'é'),
					(2, 3.4028235e38, 4.9e-324, 'NaN', B'', '0001-01-01 00:00:00', '-infinity', '{}', '[]', '[]', '\x', ''),
					(3, -0.0, 1.7976931348623157e308, -0.000, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
			},
			exact: "id, r, encode(float4send(r), 'hex'), d, encode(float8send(d), 'hex'), num::text, bits::text, ts::text, tz, tzs::text, j::text, jb::text, bin, txt, n",
		}
	}
	return typeTable{
		create: []string{
			"DROP TABLE IF EXISTS ty",
			`CREATE TABLE ty (id INTEGER PRIMARY KEY, r REAL NULL, d DOUBLE NULL, num NUMERIC NULL, ts DATETIME NULL, j JSON NULL,
				bin BLOB NULL, txt TEXT NULL, n INT NOT NULL DEFAULT 0)`,
			`INSERT INTO ty (id, r, d, num, ts, j, bin, txt) VALUES
				(1, 16777217.0, 0.30000000000000004, '12345678901234567890.123', '2024-02-29 23:59:59.999999', '{"k":  [1, 2.50]}', x'00ff', 'é'),
				(2, 3.4028234663852886e38, 4.9e-324, 1e-30, '0001-01-01', '[]', x'', ''),
				(3, -0.0, 1.7976931348623157e308, 0, NULL, NULL, NULL, NULL)`,
		},
		exact: "id, r, typeof(r), d, num, typeof(num), ts, typeof(ts), j, hex(bin), typeof(bin), hex(txt), n",
	}
}

// exactDump reads every row of ty through exact, with an argument, so
// that MySQL answers in its binary protocol (FLOAT as a float32, compared
// as a number by DeepEqual) as well as in HEX.
func exactDump(t *testing.T, b *attest.Backend, exact string) [][]any {
	t.Helper()
	rows, err := b.Raw.Query(b.SQL("SELECT "+exact+" FROM ty WHERE id > ? ORDER BY id"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// withDSN returns a copy of b whose DSN has the extra parameters.
func withDSN(b *attest.Backend, params string) *attest.Backend {
	c := *b
	switch {
	case b.Driver == "pgx":
		c.DSN += " " + params
	case strings.Contains(b.DSN, "?"):
		c.DSN += "&" + params
	default:
		c.DSN += "?" + params
	}
	return &c
}

// rollbackIn runs f in a global transaction that rolls back, and waits for
// the rollback to finish with want.
func rollbackIn(t *testing.T, c *attest.Coordinator, want tcv1.GlobalStatus, f func(ctx context.Context) error) {
	t.Helper()
	var xid string
	err := c.TM.WithGlobalTx(context.Background(), "rollback", func(ctx context.Context) error {
		xid, _ = gtx.XIDFromContext(ctx)
		if err := f(ctx); err != nil {
			t.Errorf("branch: %v", err)
		}
		return errForceRollback
	})
	if !errors.Is(err, errForceRollback) {
		t.Fatalf("global rollback: %v", err)
	}
	if st := attest.WaitStatus(t, c, xid); st != want {
		t.Fatalf("status %s, want %s", st, want)
	}
}

// TestExactImagesEveryType rolls back an UPDATE and a DELETE of rows of
// every type, with and without arguments, on each backend and (MySQL,
// PostgreSQL) each protocol: the rows must come back bit for bit.
func TestExactImagesEveryType(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.AllBackends(t, func(t *testing.T, base *attest.Backend) {
		variants := map[string]*attest.Backend{"default": base}
		switch base.Driver {
		case "mysql":
			variants["interpolated"] = withDSN(base, "interpolateParams=true")
		case "pgx":
			variants["simple protocol"] = withDSN(base, "default_query_exec_mode=simple_protocol")
		}
		tt := typeTableOf(base)
		for name, b := range variants {
			t.Run(name, func(t *testing.T) {
				db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
				for _, tc := range []struct {
					name, sql string
					args      []any
				}{
					{"update without arguments", "UPDATE ty SET n = n + 1 WHERE id IN (1, 2, 3)", nil},
					{"update with an argument", "UPDATE ty SET n = n + 1 WHERE id IN (1, 2, ?)", []any{3}},
					{"delete without arguments", "DELETE FROM ty WHERE id IN (1, 2, 3)", nil},
					{"delete with an argument", "DELETE FROM ty WHERE id IN (1, 2, ?)", []any{3}},
				} {
					t.Run(tc.name, func(t *testing.T) {
						attest.MustExec(t, b.Raw, tt.create...)
						seed := exactDump(t, b, tt.exact)
						rollbackIn(t, c, tcv1.GlobalStatus_ROLLBACKED, func(ctx context.Context) error {
							return updateInBranch(ctx, db, b.SQL(tc.sql), tc.args...)
						})
						if got := exactDump(t, b, tt.exact); !attest.SameRows(got, seed) {
							t.Fatalf("after rollback:\n got:\n%s want:\n%s", attest.FormatRows(got), attest.FormatRows(seed))
						}
					})
				}
			})
		}
	})
}

// TestMySQLFloatImageIsExact is the case the text protocol rounds: a FLOAT
// of 16777217 is stored as 16777216 and printed as 16777200.
func TestMySQLFloatImageIsExact(t *testing.T) {
	c := attest.StartCoordinator(t)
	b := attest.MySQLBackend(t)
	db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
	attest.MustExec(t, b.Raw, "CREATE TABLE fl (id INT PRIMARY KEY, f FLOAT NOT NULL)", "INSERT INTO fl VALUES (1, 16777217), (2, 3.4028234663852886e38)")
	rollbackIn(t, c, tcv1.GlobalStatus_ROLLBACKED, func(ctx context.Context) error {
		return updateInBranch(ctx, db, "UPDATE fl SET f = 1")
	})
	rows, err := b.Raw.Query("SELECT f FROM fl WHERE id > ? ORDER BY id", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []float32
	for rows.Next() {
		var f float32
		if err := rows.Scan(&f); err != nil {
			t.Fatal(err)
		}
		got = append(got, f)
	}
	if want := []float32{16777216, math.MaxFloat32}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after rollback %v, want %v", got, want)
	}
}

// generatedSchema creates a table with a VIRTUAL and a STORED generated
// column on each backend.
func generatedSchema(b *attest.Backend) []string {
	switch b.Driver {
	case "mysql":
		return []string{"DROP TABLE IF EXISTS gen", `CREATE TABLE gen (id INT PRIMARY KEY, a INT NOT NULL,
			v INT AS (a * 2) VIRTUAL, s INT AS (a * 3) PERSISTENT, w BIGINT GENERATED ALWAYS AS (a + id) STORED)`,
			"INSERT INTO gen (id, a) VALUES (1, 10), (2, 20)"}
	case "pgx":
		return []string{"DROP TABLE IF EXISTS gen", `CREATE TABLE gen (id INT PRIMARY KEY, a INT NOT NULL,
			s INT GENERATED ALWAYS AS (a * 3) STORED)`, "INSERT INTO gen (id, a) VALUES (1, 10), (2, 20)"}
	}
	return []string{"DROP TABLE IF EXISTS gen", `CREATE TABLE gen (id INTEGER PRIMARY KEY, a INT NOT NULL,
		v INT GENERATED ALWAYS AS (a * 2) VIRTUAL, s INT GENERATED ALWAYS AS (a * 3) STORED)`,
		"INSERT INTO gen (id, a) VALUES (1, 10), (2, 20)"}
}

// TestGeneratedColumns rolls back an UPDATE, a DELETE and an INSERT of a
// table with generated columns: only the base columns are written back.
func TestGeneratedColumns(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.AllBackends(t, func(t *testing.T, b *attest.Backend) {
		db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
		for _, tc := range []struct{ name, sql string }{
			{"update", "UPDATE gen SET a = a + 1"},
			{"delete", "DELETE FROM gen WHERE id = 2"},
			{"insert", "INSERT INTO gen (id, a) VALUES (3, 30)"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				attest.MustExec(t, b.Raw, generatedSchema(b)...)
				seed := attest.Dump(t, b.Raw, "gen")
				rollbackIn(t, c, tcv1.GlobalStatus_ROLLBACKED, func(ctx context.Context) error {
					return updateInBranch(ctx, db, tc.sql)
				})
				if got := attest.Dump(t, b.Raw, "gen"); !attest.SameRows(got, seed) {
					t.Fatalf("after rollback:\n got:\n%s want:\n%s", attest.FormatRows(got), attest.FormatRows(seed))
				}
			})
		}
	})
}

// TestNonDeterministicWhere runs UPDATEs and DELETEs whose WHERE picks
// other rows each time it is evaluated: each changes exactly the rows its
// before image holds, or aborts the branch, and a rollback restores every
// row.
func TestNonDeterministicWhere(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.AllBackends(t, func(t *testing.T, b *attest.Backend) {
		db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
		random := map[string]string{"mysql": "RAND()", "pgx": "random()", "sqlite": "(abs(random()) % 1000) / 1000.0"}[b.Driver]
		setup := []string{"DROP TABLE IF EXISTS nd", "CREATE TABLE nd (id INT PRIMARY KEY, v INT NOT NULL)"}
		var values []string
		for i := 1; i <= 400; i++ {
			values = append(values, fmt.Sprintf("(%d, 0)", i))
		}
		setup = append(setup, "INSERT INTO nd VALUES "+strings.Join(values, ", "))
		for _, sql := range []string{
			"UPDATE nd SET v = v + 1 WHERE " + random + " < 0.5",
			"DELETE FROM nd WHERE " + random + " < 0.5",
		} {
			t.Run(strings.Fields(sql)[0], func(t *testing.T) {
				for round := 0; round < 3; round++ {
					attest.MustExec(t, b.Raw, setup...)
					seed := attest.Dump(t, b.Raw, "nd")
					var xid string
					var stmtErr error
					err := c.TM.WithGlobalTx(context.Background(), "nd", func(ctx context.Context) error {
						xid, _ = gtx.XIDFromContext(ctx)
						if stmtErr = updateInBranch(ctx, db, sql); stmtErr != nil {
							return stmtErr
						}
						return errForceRollback
					})
					if stmtErr != nil && !errors.Is(stmtErr, at.ErrTxAborted) {
						t.Fatalf("statement: %v, want success or ErrTxAborted", stmtErr)
					}
					if err == nil {
						t.Fatal("global transaction committed")
					}
					if st := attest.WaitStatus(t, c, xid); st != tcv1.GlobalStatus_ROLLBACKED {
						t.Fatalf("status %s", st)
					}
					if got := attest.Dump(t, b.Raw, "nd"); !attest.SameRows(got, seed) {
						t.Fatalf("round %d: rows differ after rollback (statement error %v)", round, stmtErr)
					}
				}
			})
		}
	})
}

// TestSessionSettingsRefused checks that a SET of a setting that changes
// how values read or write is refused in a global transaction, and that a
// global transaction is refused on a connection that ran one before.
func TestSessionSettingsRefused(t *testing.T) {
	c := attest.StartCoordinator(t)
	sets := map[string][]string{
		"mysql": {"SET time_zone = '+07:00'", "SET SESSION sql_mode = ''", "SET @@session.time_zone = 'SYSTEM'", "SET NAMES latin1"},
		"pgx":   {"SET TimeZone = 'Asia/Tokyo'", "SET TIME ZONE 'UTC'", "SET LOCAL DateStyle = 'German'", "SET search_path = public", "RESET ALL"},
	}
	for _, b := range []*attest.Backend{attest.MySQLBackend(t), attest.PostgresBackend(t)} {
		t.Run(b.Name, func(t *testing.T) {
			db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
			attest.MustExec(t, b.Raw, "CREATE TABLE st (id INT PRIMARY KEY, v INT NOT NULL)", "INSERT INTO st VALUES (1, 0)")
			for _, set := range sets[b.Driver] {
				t.Run(set, func(t *testing.T) {
					err := c.TM.WithGlobalTx(context.Background(), "set", func(ctx context.Context) error {
						return updateInBranch(ctx, db, set)
					})
					if !errors.Is(err, at.ErrRefused) {
						t.Fatalf("got %v, want ErrRefused", err)
					}
				})
			}
			// A user variable changes nothing the images read.
			if b.Driver == "mysql" {
				if err := c.TM.WithGlobalTx(context.Background(), "uservar", func(ctx context.Context) error {
					return updateInBranch(ctx, db, "SET @x = 1")
				}); err != nil {
					t.Fatalf("SET @x: %v", err)
				}
			}
			ctx := context.Background()
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, sets[b.Driver][0]); err != nil {
				t.Fatalf("outside a global transaction: %v", err)
			}
			err = c.TM.WithGlobalTx(ctx, "after-set", func(ctx context.Context) error {
				tx, err := conn.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				defer tx.Rollback()
				if _, err := tx.ExecContext(ctx, b.SQL("UPDATE st SET v = ? WHERE id = 1"), 5); err != nil {
					return err
				}
				return tx.Commit()
			})
			if !errors.Is(err, at.ErrRefused) || !strings.Contains(err.Error(), "DSN") {
				t.Fatalf("global transaction on a connection that changed its session: %v, want ErrRefused saying what to do", err)
			}
		})
	}
}

// TestMultiStatementChecksFirst checks that a string of several statements
// whose last is refused runs none of them, and that such strings with
// arguments are refused on every backend.
func TestMultiStatementChecksFirst(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.AllBackends(t, func(t *testing.T, b *attest.Backend) {
		db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
		attest.MustExec(t, b.Raw, schema(b)...)
		attest.MustExec(t, b.Raw, "CREATE TABLE nopk (a INT, b INT)")
		seed := dumpAll(t, b)
		for _, tc := range []struct {
			name, sql string
			args      []any
		}{
			{"refused last", "UPDATE flag SET flag = 9 WHERE id = 1; UPDATE nopk SET a = 1", nil},
			{"refused kind last", "DELETE FROM line WHERE order_id = 1; INSERT INTO flag SELECT * FROM flag", nil},
			{"with arguments", "UPDATE flag SET flag = 9 WHERE id = ?; DELETE FROM line WHERE order_id = 1", []any{1}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var stmtErr error
				err := c.TM.WithGlobalTx(context.Background(), "multi", func(ctx context.Context) error {
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					defer tx.Rollback()
					_, stmtErr = tx.ExecContext(ctx, b.SQL(tc.sql), tc.args...)
					if !errors.Is(stmtErr, at.ErrRefused) {
						t.Errorf("got %v, want ErrRefused", stmtErr)
					}
					// Refused before anything ran: the transaction goes on
					// and commits nothing.
					return tx.Commit()
				})
				if err != nil {
					t.Fatalf("global transaction: %v", err)
				}
				compare(t, "after refusal", dumpAll(t, b), seed)
			})
		}
	})
}

// TestRefusalTexts checks that refusals name statements in their own SQL,
// never by a Go type, and advise the syntax of the backend's dialect.
func TestRefusalTexts(t *testing.T) {
	pg := attest.DialectOf(&attest.Backend{Driver: "pgx"})
	for _, tc := range []struct {
		d               at.Dialect
		sql, want, deny string
	}{
		{at.MySQL(), "CALL p()", "CALL", "ast."},
		{at.MySQL(), "LOAD DATA INFILE 'x' INTO TABLE t", "LOAD DATA", "ast."},
		{at.MySQL(), "REPLACE INTO t VALUES (1)", "ON DUPLICATE KEY UPDATE", "ON CONFLICT"},
		{at.SQLite(), "REPLACE INTO t VALUES (1)", "ON CONFLICT", "DUPLICATE KEY"},
		{pg, "CALL p()", "CALL", "Stmt"},
		{pg, "CREATE TABLE x (a int)", "CREATE TABLE", "Stmt"},
		{pg, "VACUUM", "VACUUM", "Stmt"},
	} {
		stmts, err := tc.d.Parse(tc.sql)
		if err != nil {
			t.Fatalf("%s: %v", tc.sql, err)
		}
		why := stmts[0].Refusal
		if stmts[0].Kind != at.KindRefused || !strings.Contains(why, tc.want) || strings.Contains(why, tc.deny) || strings.Contains(why, "*") {
			t.Errorf("%s (%s): refusal %q, want one naming %q and not %q", tc.sql, tc.d.Name(), why, tc.want, tc.deny)
		}
	}
}

// TestChunkFailureAbortsBranch runs an UPDATE over more rows than one
// statement takes (500 keys a chunk) whose second chunk fails: the first
// chunk changed rows that have no undo image yet, so the branch is aborted
// (ErrTxAborted) rather than left to commit rows a rollback cannot restore,
// and the global rollback restores every row.
func TestChunkFailureAbortsBranch(t *testing.T) {
	c := attest.StartCoordinator(t)
	attest.AllBackends(t, func(t *testing.T, b *attest.Backend) {
		db := attest.OpenAT(t, b, attest.NewRM(t, c), c)
		setup := []string{"DROP TABLE IF EXISTS chunked", "CREATE TABLE chunked (id INT PRIMARY KEY, u INT NOT NULL UNIQUE)"}
		var values []string
		for i := 1; i <= 600; i++ {
			values = append(values, fmt.Sprintf("(%d, %d)", i, i))
		}
		setup = append(setup, "INSERT INTO chunked VALUES "+strings.Join(values, ", "))
		attest.MustExec(t, b.Raw, setup...)
		seed := attest.Dump(t, b.Raw, "chunked")
		// Rows 1-500 move to 1001-1500; row 550, in the second chunk, then
		// collides with row 1's new value.
		sql := "UPDATE chunked SET u = CASE WHEN id = 550 THEN 1001 ELSE u + 1000 END WHERE id > 0"
		var xid string
		var stmtErr error
		err := c.TM.WithGlobalTx(context.Background(), "chunked", func(ctx context.Context) error {
			xid, _ = gtx.XIDFromContext(ctx)
			stmtErr = updateInBranch(ctx, db, sql)
			return stmtErr
		})
		// PostgreSQL runs it as one statement with RETURNING, and a failed
		// statement aborts the whole local transaction there.
		if b.Driver == "pgx" && stmtErr == nil || b.Driver != "pgx" && !errors.Is(stmtErr, at.ErrTxAborted) {
			t.Fatalf("statement: %v, want ErrTxAborted (or on PostgreSQL any error)", stmtErr)
		}
		if err == nil {
			t.Fatal("global transaction committed")
		}
		if st := attest.WaitStatus(t, c, xid); st != tcv1.GlobalStatus_ROLLBACKED {
			t.Fatalf("status %s", st)
		}
		if got := attest.Dump(t, b.Raw, "chunked"); !attest.SameRows(got, seed) {
			t.Fatal("rows differ after rollback")
		}
	})
}
