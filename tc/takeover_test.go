package tc_test

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/tc"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
)

// A coordinator that starts drives at once the phase 2 that a crashed run
// under its ServerID left, though its next attempt is an hour away; it
// leaves alone another replica's, whose lease runs, until it takes over
// from every owner, as a new Raft leader does.
func TestTakeOverAtStart(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tc.db")
	store, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	left := map[string]string{"127.0.0.1:8091:1": "takeover", "127.0.0.1:8091:2": "another-replica"}
	for xid, owner := range left {
		if err := store.CreateGlobal(ctx, &tc.GlobalSession{XID: xid, Name: "left", Status: tcv1.GlobalStatus_BEGIN, Timeout: time.Minute, BeginTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
		u := tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTING, Owner: owner, LeaseUntil: later, NextAttempt: later}
		if err := store.UpdateGlobal(ctx, xid, []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	coord := gtxtest.NewTC(t, gtxtest.TCOptions{DBPath: path, Configure: func(c *tc.Config) { c.ServerID = "takeover" }})
	status := func(xid string) tcv1.GlobalStatus {
		g, err := coord.Store.GetGlobal(ctx, xid)
		if err != nil {
			t.Fatal(err)
		}
		return g.Status
	}
	poll.Until(t, "its own session to commit", 0, func() bool { return status("127.0.0.1:8091:1") == tcv1.GlobalStatus_COMMITTED })
	if st := status("127.0.0.1:8091:2"); st != tcv1.GlobalStatus_COMMITTING {
		t.Fatalf("the other replica's leased session is %v, want it left COMMITTING", st)
	}
	tc.TakeOver(ctx, coord.Server, true)
	poll.Until(t, "the other replica's session to commit after taking over from every owner", 0, func() bool {
		return status("127.0.0.1:8091:2") == tcv1.GlobalStatus_COMMITTED
	})
}
