package etcdlock_test

import (
	"os"
	"testing"
	"time"

	"github.com/gtx-io/gtx/lock"
	"github.com/gtx-io/gtx/lock/etcdlock"
	"github.com/gtx-io/gtx/lock/locktest"
)

// TestCheckerHelper is a worker process of TestMutualExclusionChecker.
func TestCheckerHelper(t *testing.T) {
	locktest.Worker(t, func(t *testing.T) lock.Backend {
		be, err := etcdlock.New(connect(t, os.Getenv("GTX_ETCD_ADDR")), etcdlock.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = be.Close() })
		return be
	})
}

// TestMutualExclusionChecker runs locktest.Check: four processes, a holder
// stopped past its lease, a holder killed, the server restarted.
func TestMutualExclusionChecker(t *testing.T) {
	s := startServer(t)
	locktest.Check{
		Helper:  "TestCheckerHelper",
		Env:     []string{"GTX_ETCD_ADDR=" + s.addr()},
		TTL:     time.Second,
		Restart: func() { s.stop(); s.start() },
	}.Run(t)
}
