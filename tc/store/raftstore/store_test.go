package raftstore

import (
	"testing"

	"github.com/gtx-io/gtx/tc"
	"github.com/gtx-io/gtx/tc/store/storetest"
)

func TestConformanceSingleNode(t *testing.T) {
	storetest.RunStore(t, func(t *testing.T) tc.Store { return newSingle(t) })
	storetest.RunLockStore(t, func(t *testing.T) tc.LockStore { return newSingle(t) })
	storetest.RunCoordinatorInput(t, func(t *testing.T) (tc.Store, tc.LockStore) {
		s := newSingle(t)
		return s, s
	})
}
