package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	klog "github.com/go-kratos/kratos/v2/log"
	"github.com/spf13/cobra"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/samples/order-inventory/load"
	"github.com/gtx-io/gtx/samples/order-inventory/local"
	"github.com/gtx-io/gtx/samples/order-inventory/order"
)

func newDemoCmd() *cobra.Command {
	var verbose, keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the order-inventory sample in one process: orders that commit and orders that roll back",
		Long: `Run, in one process, a coordinator (on its default store, a one-node
raft cluster), an embedded NATS server with JetStream (which carries the saga
steps) and the sample's order, inventory and account services
(samples/order-inventory), each on a SQLite file, all in a temporary
directory. Then place orders through the order service's HTTP API
in each mode (at, tcc, saga): one that commits, and ones where a participant
does its work and then fails, so the global transaction undoes real changes.
It prints the XIDs, the coordinator's view of each transaction, and stock and
balances before and after, then checks the sample's invariants. Nothing
needs to be installed. With --keep everything goes on serving, with curl
lines to try, until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), verbose, keep)
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the coordinator's and the services' logs")
	cmd.Flags().BoolVar(&keep, "keep", false, "leave the coordinator and the services serving, and print curl lines to try")
	return cmd
}

// demoOrder is one order the demo places and the answer it expects.
type demoOrder struct {
	title string
	req   order.PlaceRequest
	code  int
}

var demoOrders = []demoOrder{
	{"mode at: every participant succeeds", order.PlaceRequest{User: "u1", SKU: "A", Quantity: 2, Mode: "at"}, http.StatusOK},
	{"mode at: inventory takes the stock, then fails", order.PlaceRequest{User: "u1", SKU: "A", Quantity: 2, Mode: "at", Fail: "inventory"}, http.StatusConflict},
	{"mode at: account takes the money, then fails", order.PlaceRequest{User: "u1", SKU: "A", Quantity: 2, Mode: "at", Fail: "account"}, http.StatusConflict},
	{"mode at: the order service records the order, then fails", order.PlaceRequest{User: "u1", SKU: "A", Quantity: 2, Mode: "at", Fail: "order"}, http.StatusConflict},
	{"mode tcc: account freezes the money (Try), then Confirm", order.PlaceRequest{User: "u1", SKU: "A", Quantity: 2, Mode: "tcc"}, http.StatusOK},
	{"mode tcc: account freezes the money, then fails: Cancel gives it back", order.PlaceRequest{User: "u1", SKU: "A", Quantity: 2, Mode: "tcc", Fail: "account"}, http.StatusConflict},
	{"mode saga: three steps, each committed locally; stock and money steps go over NATS JetStream", order.PlaceRequest{User: "u1", SKU: "A", Quantity: 2, Mode: "saga"}, http.StatusOK},
	{"mode saga: inventory's step (a NATS command) takes the stock, then fails: its compensation gives it back", order.PlaceRequest{User: "u1", SKU: "A", Quantity: 2, Mode: "saga", Fail: "inventory"}, http.StatusConflict},
	{"mode saga: account's step takes the money, then fails: both steps are compensated over NATS", order.PlaceRequest{User: "u1", SKU: "A", Quantity: 2, Mode: "saga", Fail: "account"}, http.StatusConflict},
	{"mode saga: the last step fails: every step is compensated", order.PlaceRequest{User: "u1", SKU: "A", Quantity: 2, Mode: "saga", Fail: "order"}, http.StatusConflict},
}

func runDemo(ctx context.Context, out io.Writer, verbose, keep bool) error {
	level := slog.LevelError + 4
	klevel := klog.LevelFatal
	if verbose {
		level, klevel = slog.LevelInfo, klog.LevelInfo
	}
	klog.SetLogger(klog.NewFilter(klog.NewStdLogger(os.Stderr), klog.FilterLevel(klevel)))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	dir, err := os.MkdirTemp("", "gtx-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		// The files of a --keep run stay for inspection; the paths were
		// printed at the start.
		if keep {
			fmt.Fprintf(out, "kept the demo's files in %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	st, err := local.Start(ctx, local.Config{Dir: dir, Logger: log})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer st.Close()
	c := load.NewClient(st.OrderURL, st.InventoryURL, st.AccountURL)

	fmt.Fprintf(out, "gtx demo: a coordinator, NATS JetStream and the order, inventory and account services in this process, in %s\n", dir)
	fmt.Fprintf(out, "  coordinator gRPC %s   NATS %s (saga steps)\n  order %s   inventory %s   account %s\n\n", st.TCAddr, st.NATSURL, st.OrderURL, st.InventoryURL, st.AccountURL)
	before, err := c.TakeSnapshot(ctx)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	show := func(label string) error {
		s, err := c.Stock(ctx, "A")
		if err != nil {
			return err
		}
		a, err := c.Account(ctx, "u1")
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "   %s: stock of A %d, balance of u1 %d (frozen %d)\n", label, s.Available, a.Balance, a.Frozen)
		return nil
	}
	if err := show("before"); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintln(out)
	var committed int64
	for i, o := range demoOrders {
		fmt.Fprintf(out, "%d) %s\n", i+1, o.title)
		code, res, err := c.Place(ctx, o.req)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		fmt.Fprintf(out, "   POST /v1/orders user=%s sku=%s quantity=%d mode=%s fail=%q -> %d %s\n", o.req.User, o.req.SKU, o.req.Quantity, o.req.Mode, o.req.Fail, code, res.Status)
		if res.Error != "" {
			fmt.Fprintf(out, "   error: %s\n", res.Error)
		}
		if err := demoReport(ctx, out, st.TC, res.XID); err != nil {
			return err
		}
		if err := show("now"); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		fmt.Fprintln(out)
		if code != o.code {
			return fmt.Errorf("demo: order %d answered %d, want %d", i+1, code, o.code)
		}
		if code == http.StatusOK {
			committed += o.req.Quantity
		}
	}
	report, err := c.Check(ctx, before, 30*time.Second)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(out, "summary: %d orders committed (%d units of A, %d cents from u1), the others rolled back\n", report.Orders, report.Units, report.Cents)
	if report.OK() {
		fmt.Fprintln(out, "invariants: PASS (stock and balances changed by exactly the committed orders)")
	} else {
		fmt.Fprint(out, report)
	}
	if !report.OK() || report.Units != committed {
		return fmt.Errorf("demo: the invariants do not hold")
	}
	if !keep {
		return nil
	}
	fmt.Fprintf(out, "\nserving until interrupted (Ctrl-C). Try:\n")
	fmt.Fprintf(out, "  curl -s -XPOST %s/v1/orders -d '{\"user\":\"u2\",\"sku\":\"B\",\"quantity\":1,\"mode\":\"at\"}'\n", st.OrderURL)
	fmt.Fprintf(out, "  curl -s -XPOST %s/v1/orders -d '{\"user\":\"u2\",\"sku\":\"B\",\"quantity\":1,\"mode\":\"tcc\",\"fail\":\"account\"}'\n", st.OrderURL)
	fmt.Fprintf(out, "  curl -s -XPOST %s/v1/orders -d '{\"user\":\"u2\",\"sku\":\"B\",\"quantity\":1,\"mode\":\"saga\",\"fail\":\"inventory\"}'\n", st.OrderURL)
	fmt.Fprintf(out, "  curl -s '%s/v1/orders?user=u2'\n", st.OrderURL)
	fmt.Fprintf(out, "  curl -s %s/v1/stock/B\n", st.InventoryURL)
	fmt.Fprintf(out, "  curl -s %s/v1/accounts/u2\n", st.AccountURL)
	fmt.Fprintf(out, "  go run ./cmd/gtx tx list --tc %s\n", st.TCAddr)
	fmt.Fprintf(out, "  go run ./cmd/gtx bench order --order %s --inventory %s --account %s -d 10s\n", st.OrderURL, st.InventoryURL, st.AccountURL)
	<-ctx.Done()
	return nil
}

// demoReport prints what the coordinator says of xid and its branches.
func demoReport(ctx context.Context, out io.Writer, cc tcv1.CoordinatorClient, xid string) error {
	// An AT commit is answered once decided (ASYNC_COMMITTING); wait a
	// moment for phase 2 to finish, so the story shows the end.
	var t *tcv1.Transaction
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := cc.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: xid})
		if err != nil {
			return fmt.Errorf("demo: read %s from the coordinator: %w", xid, err)
		}
		t = resp.GetTransaction()
		if t.GetStatus().IsFinal() || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	fmt.Fprintf(out, "   coordinator: %s is %s\n", t.GetXid(), t.GetStatus())
	for _, b := range t.GetBranches() {
		fmt.Fprintf(out, "     %-4s branch %d on %s: %s\n", b.GetBranchType(), b.GetBranchId(), b.GetResourceId(), b.GetStatus())
	}
	return nil
}
