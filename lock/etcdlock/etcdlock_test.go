package etcdlock_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gtx-io/gtx/lock"
	"github.com/gtx-io/gtx/lock/etcdlock"
	"github.com/gtx-io/gtx/lock/locktest"
)

func TestConformance(t *testing.T) {
	s := startServer(t)
	locktest.Run(t, locktest.Suite{
		New: func(t *testing.T) lock.Backend {
			be, err := etcdlock.New(connect(t, s.addr()), etcdlock.Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = be.Close() })
			return be
		},
		TTL: time.Second,
	})
}

func TestNewBadInput(t *testing.T) {
	if _, err := etcdlock.New(nil, etcdlock.Config{}); !errors.Is(err, lock.ErrInvalidConfig) {
		t.Errorf("New(nil) = %v, want ErrInvalidConfig", err)
	}
}
