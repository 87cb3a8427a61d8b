package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/gtx-io/gtx/tc"
)

// RunLockStore runs the tc.LockStore conformance suite. newLockStore is
// called once per subtest and must return a store holding no locks.
func RunLockStore(t *testing.T, newLockStore func(t *testing.T) tc.LockStore) {
	tests := []struct {
		name string
		run  func(t *testing.T, s tc.LockStore)
	}{
		{"AcquireAndQuery", testAcquireQuery},
		{"Empty", testLocksEmpty},
		{"KeysAreDistinct", testKeysDistinct},
		{"Conflict", testLockConflict},
		{"AllOrNothing", testAllOrNothing},
		{"Reentry", testReentry},
		{"Release", testRelease},
		{"ManyKeys", testManyKeys},
		{"ConcurrentOverlapping", testConcurrentLocks},
		{"LockHolders", testLockHolders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newLockStore(t)) })
	}
}

// keys returns row locks on the given primary keys of table in resource.
func keys(resource, table string, pks ...string) []tc.RowLock {
	out := make([]tc.RowLock, len(pks))
	for i, pk := range pks {
		out[i] = tc.RowLock{ResourceID: resource, Table: table, PK: pk}
	}
	return out
}

// held returns locks with their holder set to (xid, branchID).
func held(locks []tc.RowLock, xid string, branchID int64) []tc.RowLock {
	out := make([]tc.RowLock, len(locks))
	for i, l := range locks {
		l.XID, l.BranchID = xid, branchID
		out[i] = l
	}
	return out
}

// lockKey names a lock's key, without its holder.
func lockKey(l tc.RowLock) string { return fmt.Sprintf("%q/%q/%q", l.ResourceID, l.Table, l.PK) }

// lockString names a lock with its holder.
func lockString(l tc.RowLock) string { return fmt.Sprintf("%s@%s#%d", lockKey(l), l.XID, l.BranchID) }

// lockStrings returns the sorted names of locks with their holders.
func lockStrings(locks []tc.RowLock) []string {
	out := make([]string, len(locks))
	for i, l := range locks {
		out[i] = lockString(l)
	}
	sort.Strings(out)
	return out
}

// mustAcquire takes locks for (xid, branchID) and fails t on error.
func mustAcquire(t *testing.T, s tc.LockStore, xid string, branchID int64, locks []tc.RowLock) {
	t.Helper()
	if err := s.AcquireLocks(t.Context(), xid, branchID, locks); err != nil {
		t.Fatalf("AcquireLocks(%s, %d): %v", xid, branchID, err)
	}
}

// checkHeld fails t unless querying keys returns exactly want.
func checkHeld(t *testing.T, s tc.LockStore, keys []tc.RowLock, want []tc.RowLock) {
	t.Helper()
	got, err := s.QueryLocks(t.Context(), keys)
	if err != nil {
		t.Fatalf("QueryLocks: %v", err)
	}
	g, w := lockStrings(got), lockStrings(want)
	if !sameSet(g, w) {
		t.Fatalf("QueryLocks =\n%v\nwant\n%v", g, w)
	}
}

// wantConflict fails t unless err is a *tc.LockConflictError naming holder's
// key and holder; a holder with an empty XID matches any holder other than
// notXID.
func wantConflict(t *testing.T, err error, holder tc.RowLock, notXID string) *tc.LockConflictError {
	t.Helper()
	var le *tc.LockConflictError
	if !errors.As(err, &le) {
		t.Fatalf("got error %v, want a *tc.LockConflictError", err)
	}
	if !errors.Is(err, tc.ErrLockConflict) {
		t.Errorf("errors.Is(%v, tc.ErrLockConflict) = false", err)
	}
	if le.Lock.XID == notXID || le.Lock.XID == "" {
		t.Errorf("conflict names holder %q, want another transaction", le.Lock.XID)
	}
	if holder.XID != "" && lockString(le.Lock) != lockString(holder) {
		t.Errorf("conflict on %s, want %s", lockString(le.Lock), lockString(holder))
	}
	return le
}

func testAcquireQuery(t *testing.T, s tc.LockStore) {
	res := newXID("res")
	xid, branch := newXID("lock"), newBranchID()
	locks := append(keys(res, "orders", "1", "2", "o'brien \"x\""), keys(res, "items", "日本", "42")...)
	mustAcquire(t, s, xid, branch, locks)
	query := append(keys(res, "orders", "3"), locks...)
	for i := range query {
		query[i].XID, query[i].BranchID = "ignored", 99 // the holder fields of arguments are ignored
	}
	checkHeld(t, s, query, held(locks, xid, branch))
	checkHeld(t, s, keys(res, "orders", "3", "4"), nil)
}

func testLocksEmpty(t *testing.T, s tc.LockStore) {
	if err := s.AcquireLocks(t.Context(), newXID("lock"), newBranchID(), nil); err != nil {
		t.Fatalf("AcquireLocks(nil): %v", err)
	}
	got, err := s.QueryLocks(t.Context(), nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("QueryLocks(nil) = %v, %v; want none", got, err)
	}
}

func testKeysDistinct(t *testing.T, s tc.LockStore) {
	res, res2 := newXID("res"), newXID("res")
	a, b, c := newXID("lock"), newXID("lock"), newXID("lock")
	mustAcquire(t, s, a, 1, keys(res, "orders", "1"))
	// The same primary key in another table or another resource is another key.
	mustAcquire(t, s, b, 2, keys(res, "items", "1"))
	mustAcquire(t, s, c, 3, keys(res2, "orders", "1"))
	checkHeld(t, s, append(append(keys(res, "orders", "1"), keys(res, "items", "1")...), keys(res2, "orders", "1")...),
		append(append(held(keys(res, "orders", "1"), a, 1), held(keys(res, "items", "1"), b, 2)...), held(keys(res2, "orders", "1"), c, 3)...))
}

func testLockConflict(t *testing.T, s tc.LockStore) {
	res := newXID("res")
	holder, hb := newXID("holder"), newBranchID()
	mustAcquire(t, s, holder, hb, keys(res, "orders", "1", "2"))
	other := newXID("other")
	err := s.AcquireLocks(t.Context(), other, newBranchID(), keys(res, "orders", "2"))
	wantConflict(t, err, held(keys(res, "orders", "2"), holder, hb)[0], other)
	checkHeld(t, s, keys(res, "orders", "1", "2"), held(keys(res, "orders", "1", "2"), holder, hb))
}

func testAllOrNothing(t *testing.T, s tc.LockStore) {
	tests := []struct {
		name     string
		position int // where the contended key is in the request; -1 is last
	}{
		{"contended first", 0},
		{"contended in the middle", 2},
		{"contended last", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := newXID("res")
			holder, hb := newXID("holder"), newBranchID()
			contended := keys(res, "orders", "7")
			mustAcquire(t, s, holder, hb, contended)
			free := keys(res, "orders", "1", "2", "3", "4")
			req := append([]tc.RowLock{}, free...)
			pos := tt.position
			if pos < 0 {
				pos = len(req)
			}
			req = append(req[:pos], append(contended, req[pos:]...)...)
			other := newXID("other")
			err := s.AcquireLocks(t.Context(), other, newBranchID(), req)
			wantConflict(t, err, held(contended, holder, hb)[0], other)
			checkHeld(t, s, req, held(contended, holder, hb))
		})
	}
}

func testReentry(t *testing.T, s tc.LockStore) {
	res := newXID("res")
	xid := newXID("lock")
	b1, b2 := newBranchID(), newBranchID()
	mustAcquire(t, s, xid, b1, keys(res, "orders", "1", "2"))
	mustAcquire(t, s, xid, b1, keys(res, "orders", "1", "2")) // again, same branch
	mustAcquire(t, s, xid, b2, keys(res, "orders", "2", "3")) // another branch of the same transaction
	got, err := s.QueryLocks(t.Context(), keys(res, "orders", "1", "2", "3"))
	if err != nil {
		t.Fatalf("QueryLocks: %v", err)
	}
	if len(got) != 3 {
		t.Fatalf("QueryLocks = %v, want 3 locks", lockStrings(got))
	}
	for _, l := range got {
		if l.XID != xid {
			t.Errorf("%s is held by %s, want %s", lockKey(l), l.XID, xid)
		}
		if l.PK == "1" && l.BranchID != b1 || l.PK == "3" && l.BranchID != b2 {
			t.Errorf("%s is held by branch %d", lockKey(l), l.BranchID)
		}
	}
	other := newXID("other")
	err = s.AcquireLocks(t.Context(), other, newBranchID(), keys(res, "orders", "3"))
	wantConflict(t, err, held(keys(res, "orders", "3"), xid, b2)[0], other)
}

func testRelease(t *testing.T, s tc.LockStore) {
	res := newXID("res")
	xid, b1, b2 := newXID("lock"), newBranchID(), newBranchID()
	bystander, bb := newXID("bystander"), newBranchID()
	mustAcquire(t, s, xid, b1, keys(res, "orders", "1", "2"))
	mustAcquire(t, s, xid, b2, keys(res, "orders", "3"))
	mustAcquire(t, s, bystander, bb, keys(res, "orders", "9"))
	all := keys(res, "orders", "1", "2", "3", "9")

	if err := s.ReleaseBranchLocks(t.Context(), xid, b1); err != nil {
		t.Fatalf("ReleaseBranchLocks: %v", err)
	}
	checkHeld(t, s, all, append(held(keys(res, "orders", "3"), xid, b2), held(keys(res, "orders", "9"), bystander, bb)...))
	other, ob := newXID("other"), newBranchID()
	mustAcquire(t, s, other, ob, keys(res, "orders", "1"))

	if err := s.ReleaseGlobalLocks(t.Context(), xid); err != nil {
		t.Fatalf("ReleaseGlobalLocks: %v", err)
	}
	checkHeld(t, s, all, append(held(keys(res, "orders", "1"), other, ob), held(keys(res, "orders", "9"), bystander, bb)...))

	// Releasing what is not held is not an error.
	if err := s.ReleaseBranchLocks(t.Context(), xid, b1); err != nil {
		t.Errorf("ReleaseBranchLocks again: %v", err)
	}
	if err := s.ReleaseGlobalLocks(t.Context(), newXID("unknown")); err != nil {
		t.Errorf("ReleaseGlobalLocks(unknown): %v", err)
	}
	checkHeld(t, s, all, append(held(keys(res, "orders", "1"), other, ob), held(keys(res, "orders", "9"), bystander, bb)...))
}

func testManyKeys(t *testing.T, s tc.LockStore) {
	const n = 700
	res := newXID("res")
	pks := make([]string, n)
	for i := range pks {
		pks[i] = fmt.Sprint(i)
	}
	many := keys(res, "orders", pks...)
	xid, b := newXID("lock"), newBranchID()
	mustAcquire(t, s, xid, b, many)
	checkHeld(t, s, many, held(many, xid, b))

	// A conflict on the very last of many new keys takes none of them.
	holder, hb := newXID("holder"), newBranchID()
	last := keys(res, "items", "last")
	mustAcquire(t, s, holder, hb, last)
	fresh := append(keys(res, "items", pks...), last...)
	other := newXID("other")
	err := s.AcquireLocks(t.Context(), other, newBranchID(), fresh)
	wantConflict(t, err, held(last, holder, hb)[0], other)
	checkHeld(t, s, fresh, held(last, holder, hb))

	if err := s.ReleaseGlobalLocks(t.Context(), xid); err != nil {
		t.Fatalf("ReleaseGlobalLocks: %v", err)
	}
	checkHeld(t, s, many, nil)
}

// testConcurrentLocks has 32 transactions race for overlapping key sets:
// every key ends up with at most one holder, every winner holds all of its
// keys, every loser holds none and saw a *tc.LockConflictError naming a
// winner.
func testConcurrentLocks(t *testing.T, s tc.LockStore) {
	const (
		callers    = 32
		keySpace   = 24
		keysPerTxn = 5
	)
	res := newXID("res")
	rng := rand.New(rand.NewPCG(1, 2))
	type txn struct {
		xid    string
		branch int64
		locks  []tc.RowLock
		err    error
	}
	txns := make([]*txn, callers)
	all := make([]tc.RowLock, keySpace)
	for i := range all {
		all[i] = tc.RowLock{ResourceID: res, Table: "stock", PK: fmt.Sprint(i)}
	}
	for i := range txns {
		var locks []tc.RowLock
		for _, k := range rng.Perm(keySpace)[:keysPerTxn] {
			locks = append(locks, all[k])
		}
		txns[i] = &txn{xid: newXID(fmt.Sprint("racer-", i)), branch: newBranchID(), locks: locks}
	}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for _, x := range txns {
		wg.Go(func() {
			<-start
			x.err = s.AcquireLocks(t.Context(), x.xid, x.branch, x.locks)
		})
	}
	close(start)
	wg.Wait()

	winners := make(map[string]*txn)
	for _, x := range txns {
		if x.err == nil {
			winners[x.xid] = x
		}
	}
	if len(winners) == 0 {
		t.Fatal("no transaction took its locks")
	}
	var want []tc.RowLock
	for _, x := range txns {
		if x.err == nil {
			want = append(want, held(x.locks, x.xid, x.branch)...)
			continue
		}
		le := wantConflict(t, x.err, tc.RowLock{}, x.xid)
		w, ok := winners[le.Lock.XID]
		if !ok {
			t.Errorf("%s lost to %s, which took no locks", x.xid, le.Lock.XID)
			continue
		}
		if le.Lock.BranchID != w.branch {
			t.Errorf("%s lost to %s branch %d, want branch %d", x.xid, le.Lock.XID, le.Lock.BranchID, w.branch)
		}
	}
	// Holding all of want implies winners' key sets are disjoint, since a
	// key has one holder.
	checkHeld(t, s, all, want)
}

// testLockHolders checks tc.LockHolderLister where the store has it: the
// holders come once each, in order, page by page, and not after release.
func testLockHolders(t *testing.T, s tc.LockStore) {
	l, ok := s.(tc.LockHolderLister)
	if !ok {
		t.Skip("the store does not implement tc.LockHolderLister")
	}
	// Other suites may share the store: look only at this test's XIDs.
	prefix := newXID("holders")
	xids := []string{prefix + ":a", prefix + ":b", prefix + ":c"}
	for i, xid := range xids {
		if err := s.AcquireLocks(t.Context(), xid, int64(i+1), keys("res-holders", "t", fmt.Sprint(i*2), fmt.Sprint(i*2+1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ReleaseGlobalLocks(t.Context(), xids[1]); err != nil {
		t.Fatal(err)
	}
	var got []string
	after := ""
	for {
		page, err := l.LockHolders(t.Context(), after, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, x := range page {
			if strings.HasPrefix(x, prefix) {
				got = append(got, x)
			}
		}
		after = page[len(page)-1]
	}
	if want := []string{xids[0], xids[2]}; !slices.Equal(got, want) {
		t.Fatalf("LockHolders = %v, want %v", got, want)
	}
}
