package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/idgen"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tc"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
	"github.com/gtx-io/gtx/tm"
)

func newDemoCmd() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run an embedded coordinator and two resource managers: one transaction commits, one rolls back",
		Long: `Run, in one process, a coordinator on a SQLite file in a temporary
directory and two resource managers (a stock ledger and a wallet), then place
one order that commits and one whose payment fails and rolls back, printing
XIDs, statuses and balances. Nothing needs to be installed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), verbose)
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the coordinator's and resource managers' logs")
	return cmd
}

// ledger is a demo resource: a balance whose phase-1 changes are held as
// reservations until phase 2 commits or undoes them. Its handlers are
// idempotent by (XID, branch ID), as delivery is at least once.
type ledger struct {
	name string
	rm   *rm.Manager
	out  io.Writer

	mu       sync.Mutex
	balance  int64
	reserved map[int64]int64 // branch ID -> amount taken in phase 1
}

// take takes amount from the ledger in phase 1 and enlists it as a branch of
// the transaction in ctx.
func (l *ledger) take(ctx context.Context, amount int64) error {
	xid, _ := gtx.XIDFromContext(ctx)
	data := binary.BigEndian.AppendUint64(nil, uint64(amount))
	id, err := l.rm.RegisterBranch(ctx, xid, tcv1.BranchType_TCC, l.name, "", data)
	if err != nil {
		return fmt.Errorf("%s: register branch: %w", l.name, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.balance < amount {
		return fmt.Errorf("%s: balance %d is below %d", l.name, l.balance, amount)
	}
	l.balance -= amount
	l.reserved[id] = amount
	fmt.Fprintf(l.out, "   %-9s phase 1: took %d, branch %d registered\n", l.name, amount, id)
	return nil
}

// Commit implements rm.Handler: the change is final, drop the reservation.
func (l *ledger) Commit(_ context.Context, b rm.Branch) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.reserved[b.BranchID]; ok {
		delete(l.reserved, b.BranchID)
		fmt.Fprintf(l.out, "   %-9s phase 2: commit branch %d\n", l.name, b.BranchID)
	}
	return nil
}

// Rollback implements rm.Handler: give back what phase 1 took.
func (l *ledger) Rollback(_ context.Context, b rm.Branch) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if amount, ok := l.reserved[b.BranchID]; ok {
		l.balance += amount
		delete(l.reserved, b.BranchID)
		fmt.Fprintf(l.out, "   %-9s phase 2: rollback branch %d, gave back %d\n", l.name, b.BranchID, amount)
	}
	return nil
}

func (l *ledger) get() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.balance
}

// demo is the running embedded system.
type demo struct {
	out     io.Writer
	tm      *tm.Manager
	tc      tcv1.CoordinatorClient
	stock   *ledger
	wallet  *ledger
	closers []func()
}

func (d *demo) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

func runDemo(ctx context.Context, out io.Writer, verbose bool) error {
	logLevel := slog.LevelWarn + 4
	if verbose {
		logLevel = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	d, dir, err := startDemo(ctx, out, log)
	if d != nil {
		defer d.close()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "gtx demo: coordinator on SQLite in %s\n", dir)
	fmt.Fprintf(out, "resource managers attached: stock (units of SKU A), wallet (cents of user u1)\n\n")
	fmt.Fprintf(out, "before: stock %d, wallet %d\n\n", d.stock.get(), d.wallet.get())

	const units, price = 2, 100
	fmt.Fprintf(out, "1) place-order: take %d units and %d cents, all participants succeed\n", units, units*price)
	xid1, err1 := d.order(ctx, units, units*price, false)
	if err := d.report(ctx, xid1, err1); err != nil {
		return err
	}
	fmt.Fprintf(out, "   now: stock %d, wallet %d\n\n", d.stock.get(), d.wallet.get())

	fmt.Fprintf(out, "2) place-order: take %d units and %d cents, the wallet fails after its change\n", units, units*price)
	xid2, err2 := d.order(ctx, units, units*price, true)
	if err := d.report(ctx, xid2, err2); err != nil {
		return err
	}
	fmt.Fprintf(out, "   now: stock %d, wallet %d\n\n", d.stock.get(), d.wallet.get())

	st1, err := d.tm.Status(ctx, xid1)
	if err != nil {
		return err
	}
	st2, err := d.tm.Status(ctx, xid2)
	if err != nil {
		return err
	}
	if st1 != tcv1.GlobalStatus_COMMITTED || st2 != tcv1.GlobalStatus_ROLLBACKED ||
		d.stock.get() != demoStock-units || d.wallet.get() != demoWallet-units*price {
		return fmt.Errorf("demo: unexpected outcome: %s, %s, stock %d, wallet %d", st1, st2, d.stock.get(), d.wallet.get())
	}
	fmt.Fprintf(out, "summary: %s %s, %s %s; stock and wallet changed by the committed order only\n", xid1, st1, xid2, st2)
	return nil
}

const demoStock, demoWallet = 10, 1000

// order runs one global transaction over both ledgers and returns its XID.
func (d *demo) order(ctx context.Context, units, cents int64, walletFails bool) (string, error) {
	var xid string
	err := d.tm.WithGlobalTx(ctx, "place-order", func(ctx context.Context) error {
		xid, _ = gtx.XIDFromContext(ctx)
		fmt.Fprintf(d.out, "   xid %s begun\n", xid)
		if err := d.stock.take(ctx, units); err != nil {
			return err
		}
		if err := d.wallet.take(ctx, cents); err != nil {
			return err
		}
		if walletFails {
			return errors.New("wallet: payment provider declined")
		}
		return nil
	}, tm.Timeout(30*time.Second))
	return xid, err
}

// report prints what the coordinator says of xid.
func (d *demo) report(ctx context.Context, xid string, txErr error) error {
	if txErr != nil {
		fmt.Fprintf(d.out, "   handler returned: %v\n", txErr)
	}
	resp, err := d.tc.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: xid})
	if err != nil {
		return fmt.Errorf("demo: read %s from the coordinator: %w", xid, err)
	}
	t := resp.GetTransaction()
	fmt.Fprintf(d.out, "   coordinator: %s is %s\n", t.GetXid(), t.GetStatus())
	for _, b := range t.GetBranches() {
		fmt.Fprintf(d.out, "     branch %d on %s: %s\n", b.GetBranchId(), b.GetResourceId(), b.GetStatus())
	}
	return nil
}

// startDemo starts the coordinator, the TM and two resource managers.
func startDemo(ctx context.Context, out io.Writer, log *slog.Logger) (*demo, string, error) {
	d := &demo{out: out}
	dir, err := os.MkdirTemp("", "gtx-demo-")
	if err != nil {
		return nil, "", err
	}
	d.closers = append(d.closers, func() { os.RemoveAll(dir) })
	store, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: filepath.Join(dir, "tc.db"), Logger: log})
	if err != nil {
		return d, dir, err
	}
	d.closers = append(d.closers, func() { store.Close() })
	icfg := idgen.DefaultConfig()
	ids, err := idgen.New(icfg)
	if err != nil {
		return d, dir, err
	}
	cfg := tc.DefaultConfig()
	cfg.IDs = ids
	cfg.Logger = log
	srv, err := tc.NewServer(cfg, store, store)
	if err != nil {
		return d, dir, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return d, dir, err
	}
	gs := grpc.NewServer()
	tcv1.RegisterCoordinatorServer(gs, srv)
	go gs.Serve(lis)
	d.closers = append(d.closers, gs.Stop)
	if err := srv.Start(ctx); err != nil {
		return d, dir, err
	}
	d.closers = append(d.closers, func() { srv.Close() })

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return d, dir, err
	}
	d.closers = append(d.closers, func() { conn.Close() })
	d.tc = tcv1.NewCoordinatorClient(conn)
	tmCfg := tm.DefaultConfig()
	tmCfg.Application = "demo-order"
	tmCfg.Logger = log
	if d.tm, err = tm.New(d.tc, tmCfg); err != nil {
		return d, dir, err
	}
	d.stock = &ledger{name: "stock", out: out, balance: demoStock, reserved: map[int64]int64{}}
	d.wallet = &ledger{name: "wallet", out: out, balance: demoWallet, reserved: map[int64]int64{}}
	for _, l := range []*ledger{d.stock, d.wallet} {
		rcfg := rm.DefaultConfig()
		rcfg.Application = "demo-" + l.name
		rcfg.Coordinators = []tcv1.CoordinatorClient{d.tc}
		rcfg.Logger = log
		m, err := rm.New(rcfg)
		if err != nil {
			return d, dir, err
		}
		m.Handle(tcv1.BranchType_TCC, l)
		if err := m.AddResource(l.name, tcv1.BranchType_TCC); err != nil {
			return d, dir, err
		}
		if err := m.Start(ctx); err != nil {
			return d, dir, err
		}
		d.closers = append(d.closers, func() { m.Close() })
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = m.WaitAttached(wctx)
		cancel()
		if err != nil {
			return d, dir, err
		}
		l.rm = m
	}
	return d, dir, nil
}
