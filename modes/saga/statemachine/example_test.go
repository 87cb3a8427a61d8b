package statemachine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	sm "github.com/gtx-io/gtx/modes/saga/statemachine"
)

const exampleDefinition = `
Name: transfer
StartState: Debit
States:
  Debit:
    Type: ServiceTask
    ServiceName: bank
    ServiceMethod: debit
    CompensateState: Refund
    Input: {account: $.from, amount: $.amount}
    Next: Credit
  Refund:
    Type: ServiceTask
    ServiceName: bank
    ServiceMethod: refund
    IsForCompensation: true
    Input: {account: $.from, amount: $.amount}
  Credit:
    Type: ServiceTask
    ServiceName: bank
    ServiceMethod: credit
    Input: {account: $.to, amount: $.amount}
    Catch: [{Exceptions: [AccountClosed], Next: Undo}]
    Next: Done
  Undo: {Type: CompensationTrigger, Next: Failed}
  Failed: {Type: Fail, ErrorCode: AccountClosed, Message: the receiving account is closed}
  Done: {Type: Succeed}
`

// A transfer whose credit fails: the debit is compensated, and the
// instance ends in the Fail state.
func Example() {
	dir, err := os.MkdirTemp("", "statemachine-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := gorm.Open(sqlite.Open(filepath.Join(dir, "saga.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}

	def, err := sm.Parse([]byte(exampleDefinition))
	if err != nil {
		log.Fatal(err)
	}
	cfg := sm.DefaultConfig()
	cfg.DB = db
	e, err := sm.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	_ = e.Register(def)
	_ = e.RegisterService("bank", sm.ServiceFunc(func(ctx context.Context, t sm.Task) (json.RawMessage, error) {
		var in struct {
			Account string
			Amount  int
		}
		_ = json.Unmarshal(t.Input, &in)
		fmt.Println(t.Method, in.Account, in.Amount)
		if t.Method == "credit" && in.Account == "closed" {
			return nil, sm.Errorf("AccountClosed", "account %s is closed", in.Account)
		}
		return nil, nil
	}))
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		log.Fatal(err)
	}
	_, err = e.Run(ctx, "transfer", map[string]any{"from": "alice", "to": "closed", "amount": 30})
	var failed *sm.FailedError
	if errors.As(err, &failed) {
		fmt.Println("failed:", failed.Code)
	}
	// Output:
	// debit alice 30
	// credit closed 30
	// refund alice 30
	// failed: AccountClosed
}
