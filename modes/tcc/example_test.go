package tcc_test

import (
	"context"
	"errors"
	"log"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"gorm.io/gorm"

	"github.com/gtx-io/gtx/interceptors/grpcgtx"
	"github.com/gtx-io/gtx/modes/tcc"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tm"
)

// Freeze is the request of the example action.
type Freeze struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

var errInsufficientFunds = errors.New("insufficient funds")

// A service declares its action once, at start-up: a fence on its database,
// a Participant on its resource manager, the three phases.
func Example() {
	ctx := context.Background()
	var (
		gdb *gorm.DB    // the service's database
		rmm *rm.Manager // its resource manager, attached to the coordinator
		tmm *tm.Manager // its transaction manager
	)
	fence, err := tcc.OpenGormFence(ctx, gdb, tcc.DefaultFenceConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer fence.Close()
	p := tcc.NewParticipant(rmm, nil)
	freeze, err := tcc.Register(p, "account.freeze", fence, tcc.Phases[Freeze]{
		Try: func(ctx context.Context, tx tcc.Tx, bc *tcc.BranchContext[Freeze]) error {
			r := bc.Request
			res := tx.Gorm.Exec("UPDATE account SET balance = balance - ?, frozen = frozen + ? WHERE id = ? AND balance >= ?",
				r.Amount, r.Amount, r.Account, r.Amount)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				return errInsufficientFunds
			}
			// Values set here reach Confirm and Cancel.
			return bc.Set("frozen", r.Amount)
		},
		Confirm: func(ctx context.Context, tx tcc.Tx, bc *tcc.BranchContext[Freeze]) error {
			var frozen int64
			if _, err := bc.Get("frozen", &frozen); err != nil {
				return err
			}
			return tx.Gorm.Exec("UPDATE account SET frozen = frozen - ? WHERE id = ?", frozen, bc.Request.Account).Error
		},
		Cancel: func(ctx context.Context, tx tcc.Tx, bc *tcc.BranchContext[Freeze]) error {
			var frozen int64
			if _, err := bc.Get("frozen", &frozen); err != nil {
				return err
			}
			// database/sql works too: tx.SQL is the same transaction.
			_, err := tx.SQL.ExecContext(ctx, "UPDATE account SET frozen = frozen - ?, balance = balance + ? WHERE id = ?",
				frozen, frozen, bc.Request.Account)
			return err
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := rmm.Start(ctx); err != nil {
		log.Fatal(err)
	}
	// Try joins the global transaction of ctx; commit confirms, an error
	// cancels every branch that tried.
	err = tmm.WithGlobalTx(ctx, "pay", func(ctx context.Context) error {
		_, err := freeze.Try(ctx, Freeze{Account: "alice", Amount: 30})
		return err
	})
	if err != nil {
		log.Print(err)
	}
}

// accountServer implements a gRPC service generated from the service's
// proto.
type accountServer struct {
	freeze *tcc.Action[Freeze]
}

// Freeze handles /account.v1.Account/Freeze. The caller began the global
// transaction; the gtx interceptor put its XID into ctx, so the branch joins
// the caller's transaction.
func (s *accountServer) Freeze(ctx context.Context, r *Freeze) (*emptypb.Empty, error) {
	if _, err := s.freeze.Try(ctx, *r); err != nil {
		return nil, status.Error(codes.Aborted, err.Error())
	}
	return &emptypb.Empty{}, nil
}

// A Try may run in another service than the one that began the global
// transaction: the participant's server takes the caller's XID with the gtx
// interceptor (kratosgtx.Server() does the same in a kratos service).
func Example_remoteTry() {
	var (
		freeze *tcc.Action[Freeze] // registered as in Example
		lis    net.Listener
	)
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(grpcgtx.UnaryServerInterceptor()))
	accountv1RegisterAccountServer(srv, &accountServer{freeze: freeze})
	log.Fatal(srv.Serve(lis))
}

// accountv1RegisterAccountServer stands for the generated registration
// function.
func accountv1RegisterAccountServer(grpc.ServiceRegistrar, *accountServer) {}

// Hand-written TCC handlers can use the fence on its own: the business work
// runs in the fenced local transaction, through database/sql here.
func ExampleFence() {
	ctx := context.Background()
	var fence *tcc.Fence
	var b rm.Branch // a phase-2 command from the coordinator
	err := fence.Confirm(ctx, b.XID, b.BranchID, func(ctx context.Context, tx tcc.Tx) error {
		_, err := tx.SQL.ExecContext(ctx, "UPDATE stock SET reserved = reserved - 1, sold = sold + 1 WHERE sku = ?", "sku-1")
		return err
	})
	if errors.Is(err, tcc.ErrFenceConflict) {
		err = rm.Unretryable(err) // the branch was cancelled: an operator must look
	}
	if err != nil {
		log.Print(err) // a handler returns it to the resource manager
	}
}
