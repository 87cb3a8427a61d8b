// Package inventory is the sample's inventory service: stock per SKU, read
// over HTTP (GET /v1/stock/{sku}) and taken by the order service over gRPC
// (samplev1.Inventory). Stock is changed through gtx's AT mode in modes
// "at" and "tcc", through XA (rm/xa) in mode "xa", and in mode "saga" by idempotent local transactions with
// compensation, asked for over NATS JetStream (StepReserve, StepRelease) or
// over gRPC (Deduct and Restore with a step key).
package inventory

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
	"github.com/gtx-io/gtx/samples/order-inventory/api/samplev1"
	"github.com/gtx-io/gtx/samples/order-inventory/service"
)

// Seed data: SKUs A to J, SeedUnits units each at SeedPrice cents.
const (
	SeedUnits = 100000
	SeedPrice = 100
)

// SKUs are the seeded SKUs.
var SKUs = []string{"A", "B", "C", "D", "E", "F", "G", "H", "I", "J"}

// Reasons of the errors Deduct answers.
const (
	ReasonUnknownSKU = "UNKNOWN_SKU"
	ReasonOutOfStock = "OUT_OF_STOCK"
	ReasonFailed     = "FAILED_AS_ASKED"
	ReasonBadRequest = "BAD_REQUEST"
	ReasonCompensate = "STEP_COMPENSATED"
)

// Saga step methods this service serves over NATS JetStream
// (service.ServeSteps): subjects <prefix>.cmd.inventory.reserve and
// <prefix>.cmd.inventory.release.
const (
	// StepReserve takes stock: input Reserve, result Reserved.
	StepReserve = "inventory.reserve"
	// StepRelease gives back what the reserve step it names took.
	StepRelease = "inventory.release"
)

// Reserve is the input of StepReserve.
type Reserve struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"` // units, at least 1
	Fail     bool   `json:"fail"`     // fail after taking the stock
}

// Reserved is the result of StepReserve.
type Reserved struct {
	Price int64 `json:"price"` // cents per unit
}

// Stock is the JSON of GET /v1/stock/{sku}.
type Stock struct {
	SKU       string `json:"sku"`
	Available int64  `json:"available"` // units in stock
	Price     int64  `json:"price"`     // cents per unit
}

// Service is a running inventory service.
type Service struct {
	samplev1.UnimplementedInventoryServer
	*service.Base
}

// New opens the service's database (creating and seeding its tables),
// registers its routes, and starts serving.
func New(ctx context.Context, cfg service.Config) (*Service, error) {
	b, err := service.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Service{Base: b}
	if err := s.migrate(ctx); err != nil {
		b.Close()
		return nil, err
	}
	err = b.ServeParticipant(ctx, s.steps(), func() {
		b.HTTP.Route("/").GET("/v1/stock/{sku}", s.getStock)
		samplev1.RegisterInventoryServer(b.GRPC, s)
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) migrate(ctx context.Context) error {
	err := s.Exec(ctx, `CREATE TABLE IF NOT EXISTS stock (
	sku VARCHAR(32) NOT NULL PRIMARY KEY,
	available BIGINT NOT NULL,
	price BIGINT NOT NULL
)`, service.SagaStepsDDL)
	if err != nil {
		return err
	}
	return s.Seed(ctx, "stock", func(tx *sql.Tx) error {
		for _, sku := range SKUs {
			if _, err := tx.ExecContext(ctx, s.Rebind("INSERT INTO stock (sku, available, price) VALUES (?, ?, ?)"), sku, SeedUnits, SeedPrice); err != nil {
				return fmt.Errorf("inventory: seed %s: %w", sku, err)
			}
		}
		return nil
	})
}

func (s *Service) getStock(c khttp.Context) error {
	sku := c.Vars().Get("sku")
	st := Stock{SKU: sku}
	err := s.Plain.QueryRowContext(c, s.Rebind("SELECT available, price FROM stock WHERE sku = ?"), sku).Scan(&st.Available, &st.Price)
	if errors.Is(err, sql.ErrNoRows) {
		return service.Fail(c, http.StatusNotFound, fmt.Sprintf("inventory: no SKU %q", service.Clip(sku)))
	}
	if err != nil {
		return service.Fail(c, http.StatusInternalServerError, "inventory: read stock: "+err.Error())
	}
	return c.JSON(http.StatusOK, st)
}

// Deduct implements samplev1.InventoryServer.
func (s *Service) Deduct(ctx context.Context, r *samplev1.DeductRequest) (*samplev1.DeductResponse, error) {
	in := Reserve{SKU: r.GetSku(), Quantity: r.GetQuantity(), Fail: r.GetFail()}
	if r.GetMode() == "saga" {
		price, err := s.reserve(ctx, r.GetKey(), in)
		if err != nil {
			return nil, err
		}
		return &samplev1.DeductResponse{Price: price}, nil
	}
	if err := in.validate(); err != nil {
		return nil, err
	}
	price, err := s.price(ctx, in.SKU)
	if err != nil {
		return nil, err
	}
	take := s.takeAT
	if r.GetMode() == "xa" {
		take = s.takeXA
	}
	if err := take(ctx, in.SKU, in.Quantity); err != nil {
		return nil, err
	}
	if in.Fail {
		return nil, failed(in)
	}
	return &samplev1.DeductResponse{Price: price}, nil
}

func (in Reserve) validate() error {
	if in.SKU == "" || in.Quantity <= 0 {
		return kerrors.BadRequest(ReasonBadRequest, "inventory: deduct needs a SKU and a positive quantity")
	}
	return nil
}

func failed(in Reserve) error {
	return kerrors.Conflict(ReasonFailed, fmt.Sprintf("inventory: took %d of %s, then failed as the order asked", in.Quantity, in.SKU))
}

// reserve is the saga step that takes stock, once for key, in a local
// transaction that commits at once; it is refused after the step's
// compensation, and answers ReasonFailed after its work when in.Fail. It
// returns the unit price.
func (s *Service) reserve(ctx context.Context, key string, in Reserve) (int64, error) {
	if err := in.validate(); err != nil {
		return 0, err
	}
	if key == "" {
		return 0, kerrors.BadRequest(ReasonBadRequest, "inventory: a saga deduct needs its step key")
	}
	price, err := s.price(ctx, in.SKU)
	if err != nil {
		return 0, err
	}
	err = s.SagaDo(ctx, key, in.SKU, in.Quantity, func(tx *sql.Tx) error {
		return s.take(ctx, tx, in.SKU, in.Quantity)
	})
	if errors.Is(err, service.ErrStepCompensated) {
		return 0, kerrors.Conflict(ReasonCompensate, err.Error())
	}
	if err != nil {
		return 0, service.RetryableStep(err)
	}
	if in.Fail {
		return 0, failed(in)
	}
	return price, nil
}

// release is the compensation of the reserve step key: the stock it took
// goes back, once.
func (s *Service) release(ctx context.Context, key string) error {
	if key == "" {
		return kerrors.BadRequest(ReasonBadRequest, "inventory: restore needs the step key")
	}
	return s.SagaUndo(ctx, key, func(tx *sql.Tx, sku string, n int64) error {
		if _, err := tx.ExecContext(ctx, s.Rebind("UPDATE stock SET available = available + ? WHERE sku = ?"), n, sku); err != nil {
			return fmt.Errorf("inventory: give back %d of %s: %w", n, sku, err)
		}
		return nil
	})
}

// steps are the saga steps this service serves over NATS.
func (s *Service) steps() map[string]service.StepFunc {
	return map[string]service.StepFunc{
		StepReserve: func(ctx context.Context, cmd *statemachine.Command) (any, error) {
			var in Reserve
			if err := json.Unmarshal(cmd.Input, &in); err != nil {
				return nil, kerrors.BadRequest(ReasonBadRequest, "inventory: malformed reserve command: "+err.Error())
			}
			price, err := s.reserve(ctx, cmd.Key, in)
			return Reserved{Price: price}, err
		},
		StepRelease: func(ctx context.Context, cmd *statemachine.Command) (any, error) {
			return struct{}{}, s.release(ctx, cmd.ForwardKey)
		},
	}
}

// takeAT takes the stock in a local transaction of the AT database: with the
// XID in ctx it is a branch of the caller's global transaction.
func (s *Service) takeAT(ctx context.Context, sku string, n int64) error {
	tx, err := s.AT.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("inventory: begin: %w", err)
	}
	if err := s.take(ctx, tx, sku, n); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("inventory: commit the stock change: %w", err)
	}
	return nil
}

// takeXA takes the stock in an XA branch of the caller's global
// transaction. AT branches write the same rows, so the write checks their
// global lock before the branch prepares (service.GuardRow): an AT rollback
// must not find the row changed under it.
func (s *Service) takeXA(ctx context.Context, sku string, n int64) error {
	tx, err := s.XATx(ctx)
	if err != nil {
		return kerrors.BadRequest(ReasonBadRequest, err.Error())
	}
	xid, _ := gtx.XIDFromContext(ctx)
	if err := s.take(ctx, tx, sku, n); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := s.GuardRow(ctx, xid, "stock", sku); err != nil {
		_ = tx.Rollback()
		return kerrors.Conflict(service.ReasonRowLocked, err.Error())
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("inventory: prepare the stock change: %w", err)
	}
	return nil
}

func (s *Service) take(ctx context.Context, tx *sql.Tx, sku string, n int64) error {
	res, err := tx.ExecContext(ctx, s.Rebind("UPDATE stock SET available = available - ? WHERE sku = ? AND available >= ?"), n, sku, n)
	if err != nil {
		return fmt.Errorf("inventory: take %d of %s: %w", n, sku, err)
	}
	if k, err := res.RowsAffected(); err != nil || k == 0 {
		return kerrors.Conflict(ReasonOutOfStock, fmt.Sprintf("inventory: fewer than %d units of %s left", n, sku))
	}
	return nil
}

func (s *Service) price(ctx context.Context, sku string) (int64, error) {
	var price int64
	err := s.Plain.QueryRowContext(ctx, s.Rebind("SELECT price FROM stock WHERE sku = ?"), sku).Scan(&price)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, kerrors.NotFound(ReasonUnknownSKU, fmt.Sprintf("inventory: no SKU %q", service.Clip(sku)))
	}
	if err != nil {
		return 0, fmt.Errorf("inventory: read the price of %s: %w", sku, err)
	}
	return price, nil
}

// CheckSKU implements samplev1.InventoryServer: NotFound (ReasonUnknownSKU)
// when the inventory does not hold sku.
func (s *Service) CheckSKU(ctx context.Context, r *samplev1.CheckSKURequest) (*samplev1.CheckSKUResponse, error) {
	if _, err := s.price(ctx, r.GetSku()); err != nil {
		return nil, err
	}
	return &samplev1.CheckSKUResponse{}, nil
}

// Restore implements samplev1.InventoryServer: the compensation of a saga
// Deduct.
func (s *Service) Restore(ctx context.Context, r *samplev1.RestoreRequest) (*samplev1.RestoreResponse, error) {
	if err := s.release(ctx, r.GetKey()); err != nil {
		return nil, err
	}
	return &samplev1.RestoreResponse{}, nil
}
