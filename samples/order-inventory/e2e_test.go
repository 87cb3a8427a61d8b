package orderinventory_test

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gtx-io/gtx/samples/order-inventory/load"
	"github.com/gtx-io/gtx/samples/order-inventory/order"
)

// orders is the size of each run on MariaDB: the issue asks for 2000.
// pgOrders is the size of the run on PostgreSQL, which repeats it with
// another dialect and is kept smaller so the suite stays fast.
const (
	orders   = 2000
	pgOrders = 500
)

// mixed places n orders from 16 workers, in every mode, 20% asked to fail.
func mixed(n int) load.Config {
	return load.Config{Concurrency: 16, Orders: n, Modes: order.Modes, FailRatio: 0.2}
}

// 2000 orders in every mode, 20% asked to fail, against separate processes
// on MariaDB: the invariants hold and every transaction ends.
func TestSeparateProcesses(t *testing.T) {
	t.Parallel()
	separateProcesses(t, mariaDB(t), orders)
}

// The same with 500 orders on PostgreSQL: the coordinator's store and every
// service's database (AT through atpg, the TCC fence, the saga steps) there.
func TestSeparateProcessesPostgres(t *testing.T) {
	t.Parallel()
	separateProcesses(t, postgres(t), pgOrders)
}

func separateProcesses(t *testing.T, db dbServer, n int) {
	c := newCluster(t, db)
	ctx := t.Context()
	before, err := c.client.TakeSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := c.run(ctx, mixed(n))
	if res.Committed == 0 || res.RolledBack == 0 || res.Unknown != 0 {
		t.Errorf("want committed and rolled-back orders and none unknown, got %d, %d, %d", res.Committed, res.RolledBack, res.Unknown)
	}
	c.check(ctx, before)
	c.waitFinished(ctx)

	// Bad requests against the real processes: 400, and nothing begins.
	for _, body := range []string{`{"user":"u1","sku":"A","quantity":0}`, `{"user":"u1","sku":"A","quantity":1,"mode":"2pc"}`, `{`} {
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
	c := newCluster(t, mariaDB(t))
	ctx := t.Context()
	before, err := c.client.TakeSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	victims := []string{"inventory", "account", "order", "tc"}
	var placed atomic.Int64
	kills := make(chan string, len(victims))
	cfg := mixed(orders)
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

// A binary built without cgo has no PostgreSQL: given a PostgreSQL DSN it
// exits at start, saying so, and does nothing else.
func TestPostgresWithoutCgo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/inventory")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build without cgo: %v\n%s", err, out)
	}
	run := exec.Command(filepath.Join(dir, "inventory"), "-http", "127.0.0.1:0", "-grpc", "127.0.0.1:0", "-tc", "127.0.0.1:1",
		"-db-driver", "postgres")
	run.Env = append(os.Environ(), "GTX_DB_DSN=postgres://postgres@127.0.0.1:5432/gtx_oi_nocgo")
	out, err := run.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "built without cgo") {
		t.Fatalf("inventory without cgo, given postgres: %v\n%s\nwant exit 1 saying it was built without cgo", err, out)
	}
}
