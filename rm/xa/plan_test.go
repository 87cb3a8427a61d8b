package xa

import (
	"errors"
	"reflect"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

func TestPlan(t *testing.T) {
	t0 := time.Unix(1000, 0)
	grace := time.Minute
	preCommit := 30 * time.Second
	p3 := branchXID{xid: "3", branchID: 31, tag: "0000000a", threePhase: true}
	seenP3 := map[branchXID]time.Time{p3: t0}
	a := branchXID{xid: "1", branchID: 11, tag: "0000000a"}
	b := branchXID{xid: "2", branchID: 21, tag: "0000000a"}
	seenA := map[branchXID]time.Time{a: t0}
	later := t0.Add(time.Second)
	cases := []struct {
		name     string
		prepared []branchXID
		answers  map[string]answer
		seen     map[branchXID]time.Time
		now      time.Time
		want     []verdict
		// wantSeen is seen after plan.
		wantSeen map[branchXID]time.Time
	}{
		{"first sighting only notes", []branchXID{a}, map[string]answer{"1": {status: tcv1.GlobalStatus_COMMITTED}}, nil, t0,
			nil, seenA},
		{"committing commits", []branchXID{a}, map[string]answer{"1": {status: tcv1.GlobalStatus_COMMITTING}}, seenA, later,
			[]verdict{{a, commit}}, seenA},
		{"committed commits", []branchXID{a}, map[string]answer{"1": {status: tcv1.GlobalStatus_COMMITTED}}, seenA, later,
			[]verdict{{a, commit}}, seenA},
		{"commit failed still commits", []branchXID{a}, map[string]answer{"1": {status: tcv1.GlobalStatus_COMMIT_FAILED}}, seenA, later,
			[]verdict{{a, commit}}, seenA},
		{"timeout rollback rolls back", []branchXID{a}, map[string]answer{"1": {status: tcv1.GlobalStatus_TIMEOUT_ROLLBACKING}}, seenA, later,
			[]verdict{{a, rollback}}, seenA},
		{"rolled back rolls back", []branchXID{a}, map[string]answer{"1": {status: tcv1.GlobalStatus_ROLLBACKED}}, seenA, later,
			[]verdict{{a, rollback}}, seenA},
		{"begin waits", []branchXID{a}, map[string]answer{"1": {status: tcv1.GlobalStatus_BEGIN}}, seenA, later,
			nil, seenA},
		{"unreachable coordinator waits", []branchXID{a}, map[string]answer{"1": {err: errors.New("unavailable")}}, seenA, t0.Add(grace),
			nil, seenA},
		{"unknown within grace waits", []branchXID{a}, map[string]answer{"1": {notFound: true}}, seenA, t0.Add(grace - time.Nanosecond),
			nil, seenA},
		{"unknown past grace rolls back", []branchXID{a}, map[string]answer{"1": {notFound: true}}, seenA, t0.Add(grace),
			[]verdict{{a, rollback}}, seenA},
		{"precommitted, coordinator silent within the timeout, waits", []branchXID{p3}, map[string]answer{"3": {err: errors.New("unavailable")}}, seenP3, t0.Add(preCommit - time.Nanosecond),
			nil, seenP3},
		{"precommitted, coordinator silent past the timeout, commits alone", []branchXID{p3}, map[string]answer{"3": {err: errors.New("unavailable")}}, seenP3, t0.Add(preCommit),
			[]verdict{{p3, commit}}, seenP3},
		{"precommitted, coordinator says rollback, rolls back", []branchXID{p3}, map[string]answer{"3": {status: tcv1.GlobalStatus_ROLLBACKING}}, seenP3, t0.Add(preCommit),
			[]verdict{{p3, rollback}}, seenP3},
		{"precommitted, coordinator in BEGIN, waits", []branchXID{p3}, map[string]answer{"3": {status: tcv1.GlobalStatus_BEGIN}}, seenP3, t0.Add(time.Hour),
			nil, seenP3},
		{"no longer prepared is forgotten", []branchXID{b}, map[string]answer{"2": {status: tcv1.GlobalStatus_BEGIN}}, seenA, later,
			nil, map[branchXID]time.Time{b: later}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seen := map[branchXID]time.Time{}
			for k, v := range c.seen {
				seen[k] = v
			}
			got := plan(c.prepared, c.answers, seen, c.now, grace, preCommit)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("verdicts %v, want %v", got, c.want)
			}
			if !reflect.DeepEqual(seen, c.wantSeen) {
				t.Errorf("seen %v, want %v", seen, c.wantSeen)
			}
		})
	}
}

func TestBranchXIDRoundTrip(t *testing.T) {
	for _, xid := range []string{"1", "738261209837465", "gtxtest:1", "a:b:c", "x-y"} {
		for _, three := range []bool{false, true} {
			id, err := newBranchXID(xid, 42, "mysql:root@tcp(127.0.0.1:3306)/db", three)
			if err != nil {
				t.Fatal(err)
			}
			f := FormatID
			if three {
				f = FormatIDThreePhase
			}
			if got, ok := parseGID(id.gid()); !ok || got != id {
				t.Errorf("gid %q parsed to %v, %v", id.gid(), got, ok)
			}
			data := []byte(id.xid + id.bqual())
			if got, ok := parseMySQLXID(int64(f), len(id.xid), len(id.bqual()), data); !ok || got != id {
				t.Errorf("mysql %q parsed to %v, %v", data, got, ok)
			}
		}
	}
}

func TestParseRejectsOthers(t *testing.T) {
	for _, gid := range []string{"", "gtx:", "gtx:abc:1:x", "gtx:0000000a:0:x", "gtx:0000000a:-1:x", "gtx:0000000a:1:", "other:0000000a:1:x", "gtx:0000000a:1:bad xid"} {
		if b, ok := parseGID(gid); ok {
			t.Errorf("parseGID(%q) = %v, want refusal", gid, b)
		}
	}
	if _, ok := parseMySQLXID(1, 1, 10, []byte("10000000a:1")); ok {
		t.Error("a foreign formatID was taken")
	}
	if _, ok := parseMySQLXID(FormatID, 5, 10, []byte("short")); ok {
		t.Error("lengths beyond the data were taken")
	}
}

func FuzzParseGID(f *testing.F) {
	f.Add("gtx:0000000a:1:123")
	f.Add("gtx:0000000a:1:a:b")
	f.Add("gtx3:0000000a:1:123")
	f.Fuzz(func(t *testing.T, gid string) {
		b, ok := parseGID(gid)
		if ok && b.gid() != gid {
			t.Fatalf("%q parsed to %v, which prints as %q", gid, b, b.gid())
		}
	})
}
