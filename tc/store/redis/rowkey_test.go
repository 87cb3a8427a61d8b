package redisstore

import (
	"testing"

	"github.com/gtx-io/gtx/tc"
)

// FuzzRowKeyDistinct checks that different (resource, table, pk) triples
// never share a Redis key, whatever characters the names contain.
func FuzzRowKeyDistinct(f *testing.F) {
	f.Add("r", "t", "1", "r", "t1", "")
	f.Add("a:b", "c", "d", "a", "b:c", "d")
	f.Add("1:x", "y", "z", "1", ":xy", "z")
	s := &LockStore{prefix: "p:"}
	f.Fuzz(func(t *testing.T, r1, t1, p1, r2, t2, p2 string) {
		a := tc.RowLock{ResourceID: r1, Table: t1, PK: p1}
		b := tc.RowLock{ResourceID: r2, Table: t2, PK: p2}
		if a != b && s.rowKey(a) == s.rowKey(b) {
			t.Fatalf("%+v and %+v share key %q", a, b, s.rowKey(a))
		}
	})
}
