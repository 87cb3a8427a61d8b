package atpg

import (
	"slices"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/gtx-io/gtx/rm/at"
)

// FuzzParse parses arbitrary SQL. It must not panic, and for every
// statement it does not refuse: the text numbered by Bind must parse again,
// with one placeholder per argument position the statement reports (read
// back in order), each within the query's placeholders; and every fragment
// must number cleanly.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"UPDATE acct SET balance = balance + $1 WHERE id = $2",
		"INSERT INTO t (a, b) VALUES ($1, 'x?'), (2, $2) ON CONFLICT (a) DO NOTHING RETURNING *",
		"DELETE FROM t USING u WHERE t.id = u.id AND t.j ?| array['a']",
		"SELECT * FROM t WHERE id = $1 ORDER BY a LIMIT $2 FOR UPDATE",
		"WITH x AS (SELECT 1) SELECT $$?$$, E'\\'', \"q?\" FROM x",
		"UPDATE t SET (a, b) = ($2, $1) FROM (VALUES (1, 'a')) v(x, y) WHERE t.id = v.x; DELETE FROM u",
	} {
		f.Add(s)
	}
	d := Postgres()
	f.Fuzz(func(t *testing.T, query string) {
		stmts, err := d.Parse(query)
		if err != nil {
			return
		}
		for _, st := range stmts {
			if st.Kind == at.KindRefused {
				continue
			}
			bound, err := d.Bind(st.SQL)
			if err != nil {
				t.Fatalf("%q: statement text %q cannot be numbered: %v", query, st.SQL, err)
			}
			_, back, err := scanSQL(bound, toMarkers)
			if err != nil {
				t.Fatalf("%q: numbered text %q: %v", query, bound, err)
			}
			want := make([]int, len(st.Args))
			for i := range want {
				want[i] = i
			}
			if !slices.Equal(back, want) {
				t.Fatalf("%q: %q numbers %v, want %v", query, bound, back, want)
			}
			if _, err := pg.Parse(bound); err != nil {
				t.Fatalf("%q: numbered text %q does not parse: %v", query, bound, err)
			}
			for _, a := range st.Args {
				if a < 0 || a >= 65535 {
					t.Fatalf("%q: argument position %d", query, a)
				}
			}
			for _, f := range []at.Fragment{st.From, st.Where, st.OrderBy, st.Limit} {
				if _, err := d.Bind(f.SQL); err != nil {
					t.Fatalf("%q: fragment %q: %v", query, f.SQL, err)
				}
			}
		}
	})
}

// BenchmarkParse parses the UPDATE of the AT benchmark: uncached (the
// parse, and the deparse of the statement and of its FROM and WHERE) and
// from the parse cache.
func BenchmarkParse(b *testing.B) {
	const query = "UPDATE acct SET balance = balance + 1 WHERE id = $1"
	b.Run("uncached", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := parse(query); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		d := Postgres()
		for i := 0; i < b.N; i++ {
			if _, err := d.Parse(query); err != nil {
				b.Fatal(err)
			}
		}
	})
}
