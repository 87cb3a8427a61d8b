package statemachine_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	sm "github.com/gtx-io/gtx/modes/saga/statemachine"
)

const orderYAML = `
Name: order
Comment: reserve stock, charge, ship big orders
StartState: Reserve
States:
  Reserve:
    Type: ServiceTask
    ServiceName: inventory
    ServiceMethod: reserve
    CompensateState: Release
    Input: {sku: $.sku, qty: $.qty}
    Output: {reservation: $.id}
    Next: Charge
  Release:
    Type: ServiceTask
    ServiceName: inventory
    ServiceMethod: release
    IsForCompensation: true
    Input: {reservation: $.reservation}
  Charge:
    Type: ServiceTask
    ServiceName: payment
    ServiceMethod: charge
    CompensateState: Refund
    Retry:
      - Exceptions: [Busy]
        IntervalSeconds: 0.001
        MaxAttempts: 2
        BackoffRate: 2
    Catch:
      - Exceptions: [Declined]
        Next: Undo
    Next: Check
  Refund:
    Type: ServiceTask
    ServiceName: payment
    ServiceMethod: refund
    IsForCompensation: true
  Check:
    Type: Choice
    Choices:
      - Expression: $.qty > 10 && $.sku != "digital"
        Next: Ship
    Default: Done
  Ship:
    Type: SubStateMachine
    StateMachineName: shipping
    Input: {order: $.sku, ship: $.ship}
    Output: {tracking: $.tracking}
    Next: Done
  Undo:
    Type: CompensationTrigger
    Next: Declined
  Declined:
    Type: Fail
    ErrorCode: Declined
    Message: payment declined
  Done:
    Type: Succeed
`

const shippingJSON = `{
  "Name": "shipping",
  "StartState": "Book",
  "States": {
    "Book": {"Type": "ServiceTask", "ServiceName": "shipping", "ServiceMethod": "book", "CompensateState": "Cancel",
             "Output": {"tracking": "$.tracking"}, "Next": "Deliver"},
    "Cancel": {"Type": "ServiceTask", "ServiceName": "shipping", "ServiceMethod": "cancel", "IsForCompensation": true},
    "Deliver": {"Type": "ServiceTask", "ServiceName": "shipping", "ServiceMethod": "deliver", "Next": "Done"},
    "Done": {"Type": "Succeed"}
  }
}`

// services registers inventory, payment and shipping, driven by the
// instance's input: "pay" is ok, busy2 (Busy twice) or declined; "ship" is
// ok or lost; "refundFails" makes refund fail that many times.
func services(t testing.TB, e *sm.Engine, j *journal) {
	t.Helper()
	var mu sync.Mutex
	refundFails := map[string]int{}
	input := func(tk sm.Task) map[string]any {
		var m map[string]any
		_ = json.Unmarshal(tk.Input, &m)
		return m
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.RegisterService("inventory", recorder(j, func(tk sm.Task) (json.RawMessage, error) {
		if tk.Method == "reserve" {
			return json.Marshal(map[string]any{"id": "R-" + tk.Key})
		}
		if got := input(tk)["reservation"]; got != "R-"+tk.ForwardKey {
			return nil, sm.Errorf("BadInput", "release got reservation %v, want R-%s", got, tk.ForwardKey)
		}
		return nil, nil
	})))
	must(e.RegisterService("payment", recorder(j, func(tk sm.Task) (json.RawMessage, error) {
		in := input(tk)
		switch {
		case tk.Method == "refund":
			mu.Lock()
			defer mu.Unlock()
			n, _ := in["refundFails"].(float64)
			if refundFails[tk.Key] < int(n) {
				refundFails[tk.Key]++
				return nil, errors.New("refund: bank unavailable")
			}
			return nil, nil
		case in["pay"] == "busy2" && tk.Attempt <= 2:
			return nil, sm.Errorf("Busy", "try again")
		case in["pay"] == "declined":
			return nil, sm.Errorf("Declined", "insufficient funds")
		}
		return json.RawMessage(`{"charged":true}`), nil
	})))
	must(e.RegisterService("shipping", recorder(j, func(tk sm.Task) (json.RawMessage, error) {
		if tk.Method == "book" {
			return json.RawMessage(`{"tracking":"T-1"}`), nil
		}
		if tk.Method == "deliver" && input(tk)["ship"] == "lost" {
			return nil, sm.Errorf("Lost", "parcel lost")
		}
		return nil, nil
	})))
}

func TestEngineScenarios(t *testing.T) {
	order, shipping := mustParse(t, orderYAML), mustParse(t, shippingJSON)
	tests := []struct {
		name      string
		input     map[string]any
		wantCalls []string
		wantCode  string // empty: succeeded
		check     func(t *testing.T, inst *sm.Instance)
	}{
		{
			name:      "small order succeeds, output mapped",
			input:     map[string]any{"sku": "book", "qty": 1, "pay": "ok"},
			wantCalls: []string{"reserve", "charge"},
			check: func(t *testing.T, inst *sm.Instance) {
				if r, _ := inst.Context["reservation"].(string); !strings.HasPrefix(r, "R-"+inst.XID+"/") {
					t.Fatalf("reservation %q not mapped from the result", r)
				}
			},
		},
		{
			name:      "retry by rule with backoff",
			input:     map[string]any{"sku": "book", "qty": 1, "pay": "busy2"},
			wantCalls: []string{"reserve", "charge", "charge", "charge"},
			check: func(t *testing.T, inst *sm.Instance) {
				if x := inst.Executions[1]; x.State != "Charge" || x.Attempts != 3 {
					t.Fatalf("charge execution %+v, want 3 attempts", x)
				}
			},
		},
		{
			name:      "catch then CompensationTrigger compensates in reverse order, then Fail",
			input:     map[string]any{"sku": "book", "qty": 1, "pay": "declined"},
			wantCalls: []string{"reserve", "charge", "refund", "release"},
			wantCode:  "Declined",
			check: func(t *testing.T, inst *sm.Instance) {
				if e, _ := inst.Context["Error"].(map[string]any); e["code"] != "Declined" {
					t.Fatalf("context Error %v, want the caught failure", inst.Context["Error"])
				}
			},
		},
		{
			name:      "a failing compensation is retried until it succeeds",
			input:     map[string]any{"sku": "book", "qty": 1, "pay": "declined", "refundFails": 3},
			wantCalls: []string{"reserve", "charge", "refund", "refund", "refund", "refund", "release"},
			wantCode:  "Declined",
		},
		{
			name:      "choice runs the sub state machine",
			input:     map[string]any{"sku": "table", "qty": 20, "pay": "ok", "ship": "ok"},
			wantCalls: []string{"reserve", "charge", "book", "deliver"},
			check: func(t *testing.T, inst *sm.Instance) {
				if inst.Context["tracking"] != "T-1" {
					t.Fatalf("tracking %v, want T-1 from the child", inst.Context["tracking"])
				}
			},
		},
		{
			name:      "an uncaught failure in the child compensates child and parent",
			input:     map[string]any{"sku": "table", "qty": 20, "pay": "ok", "ship": "lost"},
			wantCalls: []string{"reserve", "charge", "book", "deliver", "cancel", "refund", "release"},
			wantCode:  sm.CodeSubStateMachineFailed,
		},
	}
	for kind, open := range databases(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			db := open(t)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					j := &journal{}
					e := newEngine(t, db, nil)
					services(t, e, j)
					for _, d := range []*sm.Definition{order, shipping} {
						if err := e.Register(d); err != nil {
							t.Fatal(err)
						}
					}
					ctx := ctxTimeout(t)
					if err := e.Start(ctx); err != nil {
						t.Fatal(err)
					}
					inst, err := e.Run(ctx, "order", tt.input)
					var fe *sm.FailedError
					switch {
					case tt.wantCode == "" && err != nil:
						t.Fatalf("Run: %v (%s)", err, describe(inst))
					case tt.wantCode != "" && (!errors.As(err, &fe) || fe.Code != tt.wantCode):
						t.Fatalf("Run: %v (%s), want failure %s", err, describe(inst), tt.wantCode)
					}
					if got := j.list(); !slices.Equal(got, tt.wantCalls) {
						t.Fatalf("calls %v, want %v", got, tt.wantCalls)
					}
					if tt.check != nil {
						tt.check(t, inst)
					}
					if err := e.Close(); err != nil {
						t.Fatal(err)
					}
				})
			}
		})
	}
}
