package mysqllock_test

import (
	"testing"

	"github.com/gtx-io/gtx/lock"
	"github.com/gtx-io/gtx/lock/locktest"
)

func TestConformance(t *testing.T) {
	dsn := newDB(t)
	locktest.Run(t, locktest.Suite{
		New: func(t *testing.T) lock.Backend {
			_, b := open(t, dsn)
			return b
		},
	})
}
