// Package gettingstarted is the program docs/getting-started.md walks
// through: an ordinary kratos service with gorm, turned step by step into a
// gtx service that changes its stock in AT mode, freezes loyalty points in
// TCC mode and runs a saga, all against a coordinator started beside it.
// shop_test.go runs every step against a real coordinator.
package gettingstarted

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-kratos/kratos/v2/middleware/recovery"
	khttp "github.com/go-kratos/kratos/v2/transport/http"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/interceptors/kratosgtx"
	"github.com/gtx-io/gtx/modes/saga"
	"github.com/gtx-io/gtx/modes/tcc"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/rm/at/atgorm"
	"github.com/gtx-io/gtx/tm"

	_ "github.com/glebarez/sqlite" // registers database/sql driver "sqlite"
)

// Stock is a row the AT mode changes: gorm model, plain SQL underneath.
type Stock struct {
	SKU       string `gorm:"primaryKey;size:64"`
	Available int64
}

// Points are a user's loyalty points, which the TCC action freezes.
type Points struct {
	User      string `gorm:"primaryKey;size:64"`
	Available int64
	Frozen    int64
}

// Options configure the shop.
type Options struct {
	// Coordinator is the address of `gtx tc` (host:port).
	Coordinator string
	// DSN is the SQLite file of the shop's database, with its options.
	DSN string
	// HTTPAddr is where the shop serves; port 0 picks one.
	HTTPAddr string
	// Logger receives the shop's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Shop is the running service.
type Shop struct {
	HTTP    *khttp.Server
	gdb     *gorm.DB // on the AT driver: changes join the global transaction of ctx
	plain   *gorm.DB // on a plain pool: local transactions only
	tmm     *tm.Manager
	points  *tcc.Action[Freeze]
	sagas   *saga.Orchestrator
	closers []func() error
}

// Freeze is the request of the TCC action.
type Freeze struct {
	User   string `json:"user"`
	Points int64  `json:"points"`
}

// BuyRequest is the body of POST /v1/buy.
type BuyRequest struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
	User     string `json:"user"`
	// Fail makes the handler fail after its local work, so the global
	// transaction must undo real changes.
	Fail bool `json:"fail"`
}

// OpBuy is the operation the global-transaction annotation covers.
const OpBuy = "/shop.v1.Shop/Buy"

// errFailedAsAsked is the injected failure of BuyRequest.Fail.
var errFailedAsAsked = errors.New("shop: failed as the request asked")

// Start builds the shop step by step, as docs/getting-started.md explains,
// and serves it. Close stops it.
func Start(ctx context.Context, o Options) (s *Shop, err error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	s = &Shop{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	// Step 1: a gRPC connection to the coordinator.
	conn, err := grpc.NewClient(o.Coordinator, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("shop: dial the coordinator: %w", err)
	}
	s.closers = append(s.closers, conn.Close)
	coordinator := tcv1.NewCoordinatorClient(conn)

	// Step 2: the resource manager: it attaches to the coordinator and
	// receives the phase-2 commands of this service's branches.
	rcfg := rm.DefaultConfig()
	rcfg.Application = "shop"
	rcfg.Coordinators = []tcv1.CoordinatorClient{coordinator}
	rcfg.Logger = log
	rmm, err := rm.New(rcfg)
	if err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	s.closers = append(s.closers, rmm.Close)

	// Step 3: the AT driver under gorm. The database/sql pool it opens
	// records an undo image of every change made inside a global
	// transaction; gorm runs on top of it unchanged.
	acfg := at.DefaultConfig()
	acfg.DriverName, acfg.DSN, acfg.Dialect = "sqlite", o.DSN, at.SQLite()
	acfg.Manager, acfg.Locks, acfg.Logger = rmm, coordinator, log
	if acfg.ResourceID, err = at.ResourceID(acfg.DriverName, acfg.DSN); err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	atdb, err := at.Open(acfg)
	if err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	s.closers = append(s.closers, atdb.Close)
	if s.gdb, err = gorm.Open(atgorm.SQLiteConn(atdb), &gorm.Config{Logger: logger.Discard}); err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}

	// Step 4: the migration: the shop's own tables, AT's undo table, and
	// (in step 6) the TCC fence's table, on a plain pool.
	plain, err := sql.Open("sqlite", o.DSN)
	if err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	s.closers = append(s.closers, plain.Close)
	if err := at.Migrate(ctx, plain, at.SQLite(), acfg.UndoTable); err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	pgdb, err := gorm.Open(atgorm.SQLiteConn(plain), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	s.plain = pgdb
	if err := pgdb.WithContext(ctx).AutoMigrate(&Stock{}, &Points{}); err != nil {
		return nil, fmt.Errorf("shop: migrate: %w", err)
	}

	// Step 5: the transaction manager, which begins, commits and rolls
	// back global transactions.
	tcfg := tm.DefaultConfig()
	tcfg.Application = "shop"
	tcfg.Logger = log
	if s.tmm, err = tm.New(coordinator, tcfg); err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}

	// Step 6: a TCC action: Try freezes points, Confirm spends them,
	// Cancel gives them back; the fence makes each phase run once.
	fence, err := tcc.OpenGormFence(ctx, pgdb, tcc.DefaultFenceConfig())
	if err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	s.closers = append(s.closers, func() error { fence.Close(); return nil })
	s.points, err = tcc.Register(tcc.NewParticipant(rmm, nil), "shop.points", fence, tcc.Phases[Freeze]{
		Try: func(ctx context.Context, tx tcc.Tx, bc *tcc.BranchContext[Freeze]) error {
			r := bc.Request
			res := tx.Gorm.Exec("UPDATE points SET available = available - ?, frozen = frozen + ? WHERE user = ? AND available >= ?",
				r.Points, r.Points, r.User, r.Points)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				return fmt.Errorf("shop: %s has fewer than %d points", r.User, r.Points)
			}
			return nil
		},
		Confirm: func(ctx context.Context, tx tcc.Tx, bc *tcc.BranchContext[Freeze]) error {
			return tx.Gorm.Exec("UPDATE points SET frozen = frozen - ? WHERE user = ?", bc.Request.Points, bc.Request.User).Error
		},
		Cancel: func(ctx context.Context, tx tcc.Tx, bc *tcc.BranchContext[Freeze]) error {
			return tx.Gorm.Exec("UPDATE points SET frozen = frozen - ?, available = available + ? WHERE user = ?",
				bc.Request.Points, bc.Request.Points, bc.Request.User).Error
		},
	})
	if err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}

	// Step 7: a saga: each step commits locally at once, and a later
	// failure runs the compensations of the steps before it. Every
	// instance registers the same compensations, so any can run them.
	reg := saga.NewRegistry()
	if err := reg.Register("restock", func(ctx context.Context, c saga.Call) error {
		var r BuyRequest
		if err := json.Unmarshal(c.Data, &r); err != nil {
			return err
		}
		return pgdb.WithContext(ctx).Exec("UPDATE stocks SET available = available + ? WHERE sku = ?", r.Quantity, r.SKU).Error
	}); err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	rmm.Handle(tcv1.BranchType_SAGA, saga.NewHandler(reg))
	if s.sagas, err = saga.New(saga.Config{TM: s.tmm, RM: rmm, Registry: reg, ResourceID: "shop", Timeout: time.Minute, Logger: log}); err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}

	// Step 8: kratos middleware: kratosgtx.Server takes a caller's XID,
	// and the GlobalTx annotation runs OpBuy in a global transaction of
	// its own: nil commits, an error rolls back.
	g, err := interceptors.NewGlobalTx(s.tmm, interceptors.Operations(OpBuy), interceptors.Timeout(30*time.Second))
	if err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	s.HTTP = khttp.NewServer(khttp.Address(o.HTTPAddr), khttp.Middleware(recovery.Recovery(), kratosgtx.Server(), kratosgtx.GlobalTx(g)))
	r := s.HTTP.Route("/")
	r.POST("/v1/buy", s.buy(OpBuy, s.buyAT))
	r.POST("/v1/buy-with-points", s.buy(OpBuy, s.buyWithPoints))
	r.POST("/v1/buy-saga", s.buy("/shop.v1.Shop/BuySaga", s.buySaga))

	// Start: attach to the coordinator, then serve.
	if err := rmm.Start(ctx); err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rmm.WaitAttached(wctx); err != nil {
		return nil, fmt.Errorf("shop: attach to the coordinator: %w", err)
	}
	if _, err := s.HTTP.Endpoint(); err != nil {
		return nil, fmt.Errorf("shop: listen on %s: %w", o.HTTPAddr, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.HTTP.Start(context.WithoutCancel(ctx)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("shop: serve", "err", err)
		}
	}()
	s.closers = append(s.closers, func() error {
		err := s.HTTP.Stop(context.Background())
		<-done
		return err
	})
	return s, nil
}

// Close stops the shop and releases what Start opened, newest first.
func (s *Shop) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		_ = s.closers[i]()
	}
	s.closers = nil
}

// Seed puts stock and points in place for the guide's requests.
func (s *Shop) Seed(ctx context.Context, stock map[string]int64, points map[string]int64) error {
	db := s.plain.WithContext(ctx)
	for sku, n := range stock {
		if err := db.Save(&Stock{SKU: sku, Available: n}).Error; err != nil {
			return err
		}
	}
	for user, n := range points {
		if err := db.Save(&Points{User: user, Available: n}).Error; err != nil {
			return err
		}
	}
	return nil
}

// buy decodes the request and runs fn under operation op, so the
// annotation (for OpBuy) wraps it in a global transaction; it answers 200
// with the XID, or 409 when the transaction rolled back.
func (s *Shop) buy(op string, fn func(ctx context.Context, r BuyRequest) error) khttp.HandlerFunc {
	return func(c khttp.Context) error {
		var r BuyRequest
		if err := c.Bind(&r); err != nil || r.SKU == "" || r.Quantity <= 0 {
			return c.JSON(http.StatusBadRequest, map[string]string{"error": "want {\"sku\":…,\"quantity\":>0}"})
		}
		khttp.SetOperation(c, op)
		var xid string
		h := c.Middleware(func(ctx context.Context, _ any) (any, error) {
			xid, _ = gtx.XIDFromContext(ctx)
			return nil, fn(ctx, r)
		})
		if _, err := h(c, &r); err != nil {
			return c.JSON(http.StatusConflict, map[string]string{"xid": xid, "status": "rolled_back", "error": err.Error()})
		}
		return c.JSON(http.StatusOK, map[string]string{"xid": xid, "status": "committed"})
	}
}

// buyAT takes the stock in AT mode: ordinary gorm code; the XID in ctx
// makes the AT driver record the undo image and register the branch.
func (s *Shop) buyAT(ctx context.Context, r BuyRequest) error {
	res := s.gdb.WithContext(ctx).Model(&Stock{}).Where("sku = ? AND available >= ?", r.SKU, r.Quantity).
		Update("available", gorm.Expr("available - ?", r.Quantity))
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("shop: fewer than %d of %s in stock", r.Quantity, r.SKU)
	}
	if r.Fail {
		return errFailedAsAsked
	}
	return nil
}

// buyWithPoints takes the stock in AT mode and freezes 10 points a unit in
// TCC mode, in one global transaction.
func (s *Shop) buyWithPoints(ctx context.Context, r BuyRequest) error {
	if _, err := s.points.Try(ctx, Freeze{User: r.User, Points: 10 * r.Quantity}); err != nil {
		return err
	}
	return s.buyAT(ctx, r)
}

// buySaga takes the stock as a saga step, compensated by "restock" when a
// later step fails.
func (s *Shop) buySaga(ctx context.Context, r BuyRequest) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	plan := saga.Define("buy").
		Then(saga.Step{Name: "take-stock", Compensation: "restock", Data: data, Action: func(ctx context.Context, c saga.Call) error {
			// A saga step commits locally at once: the plain pool, not AT's.
			return s.plain.WithContext(ctx).Exec("UPDATE stocks SET available = available - ? WHERE sku = ?", r.Quantity, r.SKU).Error
		}}).
		Then(saga.Step{Name: "ship", Action: func(ctx context.Context, c saga.Call) error {
			if r.Fail {
				return errFailedAsAsked
			}
			return nil
		}})
	return s.sagas.Run(ctx, plan)
}

// Available returns the stock of sku and the available and frozen points
// of user.
func (s *Shop) Available(ctx context.Context, sku, user string) (stock, points, frozen int64, err error) {
	var st Stock
	if err := s.plain.WithContext(ctx).First(&st, "sku = ?", sku).Error; err != nil {
		return 0, 0, 0, err
	}
	var p Points
	if user != "" {
		if err := s.plain.WithContext(ctx).First(&p, "user = ?", user).Error; err != nil {
			return 0, 0, 0, err
		}
	}
	return st.Available, p.Available, p.Frozen, nil
}
