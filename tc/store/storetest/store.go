package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// RunStore runs the tc.Store conformance suite. newStore is called once per
// subtest and must return a store holding no sessions.
func RunStore(t *testing.T, newStore func(t *testing.T) tc.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s tc.Store)
	}{
		{"Ping", testPing},
		{"CreateGetRoundTrip", testCreateGet},
		{"CreateDuplicateXID", testCreateDuplicate},
		{"GetUnknown", testGetUnknown},
		{"UpdateGlobal", testUpdateGlobal},
		{"UpdateGlobalConcurrentCAS", testUpdateGlobalConcurrent},
		{"AddBranch", testAddBranch},
		{"AddBranchRefusedUnlessBegin", testAddBranchRefused},
		{"AddBranchRacingStatusChange", testAddBranchRace},
		{"UpdateBranch", testUpdateBranch},
		{"ListGlobals", testListGlobals},
		{"ClaimDue", testClaimDue},
		{"ClaimDueLimit", testClaimDueLimit},
		{"ClaimDueReleasedByUpdate", testClaimDueReleased},
		{"ClaimDueExclusive", testClaimDueExclusive},
		{"ListTimedOut", testListTimedOut},
		{"DeleteFinished", testDeleteFinished},
		{"FinishEmpty", testFinishEmpty},
		{"FinishEmptyRacingAddBranch", testFinishEmptyRace},
		{"Decide", testDecide},
		{"DecideRacingAddBranch", testDecideRace},
		{"AddBranchLocked", testAddBranchLocked},
		{"AsyncCommitRoundTrip", testAsyncCommit},
		{"AddBranchPastDeadline", testAddBranchPastDeadline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newStore(t)) })
	}
}

func testPing(t *testing.T, s tc.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// mustCreate creates g and fails t on error.
func mustCreate(t *testing.T, s tc.Store, g *tc.GlobalSession) {
	t.Helper()
	if err := s.CreateGlobal(t.Context(), g); err != nil {
		t.Fatalf("CreateGlobal(%s): %v", g.XID, err)
	}
}

// mustAddBranch adds b and fails t on error.
func mustAddBranch(t *testing.T, s tc.Store, b *tc.BranchSession) {
	t.Helper()
	if err := s.AddBranch(t.Context(), b); err != nil {
		t.Fatalf("AddBranch(%s, %d): %v", b.XID, b.BranchID, err)
	}
}

// mustGet reads xid and fails t on error.
func mustGet(t *testing.T, s tc.Store, xid string) *tc.GlobalSession {
	t.Helper()
	g, err := s.GetGlobal(t.Context(), xid)
	if err != nil {
		t.Fatalf("GetGlobal(%s): %v", xid, err)
	}
	return g
}

// mustUpdate applies u whatever the current status, and returns the session
// as the store has it afterwards.
func mustUpdate(t *testing.T, s tc.Store, xid string, u tc.GlobalUpdate) *tc.GlobalSession {
	t.Helper()
	if err := s.UpdateGlobal(t.Context(), xid, allStatuses, u); err != nil {
		t.Fatalf("UpdateGlobal(%s, %v): %v", xid, u.Status, err)
	}
	return mustGet(t, s, xid)
}

// wantStatusError fails t unless err is a *tc.StatusError for xid in status.
func wantStatusError(t *testing.T, err error, xid string, status tcv1.GlobalStatus) {
	t.Helper()
	var se *tc.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("got error %v, want a *tc.StatusError", err)
	}
	if !errors.Is(err, tc.ErrStatusConflict) {
		t.Errorf("errors.Is(%v, tc.ErrStatusConflict) = false", err)
	}
	if se.XID != xid || se.Status != status {
		t.Errorf("StatusError = {%s %v}, want {%s %v}", se.XID, se.Status, xid, status)
	}
}

func testCreateGet(t *testing.T, s tc.Store) {
	t0 := baseTime()
	g := newGlobal("create", t0, 1500*time.Millisecond)
	g.Status = tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED // CreateGlobal stores BEGIN whatever it is given
	mustCreate(t, s, g)
	got := mustGet(t, s, g.XID)
	want := *g
	want.Status = tcv1.GlobalStatus_BEGIN
	checkGlobal(t, &want, got)
	if got.UpdateTime.IsZero() {
		t.Error("UpdateTime is zero after CreateGlobal")
	}
	if len(got.Branches) != 0 {
		t.Errorf("new session has %d branches, want 0", len(got.Branches))
	}
}

func testCreateDuplicate(t *testing.T, s tc.Store) {
	g := newGlobal("dup", baseTime(), time.Minute)
	mustCreate(t, s, g)
	other := *g
	other.Name = "other"
	other.Timeout = time.Hour
	err := s.CreateGlobal(t.Context(), &other)
	if !errors.Is(err, tc.ErrDuplicateXID) {
		t.Fatalf("second CreateGlobal: %v, want tc.ErrDuplicateXID", err)
	}
	checkGlobal(t, g, mustGet(t, s, g.XID))
}

func testGetUnknown(t *testing.T, s tc.Store) {
	_, err := s.GetGlobal(t.Context(), newXID("unknown"))
	if !errors.Is(err, tc.ErrNotFound) {
		t.Fatalf("GetGlobal(unknown): %v, want tc.ErrNotFound", err)
	}
}

func testUpdateGlobal(t *testing.T, s tc.Store) {
	t0 := baseTime()
	full := tc.GlobalUpdate{
		Status:      tcv1.GlobalStatus_COMMIT_RETRYING,
		Attempts:    3,
		NextAttempt: t0.Add(1500 * time.Millisecond),
		LastError:   "branch 7: connection refused: 'quoted' \"text\" ünïcode",
		Owner:       "replica-a",
		LeaseUntil:  t0.Add(30 * time.Second),
	}
	tests := []struct {
		name    string
		before  []tc.GlobalUpdate // applied unconditionally first
		from    []tcv1.GlobalStatus
		update  tc.GlobalUpdate
		unknown bool
		// wantStatus is the status a conflict reports; unspecified means the
		// update applies.
		wantStatus tcv1.GlobalStatus
	}{
		{name: "from matches", from: []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, update: tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTING}},
		{name: "from one of several", from: []tcv1.GlobalStatus{tcv1.GlobalStatus_ROLLBACKING, tcv1.GlobalStatus_BEGIN}, update: full},
		{name: "every field written", before: []tc.GlobalUpdate{{Status: tcv1.GlobalStatus_COMMITTING}}, from: []tcv1.GlobalStatus{tcv1.GlobalStatus_COMMITTING}, update: full},
		{name: "zero values clear", before: []tc.GlobalUpdate{full}, from: []tcv1.GlobalStatus{tcv1.GlobalStatus_COMMIT_RETRYING}, update: tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTED}},
		{name: "same values again", before: []tc.GlobalUpdate{full}, from: []tcv1.GlobalStatus{tcv1.GlobalStatus_COMMIT_RETRYING}, update: full},
		{name: "status conflict", from: []tcv1.GlobalStatus{tcv1.GlobalStatus_COMMITTING, tcv1.GlobalStatus_ROLLBACKING}, update: full, wantStatus: tcv1.GlobalStatus_BEGIN},
		{name: "conflict after change", before: []tc.GlobalUpdate{{Status: tcv1.GlobalStatus_ROLLBACKED}}, from: []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, update: full, wantStatus: tcv1.GlobalStatus_ROLLBACKED},
		{name: "empty from conflicts", from: nil, update: full, wantStatus: tcv1.GlobalStatus_BEGIN},
		{name: "unknown xid", unknown: true, from: allStatuses, update: full},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGlobal("update", t0, time.Minute)
			mustCreate(t, s, g)
			mustAddBranch(t, s, newBranch(g.XID, t0, nil))
			want := *g
			for _, u := range tt.before {
				mustUpdate(t, s, g.XID, u)
				want = applyUpdate(want, u)
			}
			xid := g.XID
			if tt.unknown {
				xid = newXID("unknown")
			}
			err := s.UpdateGlobal(t.Context(), xid, tt.from, tt.update)
			switch {
			case tt.unknown:
				if !errors.Is(err, tc.ErrNotFound) {
					t.Fatalf("UpdateGlobal(unknown): %v, want tc.ErrNotFound", err)
				}
			case tt.wantStatus != tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED:
				wantStatusError(t, err, xid, tt.wantStatus)
			default:
				if err != nil {
					t.Fatalf("UpdateGlobal: %v", err)
				}
				want = applyUpdate(want, tt.update)
				got := mustGet(t, s, g.XID)
				checkGlobal(t, &want, got)
				if got.UpdateTime.IsZero() {
					t.Error("UpdateTime is zero after UpdateGlobal")
				}
			}
			checkGlobal(t, &want, mustGet(t, s, g.XID))
		})
	}
}

// applyUpdate returns g as UpdateGlobal(u) leaves it.
func applyUpdate(g tc.GlobalSession, u tc.GlobalUpdate) tc.GlobalSession {
	g.Status, g.Attempts, g.NextAttempt, g.LastError, g.Owner, g.LeaseUntil =
		u.Status, u.Attempts, u.NextAttempt, u.LastError, u.Owner, u.LeaseUntil
	return g
}

// testUpdateGlobalConcurrent races many callers on the same status change:
// exactly one may win, the others must see the winner's status.
func testUpdateGlobalConcurrent(t *testing.T, s tc.Store) {
	const callers = 16
	g := newGlobal("cas", baseTime(), time.Minute)
	mustCreate(t, s, g)
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		errs    = make([]error, callers)
		targets = []tcv1.GlobalStatus{tcv1.GlobalStatus_COMMITTING, tcv1.GlobalStatus_ROLLBACKING}
	)
	for i := range callers {
		wg.Go(func() {
			<-start
			errs[i] = s.UpdateGlobal(t.Context(), g.XID, []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN},
				tc.GlobalUpdate{Status: targets[i%2], LastError: fmt.Sprint("caller ", i)})
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("callers %d and %d both changed BEGIN", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no caller changed BEGIN: %v", errs)
	}
	got := mustGet(t, s, g.XID)
	if got.Status != targets[winner%2] || got.LastError != fmt.Sprint("caller ", winner) {
		t.Fatalf("session is %v %q, want the winner's %v %q", got.Status, got.LastError, targets[winner%2], fmt.Sprint("caller ", winner))
	}
	for i, err := range errs {
		if i != winner {
			wantStatusError(t, err, g.XID, targets[winner%2])
		}
	}
}

// binaryData is every byte value, so that stores must keep data byte for byte.
func binaryData() []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func testAddBranch(t *testing.T, s tc.Store) {
	t0 := baseTime()
	g := newGlobal("branch", t0, time.Minute)
	mustCreate(t, s, g)
	branches := []*tc.BranchSession{
		newBranch(g.XID, t0.Add(time.Millisecond), binaryData()),
		newBranch(g.XID, t0.Add(2*time.Millisecond), nil),
		newBranch(g.XID, t0.Add(3*time.Millisecond), []byte(`{"k":"v"}`)),
	}
	branches[1].Type = tcv1.BranchType_TCC
	branches[1].ResourceID = "tcc:inventory"
	branches[1].LockKeys = ""
	branches[2].Type = tcv1.BranchType_SAGA
	branches[2].Status = tcv1.BranchStatus_PHASE1_DONE
	for _, b := range branches {
		mustAddBranch(t, s, b)
	}
	got := mustGet(t, s, g.XID)
	checkGlobal(t, g, got)
	if len(got.Branches) != len(branches) {
		t.Fatalf("GetGlobal returned %d branches, want %d", len(got.Branches), len(branches))
	}
	for i, b := range branches {
		checkBranch(t, b, got.Branches[i])
	}
	other := newGlobal("branch-other", t0, time.Minute)
	mustCreate(t, s, other)
	if n := len(mustGet(t, s, other.XID).Branches); n != 0 {
		t.Errorf("another session has %d branches, want 0", n)
	}
	err := s.AddBranch(t.Context(), newBranch(newXID("unknown"), t0, nil))
	if !errors.Is(err, tc.ErrNotFound) {
		t.Errorf("AddBranch to unknown xid: %v, want tc.ErrNotFound", err)
	}
}

func testAddBranchRefused(t *testing.T, s tc.Store) {
	for _, status := range allStatuses {
		if status == tcv1.GlobalStatus_BEGIN {
			continue
		}
		t.Run(status.String(), func(t *testing.T) {
			g := newGlobal("refused", baseTime(), time.Minute)
			mustCreate(t, s, g)
			mustAddBranch(t, s, newBranch(g.XID, g.BeginTime, nil))
			mustUpdate(t, s, g.XID, tc.GlobalUpdate{Status: status})
			err := s.AddBranch(t.Context(), newBranch(g.XID, g.BeginTime.Add(time.Millisecond), nil))
			wantStatusError(t, err, g.XID, status)
			if n := len(mustGet(t, s, g.XID).Branches); n != 1 {
				t.Errorf("session has %d branches after a refused AddBranch, want 1", n)
			}
		})
	}
}

// testAddBranchRace races AddBranch calls against the status change that ends
// BEGIN: every branch that was accepted must be stored, and none that was
// refused.
func testAddBranchRace(t *testing.T, s tc.Store) {
	const adders = 16
	g := newGlobal("branch-race", baseTime(), time.Minute)
	mustCreate(t, s, g)
	var (
		wg       sync.WaitGroup
		start    = make(chan struct{})
		branches = make([]*tc.BranchSession, adders)
		errs     = make([]error, adders)
	)
	for i := range adders {
		branches[i] = newBranch(g.XID, g.BeginTime.Add(time.Duration(i)*time.Millisecond), nil)
		wg.Go(func() {
			<-start
			errs[i] = s.AddBranch(t.Context(), branches[i])
		})
	}
	var (
		updErr   error
		afterUpd *tc.GlobalSession // read as soon as the status changed
	)
	wg.Go(func() {
		<-start
		updErr = s.UpdateGlobal(t.Context(), g.XID, []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN},
			tc.GlobalUpdate{Status: tcv1.GlobalStatus_ROLLBACKING})
		if updErr == nil {
			afterUpd, updErr = s.GetGlobal(t.Context(), g.XID)
		}
	})
	close(start)
	wg.Wait()
	if updErr != nil {
		t.Fatalf("UpdateGlobal: %v", updErr)
	}
	// Phase 2 reads the branch list once the status has changed: no branch
	// may be added after that read.
	if len(afterUpd.Branches) != len(accepted(errs, branches)) {
		t.Fatalf("%d branches right after the status change, %d accepted in all: a branch was added after BEGIN ended",
			len(afterUpd.Branches), len(accepted(errs, branches)))
	}
	ok := accepted(errs, branches)
	for _, err := range errs {
		if err != nil {
			wantStatusError(t, err, g.XID, tcv1.GlobalStatus_ROLLBACKING)
		}
	}
	got := mustGet(t, s, g.XID)
	if len(got.Branches) != len(ok) {
		t.Fatalf("session has %d branches, %d were accepted", len(got.Branches), len(ok))
	}
	for _, b := range got.Branches {
		if !ok[b.BranchID] {
			t.Errorf("branch %d is stored but AddBranch refused it", b.BranchID)
		}
	}
}

// accepted returns the IDs of the branches whose AddBranch succeeded.
func accepted(errs []error, branches []*tc.BranchSession) map[int64]bool {
	out := make(map[int64]bool)
	for i, err := range errs {
		if err == nil {
			out[branches[i].BranchID] = true
		}
	}
	return out
}

func testUpdateBranch(t *testing.T, s tc.Store) {
	t0 := baseTime()
	tests := []struct {
		name     string
		status   tcv1.BranchStatus
		data     []byte
		wantData []byte
	}{
		{"status only keeps data", tcv1.BranchStatus_PHASE2_COMMITTED, nil, []byte("original")},
		{"status and data", tcv1.BranchStatus_PHASE2_ROLLBACK_FAILED_RETRYABLE, binaryData(), binaryData()},
		{"empty data clears", tcv1.BranchStatus_PHASE1_DONE, []byte{}, nil},
		{"same values again", tcv1.BranchStatus_REGISTERED, []byte("original"), []byte("original")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGlobal("update-branch", t0, time.Minute)
			mustCreate(t, s, g)
			b := newBranch(g.XID, t0, []byte("original"))
			mustAddBranch(t, s, b)
			sibling := newBranch(g.XID, t0.Add(time.Millisecond), []byte("sibling"))
			mustAddBranch(t, s, sibling)
			if err := s.UpdateBranch(t.Context(), g.XID, b.BranchID, tt.status, tt.data); err != nil {
				t.Fatalf("UpdateBranch: %v", err)
			}
			got := mustGet(t, s, g.XID)
			if len(got.Branches) != 2 {
				t.Fatalf("session has %d branches, want 2", len(got.Branches))
			}
			want := *b
			want.Status, want.ApplicationData = tt.status, tt.wantData
			checkBranch(t, &want, got.Branches[0])
			checkBranch(t, sibling, got.Branches[1])
		})
	}
	t.Run("unknown", func(t *testing.T) {
		g := newGlobal("update-branch", t0, time.Minute)
		mustCreate(t, s, g)
		b := newBranch(g.XID, t0, nil)
		mustAddBranch(t, s, b)
		for _, c := range []struct {
			xid string
			id  int64
		}{{g.XID, b.BranchID + 1}, {newXID("unknown"), b.BranchID}} {
			err := s.UpdateBranch(t.Context(), c.xid, c.id, tcv1.BranchStatus_PHASE2_COMMITTED, nil)
			if !errors.Is(err, tc.ErrNotFound) {
				t.Errorf("UpdateBranch(%s, %d): %v, want tc.ErrNotFound", c.xid, c.id, err)
			}
		}
		checkBranch(t, b, mustGet(t, s, g.XID).Branches[0])
	})
}

func testListGlobals(t *testing.T, s tc.Store) {
	t0 := baseTime()
	statuses := []tcv1.GlobalStatus{
		tcv1.GlobalStatus_BEGIN, tcv1.GlobalStatus_COMMITTING, tcv1.GlobalStatus_COMMITTED,
		tcv1.GlobalStatus_BEGIN, tcv1.GlobalStatus_ROLLBACK_FAILED, tcv1.GlobalStatus_COMMITTING,
	}
	var all []string // oldest first
	byStatus := make(map[tcv1.GlobalStatus][]string)
	for i, st := range statuses {
		g := newGlobal("list", t0.Add(time.Duration(i)*time.Second), time.Minute)
		mustCreate(t, s, g)
		mustAddBranch(t, s, newBranch(g.XID, t0, nil))
		mustUpdate(t, s, g.XID, tc.GlobalUpdate{Status: st})
		all = append(all, g.XID)
		byStatus[st] = append(byStatus[st], g.XID)
	}
	newestFirst := func(x []string) []string {
		out := slices.Clone(x)
		slices.Reverse(out)
		return out
	}
	tests := []struct {
		name   string
		filter tc.ListFilter
		want   []string
	}{
		{"all", tc.ListFilter{}, newestFirst(all)},
		{"limit", tc.ListFilter{Limit: 2}, newestFirst(all)[:2]},
		{"one status", tc.ListFilter{Statuses: []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}}, newestFirst(byStatus[tcv1.GlobalStatus_BEGIN])},
		{"two statuses", tc.ListFilter{Statuses: []tcv1.GlobalStatus{tcv1.GlobalStatus_COMMITTING, tcv1.GlobalStatus_ROLLBACK_FAILED}},
			newestFirst([]string{all[1], all[4], all[5]})},
		{"statuses and limit", tc.ListFilter{Statuses: []tcv1.GlobalStatus{tcv1.GlobalStatus_COMMITTING, tcv1.GlobalStatus_ROLLBACK_FAILED}, Limit: 1},
			[]string{all[5]}},
		{"no match", tc.ListFilter{Statuses: []tcv1.GlobalStatus{tcv1.GlobalStatus_TIMEOUT_ROLLBACKED}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListGlobals(t.Context(), tt.filter)
			if err != nil {
				t.Fatalf("ListGlobals: %v", err)
			}
			if !slices.Equal(xids(got), tt.want) {
				t.Fatalf("ListGlobals(%+v) = %v, want %v", tt.filter, xids(got), tt.want)
			}
			for _, g := range got {
				if len(g.Branches) != 0 {
					t.Errorf("ListGlobals returned %s with branches", g.XID)
				}
			}
		})
	}
	t.Run("default limit is 100", func(t *testing.T) {
		for i := len(all); i < 105; i++ {
			mustCreate(t, s, newGlobal("list-many", t0.Add(time.Duration(i)*time.Second), time.Minute))
		}
		got, err := s.ListGlobals(t.Context(), tc.ListFilter{})
		if err != nil {
			t.Fatalf("ListGlobals: %v", err)
		}
		if len(got) != 100 {
			t.Fatalf("ListGlobals with Limit 0 returned %d sessions, want 100", len(got))
		}
	})
}

// claim calls ClaimDue on the phase-2 statuses and returns the XIDs claimed.
func claim(t *testing.T, s tc.Store, owner string, now time.Time, lease time.Duration, limit int) []*tc.GlobalSession {
	t.Helper()
	got, err := s.ClaimDue(t.Context(), owner, tcv1.Phase2Statuses(), now, lease, limit)
	if err != nil {
		t.Fatalf("ClaimDue(%s): %v", owner, err)
	}
	return got
}

func testClaimDue(t *testing.T, s tc.Store) {
	t0 := baseTime()
	const lease = time.Minute
	mk := func(tag string, u tc.GlobalUpdate, branches int) *tc.GlobalSession {
		g := newGlobal(tag, t0.Add(-time.Hour), time.Minute)
		mustCreate(t, s, g)
		for i := range branches {
			// Branches come within the session's timeout.
			mustAddBranch(t, s, newBranch(g.XID, t0.Add(-time.Hour+time.Duration(i)*time.Millisecond), []byte(tag)))
		}
		if u.Status != tcv1.GlobalStatus_BEGIN {
			mustUpdate(t, s, g.XID, u)
		}
		return g
	}
	dueZero := mk("due-zero", tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTING}, 2)
	dueNow := mk("due-now", tc.GlobalUpdate{Status: tcv1.GlobalStatus_TIMEOUT_ROLLBACK_RETRYING, Attempts: 2, NextAttempt: t0}, 1)
	mk("due-later", tc.GlobalUpdate{Status: tcv1.GlobalStatus_ROLLBACKING, NextAttempt: t0.Add(time.Hour)}, 0)
	mk("begin", tc.GlobalUpdate{Status: tcv1.GlobalStatus_BEGIN}, 1)
	mk("finished", tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTED}, 0)
	mk("failed", tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMIT_FAILED}, 0)
	leasedElsewhere := mk("leased", tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMIT_RETRYING, Owner: "replica-c", LeaseUntil: t0.Add(90 * time.Second)}, 0)
	expired := mk("expired", tc.GlobalUpdate{Status: tcv1.GlobalStatus_ROLLBACK_RETRYING, Owner: "replica-c", LeaseUntil: t0.Add(-time.Second)}, 0)
	due := []string{dueZero.XID, dueNow.XID, expired.XID}

	checkClaimed := func(t *testing.T, got []*tc.GlobalSession, want []string, owner string, until time.Time) {
		t.Helper()
		if !sameSet(xids(got), want) {
			t.Fatalf("%s claimed %v, want %v", owner, xids(got), want)
		}
		for _, g := range got {
			if g.Owner != owner || !sameTime(g.LeaseUntil, until) {
				t.Errorf("%s claimed %s: Owner %q LeaseUntil %v, want %q %v", owner, g.XID, g.Owner, g.LeaseUntil, owner, until)
			}
			stored := mustGet(t, s, g.XID)
			if stored.Owner != owner || !sameTime(stored.LeaseUntil, until) {
				t.Errorf("stored %s: Owner %q LeaseUntil %v, want %q %v", g.XID, stored.Owner, stored.LeaseUntil, owner, until)
			}
			if len(g.Branches) != len(stored.Branches) {
				t.Fatalf("claimed %s with %d branches, store has %d", g.XID, len(g.Branches), len(stored.Branches))
			}
			for i, b := range stored.Branches {
				checkBranch(t, b, g.Branches[i])
			}
			if g.XID == dueNow.XID && (g.Attempts != 2 || g.Status != tcv1.GlobalStatus_TIMEOUT_ROLLBACK_RETRYING) {
				t.Errorf("claimed %s: Attempts %d Status %v, want 2 %v", g.XID, g.Attempts, g.Status, tcv1.GlobalStatus_TIMEOUT_ROLLBACK_RETRYING)
			}
		}
	}
	steps := []struct {
		name  string
		owner string
		now   time.Time
		want  []string
		until time.Time
	}{
		{"first owner claims the due ones", "replica-a", t0, due, t0.Add(lease)},
		{"same owner renews its lease", "replica-a", t0.Add(time.Second), due, t0.Add(time.Second + lease)},
		{"other owner waits for the lease", "replica-b", t0.Add(30 * time.Second), nil, time.Time{}},
		{"other owner takes expired leases", "replica-b", t0.Add(2 * time.Minute), []string{dueZero.XID, dueNow.XID, expired.XID, leasedElsewhere.XID}, t0.Add(2*time.Minute + lease)},
		{"first owner finds them taken", "replica-a", t0.Add(2 * time.Minute), nil, time.Time{}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			checkClaimed(t, claim(t, s, st.owner, st.now, lease, 100), st.want, st.owner, st.until)
		})
	}
	t.Run("statuses filter", func(t *testing.T) {
		got, err := s.ClaimDue(t.Context(), "replica-d", []tcv1.GlobalStatus{tcv1.GlobalStatus_ROLLBACKING}, t0.Add(2*time.Hour), lease, 100)
		if err != nil {
			t.Fatalf("ClaimDue: %v", err)
		}
		if len(got) != 1 || got[0].Status != tcv1.GlobalStatus_ROLLBACKING {
			t.Fatalf("ClaimDue(ROLLBACKING) = %v, want the one ROLLBACKING session", xids(got))
		}
	})
}

func testClaimDueLimit(t *testing.T, s tc.Store) {
	t0 := baseTime()
	var all []string
	for range 5 {
		g := newGlobal("limit", t0, time.Minute)
		mustCreate(t, s, g)
		mustUpdate(t, s, g.XID, tc.GlobalUpdate{Status: tcv1.GlobalStatus_ROLLBACKING})
		all = append(all, g.XID)
	}
	a := claim(t, s, "replica-a", t0, time.Minute, 2)
	if len(a) != 2 {
		t.Fatalf("ClaimDue with limit 2 returned %d sessions", len(a))
	}
	b := claim(t, s, "replica-b", t0, time.Minute, 10)
	if len(b) != 3 {
		t.Fatalf("second owner claimed %d sessions, want the 3 left", len(b))
	}
	if !sameSet(append(xids(a), xids(b)...), all) {
		t.Fatalf("claims %v and %v do not split %v", xids(a), xids(b), all)
	}
}

func testClaimDueReleased(t *testing.T, s tc.Store) {
	t0 := baseTime()
	g := newGlobal("release", t0, time.Minute)
	mustCreate(t, s, g)
	mustUpdate(t, s, g.XID, tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTING})
	if got := claim(t, s, "replica-a", t0, time.Hour, 10); len(got) != 1 {
		t.Fatalf("replica-a claimed %v, want [%s]", xids(got), g.XID)
	}
	if got := claim(t, s, "replica-b", t0, time.Hour, 10); len(got) != 0 {
		t.Fatalf("replica-b claimed %v while replica-a holds the lease", xids(got))
	}
	err := s.UpdateGlobal(t.Context(), g.XID, []tcv1.GlobalStatus{tcv1.GlobalStatus_COMMITTING},
		tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMIT_RETRYING, Attempts: 1, NextAttempt: t0.Add(time.Second)})
	if err != nil {
		t.Fatalf("UpdateGlobal releasing the lease: %v", err)
	}
	if got := claim(t, s, "replica-b", t0, time.Hour, 10); len(got) != 0 {
		t.Fatalf("replica-b claimed %v before NextAttempt", xids(got))
	}
	got := claim(t, s, "replica-b", t0.Add(time.Second), time.Hour, 10)
	if len(got) != 1 || got[0].Owner != "replica-b" || got[0].Attempts != 1 {
		t.Fatalf("replica-b claimed %v after the release, want %s owned by replica-b", xids(got), g.XID)
	}
}

// testClaimDueExclusive runs two owners' claim loops at the same time: no
// session may ever be handed to both.
func testClaimDueExclusive(t *testing.T, s tc.Store) {
	const (
		sessions  = 24
		perOwner  = 4
		rounds    = 4
		batchSize = 4
	)
	t0 := baseTime()
	for range sessions {
		g := newGlobal("exclusive", t0, time.Minute)
		mustCreate(t, s, g)
		mustUpdate(t, s, g.XID, tc.GlobalUpdate{Status: tcv1.GlobalStatus_ASYNC_COMMITTING})
	}
	owners := []string{"replica-a", "replica-b"}
	var (
		mu      sync.Mutex
		claimed = make(map[string]map[string]bool) // xid -> owners
		wg      sync.WaitGroup
		start   = make(chan struct{})
		errs    = make(chan error, len(owners)*perOwner)
	)
	for _, owner := range owners {
		for range perOwner {
			wg.Go(func() {
				<-start
				for range rounds {
					got, err := s.ClaimDue(t.Context(), owner, tcv1.Phase2Statuses(), t0, time.Hour, batchSize)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					for _, g := range got {
						if claimed[g.XID] == nil {
							claimed[g.XID] = make(map[string]bool)
						}
						claimed[g.XID][owner] = true
					}
					mu.Unlock()
				}
			})
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("ClaimDue: %v", err)
	}
	if len(claimed) == 0 {
		t.Fatal("no session was claimed")
	}
	for xid, byOwner := range claimed {
		if len(byOwner) != 1 {
			t.Errorf("%s was claimed by %d owners", xid, len(byOwner))
			continue
		}
		for owner := range byOwner {
			if got := mustGet(t, s, xid).Owner; got != owner {
				t.Errorf("%s is owned by %q, claimed by %q", xid, got, owner)
			}
		}
	}
}

func testListTimedOut(t *testing.T, s tc.Store) {
	t0 := baseTime()
	now := t0.Add(time.Minute)
	mk := func(begin time.Time, timeout time.Duration, status tcv1.GlobalStatus) string {
		g := newGlobal("timeout", begin, timeout)
		mustCreate(t, s, g)
		if status != tcv1.GlobalStatus_BEGIN {
			mustUpdate(t, s, g.XID, tc.GlobalUpdate{Status: status})
		}
		return g.XID
	}
	var timedOut []string
	timedOut = append(timedOut, mk(t0, 10*time.Second, tcv1.GlobalStatus_BEGIN))
	timedOut = append(timedOut, mk(t0.Add(-time.Hour), 59*time.Minute, tcv1.GlobalStatus_BEGIN))
	timedOut = append(timedOut, mk(t0, time.Minute-time.Millisecond, tcv1.GlobalStatus_BEGIN))
	mk(t0, time.Minute, tcv1.GlobalStatus_BEGIN) // deadline is now: not before it
	mk(t0, time.Hour, tcv1.GlobalStatus_BEGIN)
	mk(t0.Add(-time.Hour), time.Hour+2*time.Minute, tcv1.GlobalStatus_BEGIN)
	mk(t0, time.Second, tcv1.GlobalStatus_COMMITTING)
	mk(t0, time.Second, tcv1.GlobalStatus_TIMEOUT_ROLLBACKING)
	mk(t0, time.Second, tcv1.GlobalStatus_ROLLBACKED)

	got, err := s.ListTimedOut(t.Context(), now, 100)
	if err != nil {
		t.Fatalf("ListTimedOut: %v", err)
	}
	if !sameSet(xids(got), timedOut) {
		t.Fatalf("ListTimedOut = %v, want %v", xids(got), timedOut)
	}
	for _, g := range got {
		if g.Status != tcv1.GlobalStatus_BEGIN || len(g.Branches) != 0 {
			t.Errorf("ListTimedOut returned %s in %v with %d branches", g.XID, g.Status, len(g.Branches))
		}
	}
	got, err = s.ListTimedOut(t.Context(), now, 2)
	if err != nil {
		t.Fatalf("ListTimedOut: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("ListTimedOut with limit 2 returned %d sessions", len(got))
	}
	for _, g := range got {
		if !slices.Contains(timedOut, g.XID) {
			t.Errorf("ListTimedOut with limit 2 returned %s, which has not timed out", g.XID)
		}
	}
	got, err = s.ListTimedOut(t.Context(), t0, 100)
	if err != nil {
		t.Fatalf("ListTimedOut: %v", err)
	}
	if len(got) != 1 || got[0].XID != timedOut[1] {
		t.Fatalf("ListTimedOut(t0) = %v, want [%s]", xids(got), timedOut[1])
	}
}

func testDeleteFinished(t *testing.T, s tc.Store) {
	t0 := baseTime()
	mk := func(status tcv1.GlobalStatus) *tc.GlobalSession {
		g := newGlobal("delete", t0, time.Minute)
		mustCreate(t, s, g)
		mustAddBranch(t, s, newBranch(g.XID, t0, []byte("data")))
		if status != tcv1.GlobalStatus_BEGIN {
			mustUpdate(t, s, g.XID, tc.GlobalUpdate{Status: status})
		}
		return g
	}
	finished := []*tc.GlobalSession{
		mk(tcv1.GlobalStatus_COMMITTED), mk(tcv1.GlobalStatus_ROLLBACKED), mk(tcv1.GlobalStatus_TIMEOUT_ROLLBACKED),
	}
	var kept []*tc.GlobalSession
	for _, st := range allStatuses {
		if !st.IsDone() {
			kept = append(kept, mk(st))
		}
	}
	n, err := s.DeleteFinished(t.Context(), time.Now().Add(-time.Hour), 100)
	if err != nil || n != 0 {
		t.Fatalf("DeleteFinished(an hour ago) = %d, %v; want 0, nil", n, err)
	}
	before := time.Now().Add(time.Hour)
	for _, want := range []int{2, 1, 0} {
		n, err := s.DeleteFinished(t.Context(), before, 2)
		if err != nil || n != want {
			t.Fatalf("DeleteFinished(limit 2) = %d, %v; want %d, nil", n, err, want)
		}
	}
	for _, g := range finished {
		if _, err := s.GetGlobal(t.Context(), g.XID); !errors.Is(err, tc.ErrNotFound) {
			t.Errorf("GetGlobal(deleted %s): %v, want tc.ErrNotFound", g.XID, err)
		}
		// A session created again under the same XID must not find the
		// deleted session's branches.
		mustCreate(t, s, g)
		if n := len(mustGet(t, s, g.XID).Branches); n != 0 {
			t.Errorf("%s recreated after DeleteFinished has %d branches, want 0", g.XID, n)
		}
	}
	for _, g := range kept {
		got := mustGet(t, s, g.XID)
		if len(got.Branches) != 1 {
			t.Errorf("kept %s (%v) has %d branches, want 1", g.XID, got.Status, len(got.Branches))
		}
	}
}

// testFinishEmpty checks tc.EmptyFinisher where the store has it.
func testFinishEmpty(t *testing.T, s tc.Store) {
	f, ok := s.(tc.EmptyFinisher)
	if !ok {
		t.Skip("the store does not implement tc.EmptyFinisher")
	}
	now := time.Now()
	empty := newGlobal("empty", now, time.Minute)
	mustCreate(t, s, empty)
	withBranch := newGlobal("branch", now, time.Minute)
	mustCreate(t, s, withBranch)
	mustAddBranch(t, s, newBranch(withBranch.XID, now, nil))
	expired := newGlobal("expired", now.Add(-time.Hour), time.Minute)
	mustCreate(t, s, expired)
	decided := newGlobal("decided", now, time.Minute)
	mustCreate(t, s, decided)
	mustUpdate(t, s, decided.XID, tc.GlobalUpdate{Status: tcv1.GlobalStatus_ROLLBACKING})

	tests := []struct {
		name string
		xid  string
		want bool
		then tcv1.GlobalStatus
	}{
		{"empty", empty.XID, true, tcv1.GlobalStatus_COMMITTED},
		{"again", empty.XID, false, tcv1.GlobalStatus_COMMITTED},
		{"with a branch", withBranch.XID, false, tcv1.GlobalStatus_BEGIN},
		{"past its deadline", expired.XID, false, tcv1.GlobalStatus_BEGIN},
		{"not in BEGIN", decided.XID, false, tcv1.GlobalStatus_ROLLBACKING},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.FinishEmpty(t.Context(), tt.xid, tcv1.GlobalStatus_COMMITTED, now)
			if err != nil || got != tt.want {
				t.Fatalf("FinishEmpty = %v, %v; want %v", got, err, tt.want)
			}
			if st := mustGet(t, s, tt.xid).Status; st != tt.then {
				t.Fatalf("status %s afterwards, want %s", st, tt.then)
			}
		})
	}
	if got, err := f.FinishEmpty(t.Context(), newXID("unknown"), tcv1.GlobalStatus_COMMITTED, now); err != nil || got {
		t.Fatalf("FinishEmpty(unknown) = %v, %v; want false, nil", got, err)
	}
}

// testFinishEmptyRace races FinishEmpty against AddBranch on fresh sessions:
// either the branch is stored and the session stays in BEGIN, or the session
// finished and the branch was refused; never both.
func testFinishEmptyRace(t *testing.T, s tc.Store) {
	f, ok := s.(tc.EmptyFinisher)
	if !ok {
		t.Skip("the store does not implement tc.EmptyFinisher")
	}
	for i := 0; i < 20; i++ {
		g := newGlobal("race", time.Now(), time.Minute)
		mustCreate(t, s, g)
		var (
			finished bool
			finErr   error
		)
		addErr := raceAddBranch(t, s, g.XID, func() {
			finished, finErr = f.FinishEmpty(t.Context(), g.XID, tcv1.GlobalStatus_ROLLBACKED, time.Now())
		})
		if finErr != nil {
			t.Fatalf("FinishEmpty: %v", finErr)
		}
		after := mustGet(t, s, g.XID)
		switch {
		case finished && addErr == nil:
			t.Fatalf("round %d: the session finished and a branch was stored too", i)
		case finished:
			wantStatusError(t, addErr, g.XID, tcv1.GlobalStatus_ROLLBACKED)
			if len(after.Branches) != 0 {
				t.Fatalf("round %d: refused branch stored", i)
			}
		case addErr != nil:
			t.Fatalf("round %d: neither finished nor stored the branch: %v", i, addErr)
		default:
			if after.Status != tcv1.GlobalStatus_BEGIN || len(after.Branches) != 1 {
				t.Fatalf("round %d: %s with %d branches", i, after.Status, len(after.Branches))
			}
		}
	}
}

// raceAddBranch runs op and an AddBranch of a new branch to xid at the same
// moment, and returns AddBranch's error once both are done.
func raceAddBranch(t *testing.T, s tc.Store, xid string, op func()) error {
	var (
		wg     sync.WaitGroup
		addErr error
	)
	start := make(chan struct{})
	wg.Go(func() {
		<-start
		op()
	})
	wg.Go(func() {
		<-start
		addErr = s.AddBranch(t.Context(), newBranch(xid, time.Now(), nil))
	})
	close(start)
	wg.Wait()
	return addErr
}

// testDecide checks tc.Decider where the store has it.
func testDecide(t *testing.T, s tc.Store) {
	d, ok := s.(tc.Decider)
	if !ok {
		t.Skip("the store does not implement tc.Decider")
	}
	now := time.Now()
	oneBranch := newGlobal("one", now, time.Minute)
	mustCreate(t, s, oneBranch)
	mustAddBranch(t, s, newBranch(oneBranch.XID, now, nil))
	decided := newGlobal("decided", now, time.Minute)
	mustCreate(t, s, decided)
	mustUpdate(t, s, decided.XID, tc.GlobalUpdate{Status: tcv1.GlobalStatus_ROLLBACKING})
	u := tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTING, Owner: "tc-1", LeaseUntil: baseTime().Add(time.Minute)}

	tests := []struct {
		name     string
		xid      string
		branches int
		want     error
		then     tcv1.GlobalStatus
	}{
		{"fewer branches than stored", oneBranch.XID, 0, tc.ErrBranchesChanged, tcv1.GlobalStatus_BEGIN},
		{"more branches than stored", oneBranch.XID, 2, tc.ErrBranchesChanged, tcv1.GlobalStatus_BEGIN},
		{"the stored branches", oneBranch.XID, 1, nil, tcv1.GlobalStatus_COMMITTING},
		{"again", oneBranch.XID, 1, tc.ErrStatusConflict, tcv1.GlobalStatus_COMMITTING},
		{"not in BEGIN", decided.XID, 0, tc.ErrStatusConflict, tcv1.GlobalStatus_ROLLBACKING},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Decide(t.Context(), tt.xid, tt.branches, u)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Decide = %v, want %v", err, tt.want)
			}
			got := mustGet(t, s, tt.xid)
			if got.Status != tt.then {
				t.Fatalf("status %s afterwards, want %s", got.Status, tt.then)
			}
			if tt.want == nil && (got.Owner != u.Owner || !got.LeaseUntil.Equal(u.LeaseUntil)) {
				t.Fatalf("owner %q until %v afterwards, want %q until %v", got.Owner, got.LeaseUntil, u.Owner, u.LeaseUntil)
			}
		})
	}
	if err := d.Decide(t.Context(), newXID("unknown"), 0, u); !errors.Is(err, tc.ErrNotFound) {
		t.Fatalf("Decide(unknown) = %v, want tc.ErrNotFound", err)
	}
	untouched := newGlobal("negative", now, time.Minute)
	mustCreate(t, s, untouched)
	if err := d.Decide(t.Context(), untouched.XID, -1, u); err == nil {
		t.Fatal("Decide with a negative branch count succeeded")
	}
	if st := mustGet(t, s, untouched.XID).Status; st != tcv1.GlobalStatus_BEGIN {
		t.Fatalf("status %s after a refused Decide, want BEGIN", st)
	}
}

// testDecideRace races Decide, for the branch count read before, against
// AddBranch on fresh sessions: either the decision holds and the branch was
// refused, or the branch is stored and the decision refused; never both.
func testDecideRace(t *testing.T, s tc.Store) {
	d, ok := s.(tc.Decider)
	if !ok {
		t.Skip("the store does not implement tc.Decider")
	}
	for i := 0; i < 20; i++ {
		g := newGlobal("race", time.Now(), time.Minute)
		mustCreate(t, s, g)
		mustAddBranch(t, s, newBranch(g.XID, time.Now(), nil))
		var decideErr error
		addErr := raceAddBranch(t, s, g.XID, func() {
			decideErr = d.Decide(t.Context(), g.XID, 1, tc.GlobalUpdate{Status: tcv1.GlobalStatus_ROLLBACKING})
		})
		after := mustGet(t, s, g.XID)
		switch {
		case decideErr == nil && addErr == nil:
			t.Fatalf("round %d: the decision held and a branch was stored too", i)
		case decideErr == nil:
			wantStatusError(t, addErr, g.XID, tcv1.GlobalStatus_ROLLBACKING)
			if len(after.Branches) != 1 {
				t.Fatalf("round %d: refused branch stored", i)
			}
		case !errors.Is(decideErr, tc.ErrBranchesChanged):
			t.Fatalf("round %d: Decide: %v, want tc.ErrBranchesChanged", i, decideErr)
		case addErr != nil:
			t.Fatalf("round %d: neither decided nor stored the branch: %v", i, addErr)
		default:
			if after.Status != tcv1.GlobalStatus_BEGIN || len(after.Branches) != 2 {
				t.Fatalf("round %d: %s with %d branches", i, after.Status, len(after.Branches))
			}
		}
	}
}

// testAddBranchLocked checks tc.LockingAdder where the store has it (and is
// a tc.LockStore too): the branch and its locks are stored together, or
// neither.
func testAddBranchLocked(t *testing.T, s tc.Store) {
	a, ok := s.(tc.LockingAdder)
	ls, isLocks := s.(tc.LockStore)
	if !ok || !isLocks {
		t.Skip("the store does not implement tc.LockingAdder and tc.LockStore")
	}
	now := time.Now()
	resource := newXID("res")
	other := newGlobal("other", now, time.Minute)
	mustCreate(t, s, other)
	mustAcquire(t, ls, other.XID, 1, keys(resource, "t", "9"))
	decided := newGlobal("decided", now, time.Minute)
	mustCreate(t, s, decided)
	mustUpdate(t, s, decided.XID, tc.GlobalUpdate{Status: tcv1.GlobalStatus_ROLLBACKING})
	late := newGlobal("late", now.Add(-time.Hour), time.Minute)
	mustCreate(t, s, late)
	open := newGlobal("open", now, time.Minute)
	mustCreate(t, s, open)
	reentered := newBranch(open.XID, now, nil)
	mustAddBranch(t, s, reentered)
	mustAcquire(t, ls, open.XID, reentered.BranchID, keys(resource, "t", "3"))

	tests := []struct {
		name     string
		g        *tc.GlobalSession
		locks    []tc.RowLock
		want     func(t *testing.T, err error)
		branches int
	}{
		{"held by another transaction", open, keys(resource, "t", "1", "9"), func(t *testing.T, err error) {
			wantConflict(t, err, held(keys(resource, "t", "9"), other.XID, 1)[0], "")
		}, 1},
		{"not in BEGIN", decided, keys(resource, "t", "1"), func(t *testing.T, err error) {
			wantStatusError(t, err, decided.XID, tcv1.GlobalStatus_ROLLBACKING)
		}, 0},
		{"past its deadline", late, keys(resource, "t", "1"), func(t *testing.T, err error) {
			if !errors.Is(err, tc.ErrTimedOut) {
				t.Fatalf("got %v, want tc.ErrTimedOut", err)
			}
		}, 0},
		{"free and re-entered keys", open, keys(resource, "t", "1", "2", "3"), func(t *testing.T, err error) {
			if err != nil {
				t.Fatalf("AddBranchLocked: %v", err)
			}
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBranch(tt.g.XID, now, nil)
			err := a.AddBranchLocked(t.Context(), b, tt.locks)
			tt.want(t, err)
			if got := len(mustGet(t, s, tt.g.XID).Branches); got != tt.branches {
				t.Fatalf("%d branches afterwards, want %d", got, tt.branches)
			}
			want := held(keys(resource, "t", "9"), other.XID, 1)
			want = append(want, held(keys(resource, "t", "3"), open.XID, reentered.BranchID)...)
			if err == nil {
				want = append(want, held(keys(resource, "t", "1", "2"), tt.g.XID, b.BranchID)...)
			}
			checkHeld(t, ls, keys(resource, "t", "1", "2", "3", "9"), want)
		})
	}
}

// testAsyncCommit checks that a branch's AsyncCommit flag is kept.
func testAsyncCommit(t *testing.T, s tc.Store) {
	g := newGlobal("async", time.Now(), time.Minute)
	mustCreate(t, s, g)
	b := newBranch(g.XID, time.Now(), nil)
	b.AsyncCommit = true
	mustAddBranch(t, s, b)
	got := mustGet(t, s, g.XID)
	if len(got.Branches) != 1 || !got.Branches[0].AsyncCommit {
		t.Fatalf("AsyncCommit lost: %+v", got.Branches)
	}
}

// testAddBranchPastDeadline checks that a branch created after its session's
// deadline is refused with tc.ErrTimedOut and changes nothing.
func testAddBranchPastDeadline(t *testing.T, s tc.Store) {
	begin := time.Now().Add(-time.Minute)
	g := newGlobal("late", begin, time.Second)
	mustCreate(t, s, g)
	err := s.AddBranch(t.Context(), newBranch(g.XID, time.Now(), nil))
	if !errors.Is(err, tc.ErrTimedOut) {
		t.Fatalf("AddBranch past the deadline: %v, want tc.ErrTimedOut", err)
	}
	got := mustGet(t, s, g.XID)
	if got.Status != tcv1.GlobalStatus_BEGIN || len(got.Branches) != 0 {
		t.Fatalf("changed: %s with %d branches", got.Status, len(got.Branches))
	}
	// Within the deadline it is stored.
	mustAddBranch(t, s, newBranch(g.XID, begin.Add(500*time.Millisecond), nil))
}
