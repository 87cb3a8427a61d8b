package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	klog "github.com/go-kratos/kratos/v2/log"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/gtx-io/gtx/samples/order-inventory/load"
	"github.com/gtx-io/gtx/samples/order-inventory/local"
)

// orderBenchConfig is what `gtx bench order` runs.
type orderBenchConfig struct {
	OrderURL     string
	InventoryURL string
	AccountURL   string
	Load         load.Config
	Modes        string
	Settle       time.Duration
	Progress     bool
}

func newBenchOrderCmd() *cobra.Command {
	c := orderBenchConfig{
		Load:     load.Config{Concurrency: 8, Duration: 10 * time.Second, FailRatio: 0.2},
		Modes:    "at,tcc,saga",
		Settle:   60 * time.Second,
		Progress: true,
	}
	cmd := &cobra.Command{
		Use:   "order",
		Short: "Place orders on the order-inventory sample, report throughput and latency, check its invariants",
		Long: `Place orders on the order-inventory sample (samples/order-inventory) through
its HTTP API from --concurrency workers, for --duration or until --orders were
placed, each in a mode picked from --modes, a share --fail-ratio of them
asked to fail at a random participant. Print the throughput, the p50/p95/p99
latency and the committed and rolled-back counts. Then check the sample's
invariants: stock and balances, read through the HTTP API before and after,
changed by exactly the orders committed in between (GET /v1/orders). The
check waits up to --settle for transactions still finishing. It exits
non-zero when the invariants do not hold.

Without --order, --inventory and --account it starts the whole sample in
this process on SQLite in a temporary directory, with an embedded NATS server
for the saga steps (as gtx demo does).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runOrderBench(cmd.Context(), c, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&c.OrderURL, "order", "", "order service base URL (http://host:port); empty starts the sample in this process")
	fs.StringVar(&c.InventoryURL, "inventory", "", "inventory service base URL")
	fs.StringVar(&c.AccountURL, "account", "", "account service base URL")
	fs.IntVarP(&c.Load.Concurrency, "concurrency", "c", c.Load.Concurrency, "orders in flight at once")
	fs.DurationVarP(&c.Load.Duration, "duration", "d", c.Load.Duration, "how long to place orders; 0 with --orders runs until that many were placed")
	fs.IntVarP(&c.Load.Orders, "orders", "n", 0, "stop after this many orders; 0 means no limit")
	fs.StringVar(&c.Modes, "modes", c.Modes, "comma-separated modes to mix evenly: at, tcc, saga")
	fs.Float64Var(&c.Load.FailRatio, "fail-ratio", c.Load.FailRatio, "share of orders asked to fail at a random participant, 0 to 1")
	fs.DurationVar(&c.Settle, "settle", c.Settle, "how long the invariant check waits for transactions still finishing")
	fs.BoolVar(&c.Progress, "progress", c.Progress, "show a progress bar on stderr")
	return cmd
}

// errInvariants says the invariant check failed.
var errInvariants = errors.New("bench order: the invariants do not hold")

func runOrderBench(ctx context.Context, c orderBenchConfig, out, errOut io.Writer) error {
	c.Load.Modes = strings.Split(c.Modes, ",")
	if err := c.Load.Validate(); err != nil {
		return fmt.Errorf("bench order: %w", err)
	}
	given := 0
	for _, u := range []string{c.OrderURL, c.InventoryURL, c.AccountURL} {
		if u != "" {
			given++
		}
	}
	target := "the sample started in this process on SQLite and an embedded NATS"
	switch given {
	case 0:
		klog.SetLogger(klog.NewFilter(klog.NewStdLogger(errOut), klog.FilterLevel(klog.LevelError)))
		dir, err := os.MkdirTemp("", "gtx-bench-order-")
		if err != nil {
			return fmt.Errorf("bench order: %w", err)
		}
		defer os.RemoveAll(dir)
		st, err := local.Start(ctx, local.Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelError + 4}))})
		if err != nil {
			return fmt.Errorf("bench order: %w", err)
		}
		defer st.Close()
		c.OrderURL, c.InventoryURL, c.AccountURL = st.OrderURL, st.InventoryURL, st.AccountURL
	case 3:
		target = c.OrderURL
	default:
		return errors.New("bench order: give all of --order, --inventory and --account, or none")
	}
	client := load.NewClient(c.OrderURL, c.InventoryURL, c.AccountURL)
	before, err := client.TakeSnapshot(ctx)
	if err != nil {
		return fmt.Errorf("bench order: read the state before: %w", err)
	}
	fmt.Fprintf(out, "gtx bench order: concurrency %d, modes %s, %.0f%% asked to fail, against %s\n",
		c.Load.Concurrency, c.Modes, 100*c.Load.FailRatio, target)
	if c.Progress {
		max := int64(c.Load.Orders)
		if max == 0 {
			max = -1
		}
		bar := progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(errOut),
			progressbar.OptionSetDescription("orders"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("orders"),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
		c.Load.OnOrder = func(load.Outcome) { _ = bar.Add(1) }
		defer func() { _ = bar.Finish() }()
	}
	res, err := load.Run(ctx, client, c.Load)
	if err != nil {
		return fmt.Errorf("bench order: %w", err)
	}
	c.Load.OnOrder = nil
	printOrderBench(out, res)
	report, err := client.Check(ctx, before, c.Settle)
	if err != nil {
		return fmt.Errorf("bench order: read the state after: %w", err)
	}
	fmt.Fprint(out, report)
	if !report.OK() {
		return errInvariants
	}
	return nil
}

func printOrderBench(w io.Writer, r *load.Result) {
	fmt.Fprintf(w, "placed      %d orders in %v: %.1f orders/s\n", r.Placed, r.Elapsed.Round(time.Millisecond), r.Throughput())
	fmt.Fprintf(w, "outcomes    %d committed, %d rolled back, %d unknown (no answer or another status), %d not as asked\n",
		r.Committed, r.RolledBack, r.Unknown, r.Unexpected)
	modes := make([]string, 0, len(r.ByMode))
	for m := range r.ByMode {
		modes = append(modes, m)
	}
	sort.Strings(modes)
	for _, m := range modes {
		fmt.Fprintf(w, "  %-5s     %d committed, %d rolled back\n", m, r.ByMode[m][0], r.ByMode[m][1])
	}
	reasons := make([]string, 0, len(r.Reasons))
	for m := range r.Reasons {
		reasons = append(reasons, m)
	}
	sort.Slice(reasons, func(i, j int) bool { return r.Reasons[reasons[i]] > r.Reasons[reasons[j]] })
	for i, m := range reasons {
		if i == 5 {
			break
		}
		fmt.Fprintf(w, "  rolled back, not asked to: %dx %s\n", r.Reasons[m], m)
	}
	if r.FirstUnknown != nil {
		fmt.Fprintf(w, "first unknown: %v\n", r.FirstUnknown)
	}
	fmt.Fprintf(w, "latency     p50 %v  p95 %v  p99 %v\n",
		r.Percentile(0.50).Round(10*time.Microsecond), r.Percentile(0.95).Round(10*time.Microsecond), r.Percentile(0.99).Round(10*time.Microsecond))
}
