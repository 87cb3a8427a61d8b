package at

import (
	"errors"
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		d       Dialect
		sql     string
		kinds   []Kind
		targets []string // aliases of the first statement's targets
		where   string
		args    [][]int // Args of each statement
		whereA  []int   // Where.Args of the first statement
		limit   string
		limitA  []int
	}{
		{name: "update", d: MySQL(), sql: "UPDATE t SET a = ?, b = 'x' WHERE id = ? AND c LIKE 'a%'",
			kinds: []Kind{KindUpdate}, targets: []string{"t"}, where: "`id`=? AND `c` LIKE 'a%'", args: [][]int{{0, 1}}, whereA: []int{1}},
		{name: "update limit offset order", d: MySQL(), sql: "UPDATE t SET a = ? WHERE b > ? ORDER BY c LIMIT ?",
			kinds: []Kind{KindUpdate}, targets: []string{"t"}, args: [][]int{{0, 1, 2}}, whereA: []int{1}, where: "`b`>?", limit: "LIMIT ?", limitA: []int{2}},
		{name: "select limit with offset keeps order", d: MySQL(), sql: "SELECT * FROM t WHERE a = ? LIMIT ? OFFSET ? FOR UPDATE",
			kinds: []Kind{KindSelectForUpdate}, targets: []string{"t"}, where: "`a`=?", args: [][]int{{0, 1, 2}}, whereA: []int{0}, limit: "LIMIT ? OFFSET ?", limitA: []int{1, 2}},
		{name: "multi-statement placeholders", d: MySQL(), sql: "DELETE FROM a WHERE x = ?; INSERT INTO b (k) VALUES (?), (?)",
			kinds: []Kind{KindDelete, KindInsert}, targets: []string{"a"}, where: "`x`=?", args: [][]int{{0}, {1, 2}}, whereA: []int{0}},
		{name: "update join targets set tables", d: MySQL(), sql: "UPDATE a JOIN b ON a.id = b.aid SET b.v = 1 WHERE a.k = ?",
			kinds: []Kind{KindUpdate}, targets: []string{"b"}, where: "`a`.`k`=?", args: [][]int{{0}}, whereA: []int{0}},
		{name: "delete join", d: MySQL(), sql: "DELETE x FROM a AS x JOIN b ON x.id = b.aid",
			kinds: []Kind{KindDelete}, targets: []string{"x"}, args: [][]int{nil}},
		{name: "upsert", d: MySQL(), sql: "INSERT INTO t (id, v) VALUES (1, 2) ON DUPLICATE KEY UPDATE v = v + 1",
			kinds: []Kind{KindUpsert}, targets: []string{"t"}, args: [][]int{nil}},
		{name: "plain select passes", d: MySQL(), sql: "SELECT 1", kinds: []Kind{KindPassThrough}, args: [][]int{nil}},
		{name: "replace refused", d: MySQL(), sql: "REPLACE INTO t VALUES (1)", kinds: []Kind{KindRefused}, args: [][]int{nil}},
		{name: "ddl refused", d: MySQL(), sql: "DROP TABLE t", kinds: []Kind{KindRefused}, args: [][]int{nil}},
		{name: "insert select refused", d: MySQL(), sql: "INSERT INTO t SELECT * FROM u", kinds: []Kind{KindRefused}, args: [][]int{nil}},
		{name: "sqlite quoting and concat", d: SQLite(), sql: `UPDATE "t" SET "a" = 'x\' || ? WHERE "id" = ?`,
			kinds: []Kind{KindUpdate}, targets: []string{"t"}, where: `"id"=?`, args: [][]int{{0, 1}}, whereA: []int{1}},
		{name: "sqlite for update dropped", d: SQLite(), sql: "SELECT * FROM t WHERE id = 1 FOR UPDATE",
			kinds: []Kind{KindSelectForUpdate}, targets: []string{"t"}, where: `"id"=1`, args: [][]int{nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stmts, err := tc.d.Parse(tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if len(stmts) != len(tc.kinds) {
				t.Fatalf("%d statements, want %d", len(stmts), len(tc.kinds))
			}
			for i, st := range stmts {
				if st.Kind != tc.kinds[i] {
					t.Errorf("statement %d: kind %s, want %s (%s)", i, st.Kind, tc.kinds[i], st.Refusal)
				}
				if !reflect.DeepEqual(st.Args, tc.args[i]) {
					t.Errorf("statement %d: args %v, want %v", i, st.Args, tc.args[i])
				}
			}
			st := stmts[0]
			var aliases []string
			for _, r := range st.Targets {
				aliases = append(aliases, r.Alias)
			}
			if !reflect.DeepEqual(aliases, tc.targets) {
				t.Errorf("targets %v, want %v", aliases, tc.targets)
			}
			if st.Where.SQL != tc.where || !reflect.DeepEqual(st.Where.Args, tc.whereA) {
				t.Errorf("where %q %v, want %q %v", st.Where.SQL, st.Where.Args, tc.where, tc.whereA)
			}
			if st.Limit.SQL != tc.limit || !reflect.DeepEqual(st.Limit.Args, tc.limitA) {
				t.Errorf("limit %q %v, want %q %v", st.Limit.SQL, st.Limit.Args, tc.limit, tc.limitA)
			}
		})
	}
}

func TestSQLiteDropsLockClause(t *testing.T) {
	stmts, err := SQLite().Parse("SELECT a FROM t WHERE id = ? FOR UPDATE")
	if err != nil {
		t.Fatal(err)
	}
	if got := stmts[0].SQL; got != "SELECT a FROM t WHERE id = ?" {
		t.Fatalf("SQL %q", got)
	}
}

func TestParseError(t *testing.T) {
	if _, err := MySQL().Parse("UPDATE SET"); !errors.Is(err, ErrParse) {
		t.Fatalf("got %v, want ErrParse", err)
	}
}

// FuzzParse checks that any input either fails to parse or yields
// statements whose argument positions are in range and in order.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"UPDATE t SET a = ? WHERE id = ?", "DELETE FROM t WHERE a IN (?, ?) ORDER BY b LIMIT ?",
		"INSERT INTO t (a, b) VALUES (?, 1), (2, ?) ON DUPLICATE KEY UPDATE b = VALUES(b)",
		"SELECT * FROM a JOIN b ON a.x = b.y WHERE a.z = ? LIMIT ? OFFSET ? FOR UPDATE",
		"UPDATE a, b SET a.x = ?, b.y = ? WHERE a.id = b.id; DELETE FROM c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		for _, d := range []Dialect{MySQL(), SQLite()} {
			stmts, err := d.Parse(sql)
			if err != nil {
				continue
			}
			total := 0
			for _, st := range stmts {
				total += len(st.Args)
			}
			next := 0
			for _, st := range stmts {
				for _, a := range st.Args {
					if a != next {
						t.Fatalf("%q: args %v out of order", sql, st.Args)
					}
					next++
				}
				for _, f := range []Fragment{st.From, st.Where, st.OrderBy, st.Limit, st.SetClause} {
					for _, a := range f.Args {
						if a < 0 || a >= total {
							t.Fatalf("%q: fragment arg %d out of %d", sql, a, total)
						}
					}
				}
			}
		}
	})
}
