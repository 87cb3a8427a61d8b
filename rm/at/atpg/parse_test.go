package atpg_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/rm/at/atpg"
)

func TestParse(t *testing.T) {
	d := atpg.Postgres()
	cases := []struct {
		name, sql string
		kind      at.Kind
		stmtSQL   string
		args      []int
		targets   []at.TableRef
		from      string
		where     string
		returning []string
		refusal   string
	}{
		{name: "update with params out of order", sql: "UPDATE public.acct a SET balance = $2 WHERE a.id = $1 AND a.doc ? 'k' RETURNING id, *",
			kind: at.KindUpdate, stmtSQL: `UPDATE public.acct a SET balance = ? WHERE a.id = ? AND a.doc OPERATOR(pg_catalog.?) 'k'`, args: []int{1, 0},
			targets: []at.TableRef{{Schema: "public", Name: "acct", Alias: "a"}}, from: "public.acct a", where: "a.id = ? AND a.doc OPERATOR(pg_catalog.?) 'k'", returning: []string{"id", "*"}},
		{name: "update from values", sql: "UPDATE acct SET n = v.n FROM (VALUES (1, 'x?')) v(id, n) WHERE acct.id = v.id",
			kind: at.KindUpdate, stmtSQL: "UPDATE acct SET n = v.n FROM (VALUES (1, 'x?')) v(id, n) WHERE acct.id = v.id",
			targets: []at.TableRef{{Name: "acct", Alias: "acct"}}, from: "acct, (VALUES (1, 'x?')) v(id, n)", where: "acct.id = v.id"},
		{name: "delete using", sql: `DELETE FROM "Acct" USING line l WHERE "Acct".id = l.id AND l.q > $1`,
			kind: at.KindDelete, stmtSQL: `DELETE FROM "Acct" USING line l WHERE "Acct".id = l.id AND l.q > ?`, args: []int{0},
			targets: []at.TableRef{{Name: "Acct", Alias: "Acct"}}, from: `"Acct", line l`, where: `"Acct".id = l.id AND l.q > ?`},
		{name: "insert repeated param", sql: "INSERT INTO t (a, b) VALUES ($1, $1), (DEFAULT, -3) RETURNING *",
			kind: at.KindInsert, stmtSQL: "INSERT INTO t (a, b) VALUES (?, ?), (DEFAULT, -3)", args: []int{0, 0},
			targets: []at.TableRef{{Name: "t", Alias: "t"}}, returning: []string{"*"}},
		{name: "upsert", sql: "INSERT INTO t AS x (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET b = excluded.b",
			kind: at.KindUpsert, stmtSQL: "INSERT INTO t AS x (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET b = excluded.b",
			targets: []at.TableRef{{Name: "t", Alias: "x"}}},
		{name: "select for update of", sql: "SELECT * FROM a JOIN b ON a.id = b.id WHERE b.x = $1 ORDER BY a.id LIMIT 3 FOR UPDATE OF b",
			kind: at.KindSelectForUpdate, stmtSQL: "SELECT * FROM a JOIN b ON a.id = b.id WHERE b.x = ? ORDER BY a.id LIMIT 3 FOR UPDATE OF b", args: []int{0},
			targets: []at.TableRef{{Name: "b", Alias: "b"}}, from: "a JOIN b ON a.id = b.id", where: "b.x = ?"},
		{name: "plain select", sql: "SELECT $1::int + 1", kind: at.KindPassThrough, stmtSQL: "SELECT ?::int + 1", args: []int{0}},
		{name: "select for no key update", sql: "SELECT 1 FROM s.t WHERE id = 1 FOR NO KEY UPDATE",
			kind: at.KindSelectForUpdate, stmtSQL: "SELECT 1 FROM s.t WHERE id = 1 FOR NO KEY UPDATE",
			targets: []at.TableRef{{Schema: "s", Name: "t", Alias: "t"}}, from: "s.t", where: "id = 1"},
		{name: "select for share", sql: "SELECT 1 FROM t FOR SHARE", kind: at.KindPassThrough, stmtSQL: "SELECT 1 FROM t FOR SHARE"},
		{name: "read-only with", sql: "WITH x AS (SELECT 1 AS a) SELECT a FROM x", kind: at.KindPassThrough, stmtSQL: "WITH x AS (SELECT 1 AS a) SELECT a FROM x"},
		{name: "lock", sql: "LOCK TABLE t IN SHARE MODE", kind: at.KindPassThrough, stmtSQL: "LOCK TABLE t IN SHARE MODE"},
		{name: "default values", sql: "INSERT INTO t DEFAULT VALUES", kind: at.KindInsert, stmtSQL: "INSERT INTO t DEFAULT VALUES",
			targets: []at.TableRef{{Name: "t", Alias: "t"}}},
		{name: "select into", sql: "SELECT * INTO x FROM t", kind: at.KindRefused, refusal: "SELECT ... INTO"},
		{name: "for update with group by", sql: "SELECT a FROM t GROUP BY a FOR UPDATE", kind: at.KindRefused, refusal: "GROUP BY"},
		{name: "upsert row shorter than its columns", sql: "INSERT INTO t (a, b) VALUES (1) ON CONFLICT (b) DO UPDATE SET a = 2", kind: at.KindRefused, refusal: "conflict column"},
		{name: "do block", sql: "DO $$ BEGIN NULL; END $$", kind: at.KindRefused, refusal: "DO runs statements"},
		{name: "insert select", sql: "INSERT INTO t SELECT * FROM u", kind: at.KindRefused, refusal: "INSERT ... SELECT"},
		{name: "ddl", sql: "CREATE TABLE x (a int)", kind: at.KindRefused, refusal: "CREATE TABLE changes the schema"},
		{name: "merge", sql: "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE", kind: at.KindRefused, refusal: "MERGE"},
		{name: "writable cte", sql: "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", kind: at.KindRefused, refusal: "writable WITH"},
		{name: "returning expression", sql: "DELETE FROM t RETURNING id + 1", kind: at.KindRefused, refusal: "RETURNING"},
		{name: "transaction control", sql: "COMMIT", kind: at.KindRefused, refusal: "transaction control"},
		{name: "explain analyze", sql: "EXPLAIN ANALYZE DELETE FROM t", kind: at.KindRefused, refusal: "EXPLAIN ANALYZE"},
		{name: "current of", sql: "UPDATE t SET a = 1 WHERE CURRENT OF c", kind: at.KindRefused, refusal: "CURRENT OF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stmts, err := d.Parse(tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if len(stmts) != 1 {
				t.Fatalf("%d statements", len(stmts))
			}
			st := stmts[0]
			if st.Kind != tc.kind {
				t.Fatalf("kind %s, want %s (%s)", st.Kind, tc.kind, st.Refusal)
			}
			if tc.kind == at.KindRefused {
				if !strings.Contains(st.Refusal, tc.refusal) {
					t.Fatalf("refusal %q does not say %q", st.Refusal, tc.refusal)
				}
				return
			}
			if st.SQL != tc.stmtSQL || !reflect.DeepEqual(st.Args, tc.args) {
				t.Fatalf("SQL %q %v, want %q %v", st.SQL, st.Args, tc.stmtSQL, tc.args)
			}
			if !reflect.DeepEqual(st.Targets, tc.targets) || st.From.SQL != tc.from || st.Where.SQL != tc.where {
				t.Fatalf("targets %+v from %q where %q", st.Targets, st.From.SQL, st.Where.SQL)
			}
			if !reflect.DeepEqual(st.Returning, tc.returning) {
				t.Fatalf("returning %v, want %v", st.Returning, tc.returning)
			}
		})
	}
}

func TestParseMultiStatement(t *testing.T) {
	stmts, err := atpg.Postgres().Parse("UPDATE a SET x = $2; DELETE FROM b WHERE id = $1; SET search_path = public")
	if err != nil {
		t.Fatal(err)
	}
	if len(stmts) != 3 || stmts[0].Kind != at.KindUpdate || stmts[1].Kind != at.KindDelete || stmts[2].Kind != at.KindPassThrough {
		t.Fatalf("got %+v", stmts)
	}
	if !reflect.DeepEqual(stmts[0].Args, []int{1}) || !reflect.DeepEqual(stmts[1].Args, []int{0}) {
		t.Fatalf("args %v %v", stmts[0].Args, stmts[1].Args)
	}
	if _, err := atpg.Postgres().Parse("UPDATE t SET"); !errors.Is(err, at.ErrParse) {
		t.Fatalf("got %v, want ErrParse", err)
	}
}

func TestBind(t *testing.T) {
	d := atpg.Postgres()
	got, err := d.Bind(`SELECT "a?" FROM t WHERE x = ? AND y = 'it''s ?' AND j OPERATOR(pg_catalog.?) ? AND z = E'\'?' AND w IN (?, ?)`)
	want := `SELECT "a?" FROM t WHERE x = $1 AND y = 'it''s ?' AND j OPERATOR(pg_catalog.?) $2 AND z = E'\'?' AND w IN ($3, $4)`
	if err != nil || got != want {
		t.Fatalf("got %q, %v\nwant %q", got, err, want)
	}
	if _, err := d.Bind("SELECT $1"); err == nil {
		t.Fatal("a numbered placeholder was accepted")
	}
}

// TestParseCache checks that a query parsed again from the cache gives the
// same statements, unaffected by changes the caller made to the first.
func TestParseCache(t *testing.T) {
	d := atpg.Postgres()
	const q = "UPDATE cache_t SET a = $1 WHERE id = $2"
	first, err := d.Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	want := first[0].SQL
	first[0].SQL = "changed"
	second, err := d.Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	if second[0].SQL != want || !reflect.DeepEqual(second[0].Args, []int{0, 1}) {
		t.Fatalf("cached parse: %q %v", second[0].SQL, second[0].Args)
	}
}
