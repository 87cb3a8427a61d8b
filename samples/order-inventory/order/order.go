// Package order is the sample's order service. POST /v1/orders places an
// order in one global transaction over three participants: the inventory
// service (stock, over gRPC), the account service (money, over gRPC) and the
// order service's own orders table. In modes "at", "tcc" and "xa" (XA
// branches on MySQL, MariaDB or PostgreSQL; refused on SQLite) the handler runs
// under the kratosgtx.GlobalTx annotation, so the transaction begins before
// the handler and commits or rolls back with its result; in mode "saga" the
// handler runs a code saga (modes/saga) whose stock and money steps, and
// their compensations, travel over NATS JetStream (service.StepClient), and
// whose steps are compensated in reverse when one fails.
package order

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	kerrors "github.com/go-kratos/kratos/v2/errors"
	"github.com/go-kratos/kratos/v2/middleware"
	khttp "github.com/go-kratos/kratos/v2/transport/http"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/interceptors/kratosgtx"
	"github.com/gtx-io/gtx/modes/saga"
	"github.com/gtx-io/gtx/samples/order-inventory/account"
	"github.com/gtx-io/gtx/samples/order-inventory/api/samplev1"
	"github.com/gtx-io/gtx/samples/order-inventory/inventory"
	"github.com/gtx-io/gtx/samples/order-inventory/service"
	"github.com/gtx-io/gtx/tm"
)

// Operations of the order service's HTTP routes. OpPlace carries the
// GlobalTx annotation.
const (
	OpPlace     = "/order.v1.Order/Place"
	OpPlaceSaga = "/order.v1.Order/PlaceSaga"
	OpList      = "/order.v1.Order/List"
	OpGet       = "/order.v1.Order/Get"
)

// Modes and failure points a request may name.
var (
	Modes    = []string{"at", "tcc", "saga", "xa"}
	Failures = []string{"", "inventory", "account", "order"}
)

// MaxDelay bounds PlaceRequest.DelayMS.
const MaxDelay = 10 * time.Minute

// SagaResource is the resource ID of the saga branches; every order
// instance serves it and can run the compensations.
const SagaResource = "order-saga"

// Config configures the order service.
type Config struct {
	service.Config
	// Inventory and Account are the gRPC addresses of the other services.
	Inventory string
	Account   string // see Inventory
}

// PlaceRequest is the JSON body of POST /v1/orders.
type PlaceRequest struct {
	User     string `json:"user"`     // a seeded user, u1 to u100
	SKU      string `json:"sku"`      // a seeded SKU, A to J
	Quantity int64  `json:"quantity"` // units, at least 1
	Mode     string `json:"mode"`     // at (default), tcc, saga or xa
	Fail     string `json:"fail"`     // "", inventory, account or order: that participant fails after its work
	DelayMS  int64  `json:"delay_ms"` // wait after every branch succeeded, before the commit
}

// PlaceResult is the JSON answer of POST /v1/orders: 200 with status
// "committed", 409 with status "rolled_back" and the error, 500 with status
// "unknown" when the outcome could not be learned.
type PlaceResult struct {
	OrderID string `json:"order_id,omitempty"` // set when committed
	XID     string `json:"xid"`                // the global transaction
	Status  string `json:"status"`             // committed, rolled_back or unknown
	Error   string `json:"error,omitempty"`    // why it did not commit
}

// Order is one committed order.
type Order struct {
	OrderID  string `json:"order_id"`
	XID      string `json:"xid"` // the global transaction that placed it
	User     string `json:"user"`
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"` // units
	Amount   int64  `json:"amount"`   // cents: quantity times the unit price
	Mode     string `json:"mode"`     // at, tcc, saga or xa
}

// Orders is the JSON of GET /v1/orders?user=.
type Orders struct {
	Orders []Order `json:"orders"` // oldest first
}

// Service is a running order service.
type Service struct {
	*service.Base
	inv samplev1.InventoryClient
	acc samplev1.AccountClient
	// skus and users hold the SKUs and users inventory and account said
	// exist (rows are never deleted), so each is checked once.
	skus, users sync.Map
	steps       *service.StepClient
	saga        *saga.Orchestrator
}

// New opens the service's database (creating its table), connects to the
// inventory and account services, registers its routes and the saga
// compensations, and starts serving.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Inventory == "" || cfg.Account == "" {
		return nil, fmt.Errorf("%w: order needs the inventory and account gRPC addresses", service.ErrInvalidConfig)
	}
	annotate := func(b *service.Base) (middleware.Middleware, error) {
		g, err := interceptors.NewGlobalTx(b.TM,
			interceptors.Operations(OpPlace),
			interceptors.Name("place-order"),
			interceptors.Timeout(cfg.TxTimeout),
			interceptors.Logger(b.Log))
		if err != nil {
			return nil, err
		}
		return kratosgtx.GlobalTx(g, kratosgtx.WithLogger(b.Log)), nil
	}
	b, err := service.Open(ctx, cfg.Config, annotate)
	if err != nil {
		return nil, err
	}
	s := &Service{Base: b}
	if err := s.setup(ctx, cfg); err != nil {
		b.Close()
		return nil, err
	}
	r := b.HTTP.Route("/")
	r.POST("/v1/orders", s.place)
	r.GET("/v1/orders", s.list)
	r.GET("/v1/orders/{id}", s.get)
	if err := b.Start(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return s, nil
}

func (s *Service) setup(ctx context.Context, cfg Config) error {
	err := s.Exec(ctx, `CREATE TABLE IF NOT EXISTS orders (
	order_id VARCHAR(64) NOT NULL PRIMARY KEY,
	xid VARCHAR(128) NOT NULL,
	user_id VARCHAR(64) NOT NULL,
	sku VARCHAR(32) NOT NULL,
	quantity BIGINT NOT NULL,
	amount BIGINT NOT NULL,
	mode VARCHAR(8) NOT NULL,
	created_ms BIGINT NOT NULL
)`, "CREATE INDEX IF NOT EXISTS orders_user ON orders (user_id)")
	if err != nil {
		return err
	}
	ic, err := s.Dial(ctx, cfg.Inventory)
	if err != nil {
		return err
	}
	ac, err := s.Dial(ctx, cfg.Account)
	if err != nil {
		return err
	}
	s.inv, s.acc = samplev1.NewInventoryClient(ic), samplev1.NewAccountClient(ac)
	if s.steps, err = s.StepClient(ctx); err != nil {
		return err
	}

	reg := saga.NewRegistry()
	for name, c := range map[string]saga.Compensation{
		"release-stock": func(ctx context.Context, c saga.Call) error {
			return s.steps.Undo(ctx, inventory.StepRelease, c)
		},
		"refund": func(ctx context.Context, c saga.Call) error {
			return s.steps.Undo(ctx, account.StepRefund, c)
		},
		"drop-order": func(ctx context.Context, c saga.Call) error {
			_, err := s.Plain.ExecContext(ctx, s.Rebind("DELETE FROM orders WHERE order_id = ?"), string(c.Data))
			return err
		},
	} {
		if err := reg.Register(name, c); err != nil {
			return err
		}
	}
	s.RM.Handle(tcv1.BranchType_SAGA, saga.NewHandler(reg))
	s.saga, err = saga.New(saga.Config{TM: s.TM, RM: s.RM, Registry: reg, ResourceID: SagaResource, Timeout: cfg.TxTimeout, Logger: s.Log})
	if err != nil {
		return fmt.Errorf("order: %w", err)
	}
	return nil
}

// MaxQuantity bounds PlaceRequest.Quantity, so that no amount overflows.
const MaxQuantity = 1_000_000

// MaxNameLen bounds PlaceRequest.User and SKU, in bytes.
const MaxNameLen = 64

// MaxBody bounds the body of POST /v1/orders; a larger one is answered 413.
const MaxBody = 1 << 20

// Validate sets an empty Mode to "at" and reports what is wrong with r, or
// nil.
func (r *PlaceRequest) Validate() error {
	if r.Mode == "" {
		r.Mode = "at"
	}
	switch {
	case r.User == "":
		return errors.New("order: user is empty")
	case r.SKU == "":
		return errors.New("order: sku is empty")
	case len(r.User) > MaxNameLen || len(r.SKU) > MaxNameLen:
		return fmt.Errorf("order: user and sku must be at most %d bytes, got %d and %d", MaxNameLen, len(r.User), len(r.SKU))
	case r.Quantity <= 0 || r.Quantity > MaxQuantity:
		return fmt.Errorf("order: quantity must be between 1 and %d, got %d", MaxQuantity, r.Quantity)
	case !slices.Contains(Modes, r.Mode):
		return fmt.Errorf("order: mode %q is not one of %s", service.Clip(r.Mode), strings.Join(Modes, ", "))
	case !slices.Contains(Failures, r.Fail):
		return fmt.Errorf("order: fail %q is not one of \"\", inventory, account, order", service.Clip(r.Fail))
	case r.DelayMS < 0 || r.DelayMS > MaxDelay.Milliseconds():
		return fmt.Errorf("order: delay_ms must be between 0 and %d, got %d", MaxDelay.Milliseconds(), r.DelayMS)
	}
	return nil
}

// errFailedAsAsked is the order participant's own injected failure.
var errFailedAsAsked = kerrors.Conflict("FAILED_AS_ASKED", "order: recorded the order, then failed as the request asked")

func (s *Service) place(c khttp.Context) error {
	var in PlaceRequest
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, MaxBody+1))
	if err != nil {
		return service.Fail(c, http.StatusBadRequest, "order: read the body: "+err.Error())
	}
	if len(body) > MaxBody {
		return service.Fail(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("order: the body is larger than %d bytes", MaxBody))
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return service.Fail(c, http.StatusBadRequest, "order: malformed JSON: "+err.Error())
	}
	if err := in.Validate(); err != nil {
		return service.Fail(c, http.StatusBadRequest, err.Error())
	}
	if in.Mode == "xa" && s.XA == nil {
		return service.Fail(c, http.StatusBadRequest, "order: "+service.ErrNoXA.Error())
	}
	if err := s.known(c, &in); err != nil {
		if kerrors.IsNotFound(err) {
			return service.Fail(c, http.StatusNotFound, kerrors.FromError(err).Message)
		}
		return service.Fail(c, http.StatusServiceUnavailable, "order: check the sku and the user: "+err.Error())
	}
	res := &PlaceResult{OrderID: newID()}
	op, run := OpPlace, s.placeTx
	if in.Mode == "saga" {
		op, run = OpPlaceSaga, s.placeSaga
	}
	khttp.SetOperation(c, op)
	h := c.Middleware(func(ctx context.Context, _ any) (any, error) {
		return nil, run(service.RecordBegun(ctx, &res.XID), &in, res)
	})
	_, err = h(c, &in)
	if err == nil {
		res.Status = "committed"
		return c.JSON(http.StatusOK, res)
	}
	res.OrderID, res.Error = "", err.Error()
	if ke := kerrors.FromError(err); ke != nil && ke.Message != "" {
		res.Error = ke.Message
	}
	// res.XID is set once a transaction began: by the annotation's (modes
	// at, tcc and xa) or by the saga's, through RecordBegun.
	switch {
	case res.XID == "":
		return service.Fail(c, http.StatusServiceUnavailable, "order: no global transaction began: "+res.Error)
	case kerrors.Reason(err) == kratosgtx.ReasonGlobalTxUnknown || errors.Is(err, tm.ErrOutcomeUnknown):
		res.Status = "unknown"
		return c.JSON(http.StatusInternalServerError, res)
	}
	res.Status = "rolled_back"
	return c.JSON(http.StatusConflict, res)
}

// known checks that in's SKU and user exist before any transaction begins,
// so an unknown one is answered 404 without touching the coordinator; an
// error of kind NotFound says which.
func (s *Service) known(ctx context.Context, in *PlaceRequest) error {
	if _, ok := s.skus.Load(in.SKU); !ok {
		if _, err := s.inv.CheckSKU(ctx, &samplev1.CheckSKURequest{Sku: in.SKU}); err != nil {
			return err
		}
		s.skus.Store(in.SKU, struct{}{})
	}
	if _, ok := s.users.Load(in.User); !ok {
		if _, err := s.acc.CheckUser(ctx, &samplev1.CheckUserRequest{User: in.User}); err != nil {
			return err
		}
		s.users.Store(in.User, struct{}{})
	}
	return nil
}

// placeTx is the handler body of modes "at", "tcc" and "xa", run inside the
// global transaction the annotation began.
func (s *Service) placeTx(ctx context.Context, in *PlaceRequest, res *PlaceResult) error {
	res.XID, _ = gtx.XIDFromContext(ctx)
	d, err := s.inv.Deduct(ctx, &samplev1.DeductRequest{Sku: in.SKU, Quantity: in.Quantity, Mode: in.Mode, Fail: in.Fail == "inventory"})
	if err != nil {
		return err
	}
	amount := d.GetPrice() * in.Quantity
	if _, err := s.acc.Debit(ctx, &samplev1.DebitRequest{User: in.User, Amount: amount, Mode: in.Mode, Fail: in.Fail == "account"}); err != nil {
		return err
	}
	db := s.AT
	if in.Mode == "xa" {
		db = s.XA
	}
	if err := s.record(ctx, db, res, in, amount); err != nil {
		return err
	}
	if in.Fail == "order" {
		return errFailedAsAsked
	}
	return sleep(ctx, in.DelayMS)
}

// placeSaga runs the order as a code saga: take the stock, take the money
// (both steps sent over NATS JetStream, the XID in the message headers),
// record the order, each compensated if a later step fails.
func (s *Service) placeSaga(ctx context.Context, in *PlaceRequest, res *PlaceResult) error {
	var amount int64
	sg := saga.Define("place-order-saga").
		Then(saga.Step{Name: "reserve-stock", Compensation: "release-stock", Action: func(ctx context.Context, c saga.Call) error {
			var out inventory.Reserved
			err := s.steps.Do(ctx, inventory.StepReserve, c, inventory.Reserve{SKU: in.SKU, Quantity: in.Quantity, Fail: in.Fail == "inventory"}, &out)
			if err != nil {
				return stepError(err)
			}
			amount = out.Price * in.Quantity
			return nil
		}, Retry: stepRetry}).
		Then(saga.Step{Name: "charge", Compensation: "refund", Retry: stepRetry, Action: func(ctx context.Context, c saga.Call) error {
			err := s.steps.Do(ctx, account.StepDebit, c, account.Charge{User: in.User, Amount: amount, Fail: in.Fail == "account"}, nil)
			return stepError(err)
		}}).
		Then(saga.Step{Name: "record", Compensation: "drop-order", Data: []byte(res.OrderID), Action: func(ctx context.Context, c saga.Call) error {
			if err := s.record(ctx, s.Plain, res, in, amount); err != nil {
				return saga.Permanent(err)
			}
			if in.Fail == "order" {
				return saga.Permanent(errFailedAsAsked)
			}
			return nil
		}}).
		Then(saga.Step{Name: "delay", Action: func(ctx context.Context, _ saga.Call) error {
			return saga.Permanent(sleep(ctx, in.DelayMS))
		}})
	return s.saga.Run(ctx, sg)
}

// stepRetry retries a saga step that lost a race for a row (its local
// transaction changed nothing) or got no reply in time: the step is
// idempotent by its key.
var stepRetry = saga.RetryPolicy{MaxAttempts: 5, Initial: 20 * time.Millisecond, Multiplier: 2}

// stepError makes err permanent unless the participant said the step lost a
// race for a row (service.ReasonRowLocked), or no reply came
// (service.ReasonStepTimeout): those may be retried.
func stepError(err error) error {
	if r := kerrors.Reason(err); err == nil || r == service.ReasonRowLocked || r == service.ReasonStepTimeout {
		return err
	}
	return saga.Permanent(err)
}

// record inserts the order row through db: the AT database in modes "at"
// and "tcc" (an AT branch), the plain one in a saga step.
func (s *Service) record(ctx context.Context, db *sql.DB, res *PlaceResult, in *PlaceRequest, amount int64) error {
	_, err := db.ExecContext(ctx, s.Rebind("INSERT INTO orders (order_id, xid, user_id, sku, quantity, amount, mode, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
		res.OrderID, res.XID, in.User, in.SKU, in.Quantity, amount, in.Mode, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("order: record the order: %w", err)
	}
	return nil
}

func sleep(ctx context.Context, ms int64) error {
	if ms <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("order: delay cut short: %w", ctx.Err())
	}
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

const orderColumns = "order_id, xid, user_id, sku, quantity, amount, mode"

func scanOrder(sc interface{ Scan(...any) error }) (Order, error) {
	var o Order
	err := sc.Scan(&o.OrderID, &o.XID, &o.User, &o.SKU, &o.Quantity, &o.Amount, &o.Mode)
	return o, err
}

func (s *Service) list(c khttp.Context) error {
	user := c.Request().URL.Query().Get("user")
	if user == "" {
		return service.Fail(c, http.StatusBadRequest, "order: give ?user=")
	}
	rows, err := s.Plain.QueryContext(c, s.Rebind("SELECT "+orderColumns+" FROM orders WHERE user_id = ? ORDER BY created_ms, order_id"), user)
	if err != nil {
		return service.Fail(c, http.StatusInternalServerError, "order: list orders: "+err.Error())
	}
	defer rows.Close()
	out := Orders{Orders: []Order{}}
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return service.Fail(c, http.StatusInternalServerError, "order: list orders: "+err.Error())
		}
		out.Orders = append(out.Orders, o)
	}
	if err := rows.Err(); err != nil {
		return service.Fail(c, http.StatusInternalServerError, "order: list orders: "+err.Error())
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Service) get(c khttp.Context) error {
	id := c.Vars().Get("id")
	o, err := scanOrder(s.Plain.QueryRowContext(c, s.Rebind("SELECT "+orderColumns+" FROM orders WHERE order_id = ?"), id))
	if errors.Is(err, sql.ErrNoRows) {
		return service.Fail(c, http.StatusNotFound, fmt.Sprintf("order: no order %q", id))
	}
	if err != nil {
		return service.Fail(c, http.StatusInternalServerError, "order: read the order: "+err.Error())
	}
	return c.JSON(http.StatusOK, o)
}
