package zklock_test

import (
	"os"
	"testing"

	"github.com/gtx-io/gtx/lock"
	"github.com/gtx-io/gtx/lock/locktest"
)

// TestCheckerHelper is a worker process of TestMutualExclusionChecker.
func TestCheckerHelper(t *testing.T) {
	locktest.Worker(t, func(t *testing.T) lock.Backend { return newBackend(t, os.Getenv("GTX_ZK_ADDR")) })
}

// TestMutualExclusionChecker runs locktest.Check: four processes, a holder
// stopped past its session timeout, a holder killed, the server restarted.
func TestMutualExclusionChecker(t *testing.T) {
	s := startServer(t)
	locktest.Check{
		Helper:  "TestCheckerHelper",
		Env:     []string{"GTX_ZK_ADDR=" + s.addr()},
		TTL:     session,
		Restart: func() { s.stop(); s.start() },
	}.Run(t)
}
