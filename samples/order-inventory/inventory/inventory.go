// Package inventory is the sample's inventory service: stock per SKU, read
// over HTTP (GET /v1/stock/{sku}) and taken by the order service over gRPC
// (samplev1.Inventory). Stock is changed through gtx's AT mode in modes
// "at" and "tcc", and by idempotent local transactions with compensation in
// mode "saga".
package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"

	kerrors "github.com/go-kratos/kratos/v2/errors"
	khttp "github.com/go-kratos/kratos/v2/transport/http"

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
	b.HTTP.Route("/").GET("/v1/stock/{sku}", s.getStock)
	samplev1.RegisterInventoryServer(b.GRPC, s)
	if err := b.Start(ctx); err != nil {
		b.Close()
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
			if _, err := tx.ExecContext(ctx, "INSERT INTO stock (sku, available, price) VALUES (?, ?, ?)", sku, SeedUnits, SeedPrice); err != nil {
				return fmt.Errorf("inventory: seed %s: %w", sku, err)
			}
		}
		return nil
	})
}

func (s *Service) getStock(c khttp.Context) error {
	sku := c.Vars().Get("sku")
	st := Stock{SKU: sku}
	err := s.Plain.QueryRowContext(c, "SELECT available, price FROM stock WHERE sku = ?", sku).Scan(&st.Available, &st.Price)
	if errors.Is(err, sql.ErrNoRows) {
		return service.Fail(c, http.StatusNotFound, fmt.Sprintf("inventory: no SKU %q", sku))
	}
	if err != nil {
		return service.Fail(c, http.StatusInternalServerError, "inventory: read stock: "+err.Error())
	}
	return c.JSON(http.StatusOK, st)
}

// Deduct implements samplev1.InventoryServer.
func (s *Service) Deduct(ctx context.Context, r *samplev1.DeductRequest) (*samplev1.DeductResponse, error) {
	if r.GetSku() == "" || r.GetQuantity() <= 0 {
		return nil, kerrors.BadRequest(ReasonBadRequest, "inventory: deduct needs a SKU and a positive quantity")
	}
	price, err := s.price(ctx, r.GetSku())
	if err != nil {
		return nil, err
	}
	switch r.GetMode() {
	case "saga":
		if r.GetKey() == "" {
			return nil, kerrors.BadRequest(ReasonBadRequest, "inventory: a saga deduct needs its step key")
		}
		err = s.SagaDo(ctx, r.GetKey(), r.GetSku(), r.GetQuantity(), func(tx *sql.Tx) error {
			return take(ctx, tx, r.GetSku(), r.GetQuantity())
		})
		if errors.Is(err, service.ErrStepCompensated) {
			return nil, kerrors.Conflict(ReasonCompensate, err.Error())
		}
		err = service.RetryableStep(err)
	default:
		err = s.takeAT(ctx, r.GetSku(), r.GetQuantity())
	}
	if err != nil {
		return nil, err
	}
	if r.GetFail() {
		return nil, kerrors.Conflict(ReasonFailed, fmt.Sprintf("inventory: took %d of %s, then failed as the order asked", r.GetQuantity(), r.GetSku()))
	}
	return &samplev1.DeductResponse{Price: price}, nil
}

// takeAT takes the stock in a local transaction of the AT database: with the
// XID in ctx it is a branch of the caller's global transaction.
func (s *Service) takeAT(ctx context.Context, sku string, n int64) error {
	tx, err := s.AT.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("inventory: begin: %w", err)
	}
	if err := take(ctx, tx, sku, n); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("inventory: commit the stock change: %w", err)
	}
	return nil
}

func take(ctx context.Context, tx *sql.Tx, sku string, n int64) error {
	res, err := tx.ExecContext(ctx, "UPDATE stock SET available = available - ? WHERE sku = ? AND available >= ?", n, sku, n)
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
	err := s.Plain.QueryRowContext(ctx, "SELECT price FROM stock WHERE sku = ?", sku).Scan(&price)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, kerrors.NotFound(ReasonUnknownSKU, fmt.Sprintf("inventory: no SKU %q", sku))
	}
	if err != nil {
		return 0, fmt.Errorf("inventory: read the price of %s: %w", sku, err)
	}
	return price, nil
}

// Restore implements samplev1.InventoryServer: the compensation of a saga
// Deduct.
func (s *Service) Restore(ctx context.Context, r *samplev1.RestoreRequest) (*samplev1.RestoreResponse, error) {
	if r.GetKey() == "" {
		return nil, kerrors.BadRequest(ReasonBadRequest, "inventory: restore needs the step key")
	}
	err := s.SagaUndo(ctx, r.GetKey(), func(tx *sql.Tx, sku string, n int64) error {
		if _, err := tx.ExecContext(ctx, "UPDATE stock SET available = available + ? WHERE sku = ?", n, sku); err != nil {
			return fmt.Errorf("inventory: give back %d of %s: %w", n, sku, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &samplev1.RestoreResponse{}, nil
}
