package at

import (
	"strings"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// locksOnly implements LockQuerier and not StatusQuerier.
type locksOnly struct{ LockQuerier }

func TestSweepConfigValidate(t *testing.T) {
	client := tcv1.NewCoordinatorClient(nil)
	tests := []struct {
		name  string
		locks LockQuerier
		tune  func(*SweepConfig)
		want  string // part of the error; "" for none
	}{
		{name: "defaults", locks: client},
		{name: "off needs nothing", locks: locksOnly{client}, tune: func(c *SweepConfig) { c.Interval, c.Age, c.Batch = 0, 0, 0 }},
		{name: "negative interval", locks: client, tune: func(c *SweepConfig) { c.Interval = -time.Second }, want: "Sweep.Interval"},
		{name: "zero age", locks: client, tune: func(c *SweepConfig) { c.Age = 0 }, want: "Sweep.Age"},
		{name: "zero batch", locks: client, tune: func(c *SweepConfig) { c.Batch = 0 }, want: "Sweep.Batch"},
		{name: "negative unknown after", locks: client, tune: func(c *SweepConfig) { c.UnknownAfter = -1 }, want: "Sweep.UnknownAfter"},
		{name: "no status querier", locks: locksOnly{client}, want: "Sweep.Status"},
		{name: "explicit status querier", locks: locksOnly{client}, tune: func(c *SweepConfig) { c.Status = client }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tc.tune != nil {
				tc.tune(&cfg.Sweep)
			}
			err := cfg.Sweep.validate(tc.locks)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Sweep.Interval > 0 && cfg.Sweep.Status == nil {
					t.Fatal("Status not taken from Locks")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %s", err, tc.want)
			}
		})
	}
}
