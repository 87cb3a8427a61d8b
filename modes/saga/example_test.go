package saga_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/modes/saga"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tm"
)

// Every instance of the service registers the same compensations and
// installs the saga handler, so any of them can compensate a saga another
// one started. tmm and rmm are the instance's transaction and resource
// managers, connected to the coordinator.
func Example() {
	var (
		ctx context.Context
		tmm *tm.Manager
		rmm *rm.Manager
	)
	reg := saga.NewRegistry()
	_ = reg.Register("release-stock", func(ctx context.Context, c saga.Call) error {
		// Release the reservation named c.Key, if there is one: the action
		// may never have run.
		return nil
	})
	_ = reg.Register("refund", func(ctx context.Context, c saga.Call) error {
		return nil // refund the charge made with idempotency key c.Key, if any
	})
	rmm.Handle(tcv1.BranchType_SAGA, saga.NewHandler(reg))

	o, err := saga.New(saga.Config{TM: tmm, RM: rmm, Registry: reg, ResourceID: "orders", Timeout: time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	s := saga.Define("place-order").
		Then(saga.Step{
			Name:         "reserve",
			Compensation: "release-stock",
			Data:         []byte(`{"sku":"A","qty":2}`),
			Retry:        saga.RetryPolicy{MaxAttempts: 3, Initial: 100 * time.Millisecond, Multiplier: 2},
			Action: func(ctx context.Context, c saga.Call) error {
				return nil // reserve 2 of A under the key c.Key
			},
		}).
		Parallel(
			saga.Step{Name: "charge", Compensation: "refund", Action: func(ctx context.Context, c saga.Call) error { return nil }},
			saga.Step{Name: "email", Action: func(ctx context.Context, c saga.Call) error { return nil }},
		)
	err = o.Run(ctx, s)
	var failed *saga.StepError
	if errors.As(err, &failed) {
		fmt.Println("compensated after step", failed.Step, "failed:", failed.Err)
	}
}
