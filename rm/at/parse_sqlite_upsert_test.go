package at

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseSQLiteUpsert(t *testing.T) {
	tests := []struct {
		name    string
		sql     string
		kind    Kind
		refusal string // part of the refusal, for KindRefused
		sqlOut  string // Statement.SQL; the input without ";" when empty
		args    []int
		update  []string
		ignore  bool
		columns []string
		ret     []string
	}{
		{name: "do update with excluded", sql: `INSERT INTO "acct" ("id","code","balance") VALUES (?,?,?) ON CONFLICT ("id") DO UPDATE SET "code"="excluded"."code","balance"="excluded"."balance" + 1`,
			kind: KindUpsert, args: []int{0, 1, 2}, update: []string{"balance"}, columns: []string{"id", "code", "balance"}},
		{name: "gorm upsert with returning", sql: `INSERT INTO "acct" ("code","balance") VALUES (?,?) ON CONFLICT ("code") DO UPDATE SET "balance"="excluded"."balance" RETURNING "id"`,
			kind: KindUpsert, sqlOut: `INSERT INTO "acct" ("code","balance") VALUES (?,?) ON CONFLICT ("code") DO UPDATE SET "balance"="excluded"."balance"`,
			args: []int{0, 1}, columns: []string{"code", "balance"}, ret: []string{"id"}},
		{name: "placeholders in the clause", sql: "insert into t (id, v) values (?, ?), (2, ?) on conflict (id) do update set v = v + ?, w = ? where v < ?;",
			kind: KindUpsert, args: []int{0, 1, 2, 3, 4, 5}, update: []string{"v", "w"}, columns: []string{"id", "v"}},
		{name: "tuple assignment", sql: "INSERT INTO t (id, a, b) VALUES (1, 2, 3) ON CONFLICT (id) DO UPDATE SET (a, b) = (excluded.a, excluded.b)",
			kind: KindUpsert, update: []string{"a", "b"}, columns: []string{"id", "a", "b"}},
		{name: "excluded of another column counts", sql: "INSERT INTO t (id, a, b) VALUES (1, 2, 3) ON CONFLICT (id) DO UPDATE SET a = excluded.b, [b] = CASE WHEN b > 0 THEN excluded.b ELSE f(a, b) END",
			kind: KindUpsert, update: []string{"a", "b"}, columns: []string{"id", "a", "b"}},
		{name: "do nothing", sql: "INSERT INTO t (id) VALUES (?) ON CONFLICT DO NOTHING",
			kind: KindUpsert, args: []int{0}, ignore: true, columns: []string{"id"}},
		{name: "do nothing with a partial target", sql: "INSERT INTO t (id) VALUES (?) ON CONFLICT (id) WHERE id > 0 DO NOTHING",
			kind: KindUpsert, args: []int{0}, ignore: true, columns: []string{"id"}},
		{name: "several clauses", sql: "INSERT INTO t (id, k, v) VALUES (1, 'x', 2) ON CONFLICT (id) DO UPDATE SET v = 3 ON CONFLICT DO NOTHING",
			kind: KindUpsert, update: []string{"v"}, ignore: true, columns: []string{"id", "k", "v"}},
		{name: "or ignore", sql: "INSERT OR IGNORE INTO t (id, v) VALUES (?, 'on conflict')",
			kind: KindUpsert, args: []int{0, 1}[:1], ignore: true, columns: []string{"id", "v"}},
		{name: "or abort is a plain insert", sql: "INSERT /* c */ OR ABORT INTO t (id) VALUES (1) -- done",
			kind: KindInsert, sqlOut: "INSERT /* c */ OR ABORT INTO t (id) VALUES (1)", columns: []string{"id"}},
		{name: "comments and strings", sql: "INSERT INTO t (id, v) VALUES (1, 'it''s ? ; on conflict') /* ? */ ON CONFLICT(id) DO UPDATE SET v = '?' || \"v\" -- ?",
			kind: KindUpsert, sqlOut: "INSERT INTO t (id, v) VALUES (1, 'it''s ? ; on conflict') /* ? */ ON CONFLICT(id) DO UPDATE SET v = '?' || \"v\"",
			update: []string{"v"}, columns: []string{"id", "v"}},
		{name: "all columns given as constants", sql: "INSERT INTO t VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET v = excluded.v",
			kind: KindUpsert, args: []int{0}},
		{name: "or replace refused", sql: "INSERT OR REPLACE INTO t (id) VALUES (?)", kind: KindRefused, refusal: "INSERT OR REPLACE", args: []int{0}},
		{name: "or fail refused", sql: "INSERT OR FAIL INTO t (id) VALUES (1)", kind: KindRefused, refusal: "OR FAIL"},
		{name: "or rollback refused", sql: "insert or rollback into t (id) values (1)", kind: KindRefused, refusal: "OR ROLLBACK"},
		{name: "replace refused", sql: "REPLACE INTO t (id) VALUES (1)", kind: KindRefused, refusal: "REPLACE"},
		{name: "do update without target refused", sql: "INSERT INTO t (id, v) VALUES (1, ?) ON CONFLICT DO UPDATE SET v = ?",
			kind: KindRefused, refusal: "without a conflict target", args: []int{0, 1}},
		{name: "partial target refused", sql: "INSERT INTO t (id, v) VALUES (1, 2) ON CONFLICT (v) WHERE v > ? DO UPDATE SET id = 3",
			kind: KindRefused, refusal: "partial unique index", args: []int{0}},
		{name: "expression target refused", sql: "INSERT INTO t (id, v) VALUES (1, 2) ON CONFLICT (lower(v)) DO UPDATE SET id = 3",
			kind: KindRefused, refusal: "expression"},
		{name: "collated target refused", sql: "INSERT INTO t (id, v) VALUES (1, 2) ON CONFLICT (v COLLATE nocase) DO UPDATE SET id = 3",
			kind: KindRefused, refusal: "expression"},
		{name: "target column missing refused", sql: "INSERT INTO t (v) VALUES (2) ON CONFLICT (id) DO UPDATE SET v = 3",
			kind: KindRefused, refusal: "leaves conflict target column id"},
		{name: "target column by expression refused", sql: "INSERT INTO t (id, v) VALUES (1 + 1, 2) ON CONFLICT (id) DO UPDATE SET v = 3",
			kind: KindRefused, refusal: "conflict target column id as a literal"},
		{name: "target column defaulted refused", sql: "INSERT INTO t VALUES (NULL, 2) ON CONFLICT (id) DO UPDATE SET v = 3",
			kind: KindRefused, refusal: "conflict target column id as a literal"},
		{name: "insert select refused", sql: "INSERT INTO t SELECT * FROM u WHERE true ON CONFLICT (id) DO NOTHING",
			kind: KindRefused, refusal: "INSERT ... SELECT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stmts, err := SQLite().Parse(tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if len(stmts) != 1 {
				t.Fatalf("%d statements", len(stmts))
			}
			st := stmts[0]
			if st.Kind != tc.kind {
				t.Fatalf("kind %s (%s), want %s", st.Kind, st.Refusal, tc.kind)
			}
			if !strings.Contains(st.Refusal, tc.refusal) {
				t.Errorf("refusal %q, want it to say %q", st.Refusal, tc.refusal)
			}
			want := tc.sqlOut
			if want == "" {
				want = strings.TrimSuffix(tc.sql, ";")
			}
			if st.SQL != want {
				t.Errorf("SQL %q, want %q", st.SQL, want)
			}
			if !reflect.DeepEqual(st.Args, tc.args) {
				t.Errorf("args %v, want %v", st.Args, tc.args)
			}
			if !reflect.DeepEqual(st.Returning, tc.ret) {
				t.Errorf("returning %v, want %v", st.Returning, tc.ret)
			}
			if st.Kind == KindRefused {
				return
			}
			var update []string
			for _, c := range st.Insert.Update {
				update = append(update, c.Name)
			}
			if !reflect.DeepEqual(update, tc.update) || st.Insert.Ignore != tc.ignore {
				t.Errorf("update %v ignore %v, want %v %v", update, st.Insert.Ignore, tc.update, tc.ignore)
			}
			if !reflect.DeepEqual(st.Insert.Columns, tc.columns) {
				t.Errorf("columns %v, want %v", st.Insert.Columns, tc.columns)
			}
			if len(st.Targets) != 1 || st.Targets[0].Name != "t" && st.Targets[0].Name != "acct" {
				t.Errorf("targets %v", st.Targets)
			}
		})
	}
}

func TestParseSQLiteUpsertErrors(t *testing.T) {
	for _, sql := range []string{
		"INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET v = 1; DELETE FROM t",
		"DELETE FROM t; INSERT OR IGNORE INTO t (id) VALUES (1)",
		"INSERT INTO t (id) VALUES (?1) ON CONFLICT DO NOTHING",
		"INSERT INTO t (id) VALUES (:id) ON CONFLICT DO NOTHING",
		"INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET v = $v",
		"INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE v = 1",
		"INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO SOMETHING",
		"INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET v = ",
		"INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET v = (1",
		"INSERT INTO t (id) VALUES (1) ON CONFLICT (id DO NOTHING",
		"INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET v = 1 RETURNING v + 1",
		"INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO NOTHING garbage",
		"INSERT OR SOMETHING INTO t (id) VALUES (1)",
		"INSERT ON CONFLICT DO NOTHING",
		"INSERT INTO t AS x (id) VALUES (1) ON CONFLICT DO NOTHING",
	} {
		if _, err := SQLite().Parse(sql); !errors.Is(err, ErrParse) {
			t.Errorf("%q: got %v, want ErrParse", sql, err)
		}
	}
}

// FuzzSQLiteUpsert checks that any input either fails to parse or yields
// statements whose arguments are every placeholder SQLite sees, in order,
// and that an upsert keeps its text and names its table.
func FuzzSQLiteUpsert(f *testing.F) {
	for _, s := range []string{
		`INSERT INTO "t" ("id","v") VALUES (?,?) ON CONFLICT ("id") DO UPDATE SET "v"="excluded"."v" RETURNING "id"`,
		"INSERT OR IGNORE INTO t (a, b) VALUES (?, 'x'), (?, ?)",
		"INSERT INTO t (id, v) VALUES (1, ?) ON CONFLICT (id) WHERE v > ? DO UPDATE SET v = v + ? WHERE v < ? ON CONFLICT DO NOTHING",
		"INSERT INTO t VALUES (1, '?''; on conflict') /* ? */ ON CONFLICT(id) DO UPDATE SET (a, b) = (1, ?) -- ?",
		"INSERT OR REPLACE INTO t (id) VALUES (?)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		stmts, err := SQLite().Parse(sql)
		if err != nil {
			return
		}
		toks, lerr := lexSQLite(sql)
		next := 0
		for _, st := range stmts {
			for _, a := range st.Args {
				if a != next {
					t.Fatalf("%q: args %v out of order", sql, st.Args)
				}
				next++
			}
		}
		ins, serr := splitSQLiteInsert(sql)
		if lerr != nil || serr != nil || ins == nil {
			return
		}
		params := 0
		for _, tk := range toks {
			if tk.kind == tokParam {
				params++
			}
		}
		if len(stmts) == 1 && len(stmts[0].Returning) == 0 && next != params {
			t.Fatalf("%q: %d arguments for %d placeholders", sql, next, params)
		}
		st := stmts[0]
		if st.Kind == KindUpsert && (len(st.Targets) != 1 || st.Insert == nil || !strings.HasPrefix(sql[strings.Index(sql, st.SQL[:1]):], st.SQL)) {
			t.Fatalf("%q: upsert %+v", sql, st)
		}
	})
}
