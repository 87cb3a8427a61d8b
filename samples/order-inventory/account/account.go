// Package account is the sample's account service: balances per user, read
// over HTTP (GET /v1/accounts/{user}) and debited by the order service over
// gRPC (samplev1.Account). A debit is an AT branch in mode "at", an XA
// branch (rm/xa) in mode "xa", a TCC
// action in mode "tcc" (Try freezes the amount: balance down, frozen up;
// Confirm drops the frozen amount; Cancel gives it back), and in mode
// "saga" an idempotent local transaction with compensation, asked for over
// NATS JetStream (StepDebit, StepRefund) or over gRPC (Debit and Refund
// with a step key).
package account

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	kerrors "github.com/go-kratos/kratos/v2/errors"
	khttp "github.com/go-kratos/kratos/v2/transport/http"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/modes/saga/statemachine"
	"github.com/gtx-io/gtx/modes/tcc"
	"github.com/gtx-io/gtx/samples/order-inventory/api/samplev1"
	"github.com/gtx-io/gtx/samples/order-inventory/service"
)

// Seed data: users u1 to u100 with SeedBalance cents each.
const (
	SeedUsers   = 100
	SeedBalance = 100000000
)

// Reasons of the errors Debit answers.
const (
	ReasonUnknownUser  = "UNKNOWN_USER"
	ReasonInsufficient = "INSUFFICIENT_FUNDS"
	ReasonFailed       = "FAILED_AS_ASKED"
	ReasonBadRequest   = "BAD_REQUEST"
	ReasonCompensate   = "STEP_COMPENSATED"
	ReasonTryFailed    = "TRY_FAILED"
)

// FreezeAction is the TCC action's name: the resource ID its branches have.
const FreezeAction = "account.freeze"

// Account is the JSON of GET /v1/accounts/{user}. Balance is what the user
// can spend; Frozen is held by TCC Trys whose transactions have not ended.
type Account struct {
	User    string `json:"user"`
	Balance int64  `json:"balance"` // cents the user can spend
	Frozen  int64  `json:"frozen"`  // cents held by unfinished TCC Trys
}

// Saga step methods this service serves over NATS JetStream
// (service.ServeSteps): subjects <prefix>.cmd.account.debit and
// <prefix>.cmd.account.refund.
const (
	// StepDebit takes money: input Charge, result {}.
	StepDebit = "account.debit"
	// StepRefund gives back what the debit step it names took.
	StepRefund = "account.refund"
)

// Charge is the input of StepDebit.
type Charge struct {
	User   string `json:"user"`
	Amount int64  `json:"amount"` // cents, at least 1
	Fail   bool   `json:"fail"`   // fail after taking the money
}

// Freeze is the TCC action's request.
type Freeze struct {
	User   string `json:"user"`   // whose money
	Amount int64  `json:"amount"` // cents
}

// Service is a running account service.
type Service struct {
	samplev1.UnimplementedAccountServer
	*service.Base
	freeze *tcc.Action[Freeze]
}

// New opens the service's database (creating and seeding its tables),
// registers the TCC action, its routes, and starts serving.
func New(ctx context.Context, cfg service.Config) (*Service, error) {
	b, err := service.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Service{Base: b}
	if err := s.setup(ctx); err != nil {
		b.Close()
		return nil, err
	}
	err = b.ServeParticipant(ctx, s.steps(), func() {
		b.HTTP.Route("/").GET("/v1/accounts/{user}", s.getAccount)
		samplev1.RegisterAccountServer(b.GRPC, s)
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) setup(ctx context.Context) error {
	err := s.Exec(ctx, `CREATE TABLE IF NOT EXISTS accounts (
	user_id VARCHAR(64) NOT NULL PRIMARY KEY,
	balance BIGINT NOT NULL,
	frozen BIGINT NOT NULL
)`, service.SagaStepsDDL)
	if err != nil {
		return err
	}
	err = s.Seed(ctx, "accounts", func(tx *sql.Tx) error {
		for i := 1; i <= SeedUsers; i++ {
			if _, err := tx.ExecContext(ctx, s.Rebind("INSERT INTO accounts (user_id, balance, frozen) VALUES (?, ?, 0)"), fmt.Sprintf("u%d", i), SeedBalance); err != nil {
				return fmt.Errorf("account: seed u%d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fcfg := tcc.DefaultFenceConfig()
	fcfg.Dialect = map[string]tcc.Dialect{service.MySQL: tcc.MySQL, service.Postgres: tcc.Postgres, service.SQLite: tcc.SQLite}[s.Cfg.Driver]
	fcfg.Logger = s.Log
	fence, err := tcc.OpenFence(ctx, s.Plain, fcfg)
	if err != nil {
		return fmt.Errorf("account: %w", err)
	}
	s.OnClose(fence.Close)
	p := tcc.NewParticipant(s.RM, s.Log)
	// Every phase writes the accounts row, which AT branches (mode "at")
	// write too: each checks the row's global lock before it commits.
	guard := func(ctx context.Context, tx tcc.Tx, bc *tcc.BranchContext[Freeze], q string, args ...any) error {
		if _, err := tx.SQL.ExecContext(ctx, s.Rebind(q), args...); err != nil {
			return fmt.Errorf("account: %s %s: %w", bc.Action, bc.Request.User, err)
		}
		return s.GuardRow(ctx, bc.XID, "accounts", bc.Request.User)
	}
	s.freeze, err = tcc.Register(p, FreezeAction, fence, tcc.Phases[Freeze]{
		Try: func(ctx context.Context, tx tcc.Tx, bc *tcc.BranchContext[Freeze]) error {
			if err := s.debit(ctx, tx.SQL, bc.Request.User, bc.Request.Amount, "frozen = frozen + ?"); err != nil {
				return err
			}
			return s.GuardRow(ctx, bc.XID, "accounts", bc.Request.User)
		},
		Confirm: func(ctx context.Context, tx tcc.Tx, bc *tcc.BranchContext[Freeze]) error {
			return guard(ctx, tx, bc, "UPDATE accounts SET frozen = frozen - ? WHERE user_id = ?", bc.Request.Amount, bc.Request.User)
		},
		Cancel: func(ctx context.Context, tx tcc.Tx, bc *tcc.BranchContext[Freeze]) error {
			return guard(ctx, tx, bc, "UPDATE accounts SET frozen = frozen - ?, balance = balance + ? WHERE user_id = ?",
				bc.Request.Amount, bc.Request.Amount, bc.Request.User)
		},
	})
	if err != nil {
		return fmt.Errorf("account: %w", err)
	}
	return nil
}

func (s *Service) getAccount(c khttp.Context) error {
	user := c.Vars().Get("user")
	a := Account{User: user}
	err := s.Plain.QueryRowContext(c, s.Rebind("SELECT balance, frozen FROM accounts WHERE user_id = ?"), user).Scan(&a.Balance, &a.Frozen)
	if errors.Is(err, sql.ErrNoRows) {
		return service.Fail(c, http.StatusNotFound, fmt.Sprintf("account: no user %q", service.Clip(user)))
	}
	if err != nil {
		return service.Fail(c, http.StatusInternalServerError, "account: read the balance: "+err.Error())
	}
	return c.JSON(http.StatusOK, a)
}

// Debit implements samplev1.AccountServer.
func (s *Service) Debit(ctx context.Context, r *samplev1.DebitRequest) (*samplev1.DebitResponse, error) {
	in := Charge{User: r.GetUser(), Amount: r.GetAmount(), Fail: r.GetFail()}
	if err := in.validate(); err != nil {
		return nil, err
	}
	var err error
	switch r.GetMode() {
	case "tcc":
		_, err = s.freeze.Try(ctx, Freeze{User: in.User, Amount: in.Amount})
		if err != nil && kerrors.FromError(err).GetReason() == "" {
			err = kerrors.Conflict(ReasonTryFailed, err.Error())
		}
	case "saga":
		if err := s.charge(ctx, r.GetKey(), in); err != nil {
			return nil, err
		}
		return &samplev1.DebitResponse{}, nil
	case "xa":
		err = s.debitXA(ctx, in.User, in.Amount)
	default:
		err = s.debitAT(ctx, in.User, in.Amount)
	}
	if err != nil {
		return nil, err
	}
	if in.Fail {
		return nil, failed(in)
	}
	return &samplev1.DebitResponse{}, nil
}

func (in Charge) validate() error {
	if in.User == "" || in.Amount <= 0 {
		return kerrors.BadRequest(ReasonBadRequest, "account: debit needs a user and a positive amount")
	}
	return nil
}

func failed(in Charge) error {
	return kerrors.Conflict(ReasonFailed, fmt.Sprintf("account: took %d cents from %s, then failed as the order asked", in.Amount, in.User))
}

// charge is the saga step that debits, once for key, in a local
// transaction that commits at once; it is refused after the step's
// compensation, and answers ReasonFailed after its work when in.Fail.
func (s *Service) charge(ctx context.Context, key string, in Charge) error {
	if err := in.validate(); err != nil {
		return err
	}
	if key == "" {
		return kerrors.BadRequest(ReasonBadRequest, "account: a saga debit needs its step key")
	}
	err := s.SagaDo(ctx, key, in.User, in.Amount, func(tx *sql.Tx) error {
		return s.debit(ctx, tx, in.User, in.Amount, "")
	})
	if errors.Is(err, service.ErrStepCompensated) {
		return kerrors.Conflict(ReasonCompensate, err.Error())
	}
	if err != nil {
		return service.RetryableStep(err)
	}
	if in.Fail {
		return failed(in)
	}
	return nil
}

// refund is the compensation of the charge step key: the money it took
// goes back, once.
func (s *Service) refund(ctx context.Context, key string) error {
	if key == "" {
		return kerrors.BadRequest(ReasonBadRequest, "account: refund needs the step key")
	}
	return s.SagaUndo(ctx, key, func(tx *sql.Tx, user string, amount int64) error {
		if _, err := tx.ExecContext(ctx, s.Rebind("UPDATE accounts SET balance = balance + ? WHERE user_id = ?"), amount, user); err != nil {
			return fmt.Errorf("account: refund %d cents to %s: %w", amount, user, err)
		}
		return nil
	})
}

// steps are the saga steps this service serves over NATS.
func (s *Service) steps() map[string]service.StepFunc {
	return map[string]service.StepFunc{
		StepDebit: func(ctx context.Context, cmd *statemachine.Command) (any, error) {
			var in Charge
			if err := json.Unmarshal(cmd.Input, &in); err != nil {
				return nil, kerrors.BadRequest(ReasonBadRequest, "account: malformed debit command: "+err.Error())
			}
			return struct{}{}, s.charge(ctx, cmd.Key, in)
		},
		StepRefund: func(ctx context.Context, cmd *statemachine.Command) (any, error) {
			return struct{}{}, s.refund(ctx, cmd.ForwardKey)
		},
	}
}

// debitAT debits in a local transaction of the AT database: with the XID in
// ctx it is a branch of the caller's global transaction.
func (s *Service) debitAT(ctx context.Context, user string, amount int64) error {
	tx, err := s.AT.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("account: begin: %w", err)
	}
	if err := s.debit(ctx, tx, user, amount, ""); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("account: commit the debit: %w", err)
	}
	return nil
}

// debitXA debits in an XA branch of the caller's global transaction,
// checking the row's AT global lock before the branch prepares, as
// inventory's takeXA does.
func (s *Service) debitXA(ctx context.Context, user string, amount int64) error {
	tx, err := s.XATx(ctx)
	if err != nil {
		return kerrors.BadRequest(ReasonBadRequest, err.Error())
	}
	xid, _ := gtx.XIDFromContext(ctx)
	if err := s.debit(ctx, tx, user, amount, ""); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := s.GuardRow(ctx, xid, "accounts", user); err != nil {
		_ = tx.Rollback()
		return kerrors.Conflict(service.ReasonRowLocked, err.Error())
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("account: prepare the debit: %w", err)
	}
	return nil
}

// debit takes amount from user's balance, setting also the extra
// assignment (which takes amount as its argument) when it is not empty.
func (s *Service) debit(ctx context.Context, tx *sql.Tx, user string, amount int64, extra string) error {
	q, args := "UPDATE accounts SET balance = balance - ?", []any{amount}
	if extra != "" {
		q += ", " + extra
		args = append(args, amount)
	}
	q += " WHERE user_id = ? AND balance >= ?"
	args = append(args, user, amount)
	res, err := tx.ExecContext(ctx, s.Rebind(q), args...)
	if err != nil {
		return fmt.Errorf("account: debit %s: %w", user, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		var one int
		if err := tx.QueryRowContext(ctx, s.Rebind("SELECT 1 FROM accounts WHERE user_id = ?"), user).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return kerrors.NotFound(ReasonUnknownUser, fmt.Sprintf("account: no user %q", service.Clip(user)))
		}
		return kerrors.Conflict(ReasonInsufficient, fmt.Sprintf("account: %s has less than %d cents", user, amount))
	}
	return nil
}

// CheckUser implements samplev1.AccountServer: NotFound (ReasonUnknownUser)
// when user has no account.
func (s *Service) CheckUser(ctx context.Context, r *samplev1.CheckUserRequest) (*samplev1.CheckUserResponse, error) {
	var one int
	err := s.Plain.QueryRowContext(ctx, s.Rebind("SELECT 1 FROM accounts WHERE user_id = ?"), r.GetUser()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, kerrors.NotFound(ReasonUnknownUser, fmt.Sprintf("account: no user %q", service.Clip(r.GetUser())))
	}
	if err != nil {
		return nil, fmt.Errorf("account: look up user: %w", err)
	}
	return &samplev1.CheckUserResponse{}, nil
}

// Refund implements samplev1.AccountServer: the compensation of a saga
// Debit.
func (s *Service) Refund(ctx context.Context, r *samplev1.RefundRequest) (*samplev1.RefundResponse, error) {
	if err := s.refund(ctx, r.GetKey()); err != nil {
		return nil, err
	}
	return &samplev1.RefundResponse{}, nil
}
