package at_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/rm/at/internal/attest"
	"github.com/gtx-io/gtx/tm"
)

func TestPhase2MaxOpenConnsValidate(t *testing.T) {
	tests := []struct {
		name string
		max  int
		want string // part of the error; "" for none
	}{
		{name: "one", max: 1},
		{name: "default", max: at.DefaultConfig().Phase2MaxOpenConns},
		{name: "zero", max: 0, want: "Phase2MaxOpenConns must be positive"},
		{name: "negative", max: -1, want: "Phase2MaxOpenConns must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := at.DefaultConfig()
			cfg.DriverName, cfg.DSN = "sqlite", "/tmp/validate.db"
			cfg.Manager, cfg.Locks = &rm.Manager{}, tcv1.NewCoordinatorClient(nil)
			cfg.Phase2MaxOpenConns = tc.max
			err := cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, at.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidConfig about %q", err, tc.want)
			}
		})
	}
}

// TestPhase2PoolCapped rolls back more global transactions at once than
// Phase2MaxOpenConns while their undo rows are locked, so that every
// rollback holds its phase-2 connection: MariaDB must see no more
// rollbacks running than the cap, the others waiting in the pool.
func TestPhase2PoolCapped(t *testing.T) {
	const (
		limit = 2
		txs   = 8 // fewer than rm.Config.Workers, so all run at once
	)
	c := attest.StartCoordinator(t)
	b := attest.MySQLBackend(t)
	db := attest.OpenAT(t, b, attest.NewRM(t, c), c, func(cfg *at.Config) {
		cfg.Phase2MaxOpenConns = limit
		cfg.Sweep.Interval = 0
	})
	attest.MustExec(t, b.Raw, "CREATE TABLE cap (id INT NOT NULL PRIMARY KEY, v INT NOT NULL)")
	for i := 1; i <= txs; i++ {
		attest.MustExec(t, b.Raw, fmt.Sprintf("INSERT INTO cap VALUES (%d, 0)", i))
	}
	id, err := at.ResourceID(b.Driver, b.DSN)
	if err != nil {
		t.Fatal(err)
	}
	var dbName string
	if err := b.Raw.QueryRow("SELECT DATABASE()").Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	global := make([]*tm.Tx, txs)
	for i := range global {
		global[i] = beginWithUpdate(t, c, db, "cap", fmt.Sprintf("UPDATE cap SET v = 1 WHERE id = %d", i+1))
	}

	// Hold every undo row, so that each rollback blocks on its first read
	// and keeps its connection.
	ctx := context.Background()
	holder, err := b.Raw.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.Exec("SELECT * FROM gtx_undo_log FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, tx := range global {
		wg.Go(func() {
			if _, err := tx.Rollback(ctx, "test"); err != nil {
				t.Logf("rollback %s: %v", tx.XID(), err)
			}
		})
	}

	// Wait until every rollback either runs on MariaDB or has waited for
	// a connection of the pool.
	blocked := func() int {
		var n int
		if err := b.Raw.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'SELECT state, rollback_info FROM %'", dbName).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(4 * time.Second) // under the coordinator's branch timeout
	running, waited := 0, int64(0)
	for {
		running, waited = blocked(), at.Phase2Stats(id).WaitCount
		if int64(running)+waited >= txs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d rollbacks running and %d waits for a connection, want %d in all", running, waited, txs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if running > limit {
		t.Errorf("%d rollbacks running on MariaDB at once, want at most Phase2MaxOpenConns = %d", running, limit)
	}
	if open := at.Phase2Stats(id).OpenConnections; open > limit {
		t.Errorf("phase-2 pool has %d connections open, want at most %d", open, limit)
	}

	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, tx := range global {
		if st := attest.WaitStatus(t, c, tx.XID()); st != tcv1.GlobalStatus_ROLLBACKED {
			t.Errorf("%s: status %s, want ROLLBACKED", tx.XID(), st)
		}
	}
	var changed int
	if err := b.Raw.QueryRow("SELECT COUNT(*) FROM cap WHERE v <> 0").Scan(&changed); err != nil {
		t.Fatal(err)
	}
	if changed != 0 {
		t.Fatalf("%d rows still changed after the rollbacks", changed)
	}
}
