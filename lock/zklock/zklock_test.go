package zklock_test

import (
	"errors"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gtx-io/gtx/lock"
	"github.com/gtx-io/gtx/lock/locktest"
	"github.com/gtx-io/gtx/lock/zklock"
)

const session = 2 * time.Second

func newBackend(t testing.TB, addr string) *zklock.Backend {
	t.Helper()
	be, err := zklock.New(connect(t, addr, session), zklock.Config{SessionTimeout: session})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	return be
}

func TestConformance(t *testing.T) {
	s := startServer(t)
	conns := map[lock.Backend]*zk.Conn{}
	locktest.Run(t, locktest.Suite{
		New: func(t *testing.T) lock.Backend {
			conn := connect(t, s.addr(), session)
			be, err := zklock.New(conn, zklock.Config{SessionTimeout: session})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = be.Close() })
			conns[be] = conn
			return be
		},
		TTL: session,
		// A process that dies leaves its session to expire.
		Crash: func(t *testing.T, be lock.Backend) {
			conns[be].Close()
		},
	})
}

func TestNewBadInput(t *testing.T) {
	if _, err := zklock.New(nil, zklock.Config{SessionTimeout: time.Second}); !errors.Is(err, lock.ErrInvalidConfig) {
		t.Errorf("New(nil) = %v, want ErrInvalidConfig", err)
	}
	conn, _, err := zk.Connect([]string{"127.0.0.1:1"}, time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, cfg := range []zklock.Config{{}, {SessionTimeout: time.Second, Root: "locks"}, {SessionTimeout: time.Second, Root: "/locks/"}} {
		if _, err := zklock.New(conn, cfg); !errors.Is(err, lock.ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}
