package orderinventory_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gtx-io/gtx/samples/order-inventory/load"
	"github.com/gtx-io/gtx/samples/order-inventory/order"
)

// orders is the size of each run: the issue asks for 2000.
const orders = 2000

func mixed() load.Config {
	return load.Config{Concurrency: 16, Orders: orders, Modes: order.Modes, FailRatio: 0.2}
}

// 2000 orders in every mode, 20% asked to fail, against separate processes
// on MariaDB: the invariants hold and every transaction ends.
func TestSeparateProcesses(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	ctx := t.Context()
	before, err := c.client.TakeSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := c.run(ctx, mixed())
	if res.Committed == 0 || res.RolledBack == 0 || res.Unknown != 0 {
		t.Errorf("want committed and rolled-back orders and none unknown, got %d, %d, %d", res.Committed, res.RolledBack, res.Unknown)
	}
	c.check(ctx, before)
	c.waitFinished(ctx)

	// Bad requests against the real processes: 400, and nothing begins.
	for _, body := range []string{`{"user":"u1","sku":"A","quantity":0}`, `{"user":"u1","sku":"A","quantity":1,"mode":"xa"}`, `{`} {
		code, res, err := c.client.PlaceRaw(ctx, []byte(body))
		if err != nil || code != http.StatusBadRequest || res.XID != "" {
			t.Errorf("%s: %d %+v %v, want 400 without an XID", body, code, res, err)
		}
	}
}

// The same run with each service and the coordinator killed with SIGKILL
// during it, one after the other, and restarted: once recovery is done the
// invariants hold, no transaction is left unfinished and no global row lock
// remains.
func TestKill9(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	ctx := t.Context()
	before, err := c.client.TakeSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	victims := []string{"inventory", "account", "order", "tc"}
	var placed atomic.Int64
	kills := make(chan string, len(victims))
	cfg := mixed()
	cfg.DelayRatio, cfg.Delay = 0.1, 200*time.Millisecond // more transactions in flight at each kill
	cfg.OnOrder = func(load.Outcome) {
		n := placed.Add(1)
		// Every 400 orders from the 300th, the next victim.
		if n >= 300 && (n-300)%400 == 0 && int(n-300)/400 < len(victims) {
			kills <- victims[(n-300)/400]
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for name := range kills {
			c.kill9(name)
			t.Logf("killed %s after %d orders", name, placed.Load())
			if err := c.tryStart(name); err != nil {
				t.Error(err)
			}
		}
	}()
	res := c.run(ctx, cfg)
	close(kills)
	<-done
	if res.Committed == 0 || res.RolledBack == 0 {
		t.Errorf("want committed and rolled-back orders, got %d and %d", res.Committed, res.RolledBack)
	}
	c.waitFinished(ctx)
	c.check(ctx, before)
	c.waitFinished(ctx)
}
