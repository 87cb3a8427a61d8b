package redisstore_test

import (
	"testing"

	"github.com/gtx-io/gtx/tc"
	redisstore "github.com/gtx-io/gtx/tc/store/redis"
	"github.com/gtx-io/gtx/tc/store/storetest"
)

func TestStoreConformance(t *testing.T) {
	storetest.RunStore(t, func(t *testing.T) tc.Store { return newStore(t, redisstore.Config{}) })
}

func TestStoreConformanceOneBucket(t *testing.T) {
	storetest.RunStore(t, func(t *testing.T) tc.Store { return newStore(t, redisstore.Config{Buckets: 1}) })
}
