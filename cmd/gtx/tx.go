package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

func newTxCmd() *cobra.Command {
	var (
		addr    string
		timeout time.Duration
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "tx",
		Short: "Inspect and repair global transactions on a running coordinator",
	}
	cmd.PersistentFlags().StringVar(&addr, "tc", "127.0.0.1:8091", "coordinator address")
	cmd.PersistentFlags().DurationVar(&timeout, "timeout", 10*time.Second, "bound on the call")
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	var sec clientSecurity
	sec.bind(cmd.PersistentFlags())

	dial := func(ctx context.Context) (tcv1.CoordinatorClient, func(), context.Context, error) {
		opts, err := sec.dialOptions(addr)
		if err != nil {
			return nil, nil, nil, err
		}
		conn, err := grpc.NewClient(addr, opts...)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("coordinator address %q: %w", addr, err)
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		return tcv1.NewCoordinatorClient(conn), func() { cancel(); conn.Close() }, ctx, nil
	}

	var (
		statuses []string
		limit    int32
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List transactions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &tcv1.ListTransactionsRequest{Limit: limit}
			for _, s := range statuses {
				v, ok := tcv1.GlobalStatus_value[strings.ToUpper(s)]
				if !ok || v == 0 {
					return fmt.Errorf("unknown status %q; use one of BEGIN, COMMITTING, COMMITTED, ROLLBACKED, COMMIT_FAILED, ROLLBACK_FAILED, ...", s)
				}
				req.Statuses = append(req.Statuses, tcv1.GlobalStatus(v))
			}
			c, done, ctx, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.ListTransactions(ctx, req)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "XID\tNAME\tSTATUS\tBRANCHES\tBEGAN\tATTEMPTS")
			for _, t := range resp.GetTransactions() {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%d\n", t.GetXid(), t.GetName(), t.GetStatus(), t.GetBranchCount(),
					time.UnixMilli(t.GetBeginUnixMs()).Format(time.RFC3339), t.GetAttempts())
			}
			return w.Flush()
		},
	}
	list.Flags().StringSliceVar(&statuses, "status", nil, "only these statuses (repeat or comma-separate)")
	list.Flags().Int32Var(&limit, "limit", 100, "at most this many")

	show := &cobra.Command{
		Use:   "show XID",
		Short: "Show one transaction with its branches",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := gtx.ValidateXID(args[0]); err != nil {
				return err
			}
			c, done, ctx, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: args[0]})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp.GetTransaction())
			}
			printTransaction(cmd.OutOrStdout(), resp.GetTransaction())
			return nil
		},
	}

	retry := &cobra.Command{
		Use:   "retry XID",
		Short: "Put a COMMIT_FAILED or ROLLBACK_FAILED transaction back into phase 2",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := gtx.ValidateXID(args[0]); err != nil {
				return err
			}
			c, done, ctx, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.Retry(ctx, &tcv1.RetryRequest{Xid: args[0]})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s is %s\n", args[0], resp.GetStatus())
			return nil
		},
	}
	cmd.AddCommand(list, show, retry)
	return cmd
}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func printTransaction(w io.Writer, t *tcv1.Transaction) {
	fmt.Fprintf(w, "xid:         %s\n", t.GetXid())
	fmt.Fprintf(w, "name:        %s\n", t.GetName())
	fmt.Fprintf(w, "application: %s\n", t.GetApplication())
	fmt.Fprintf(w, "status:      %s\n", t.GetStatus())
	fmt.Fprintf(w, "began:       %s (timeout %v)\n", time.UnixMilli(t.GetBeginUnixMs()).Format(time.RFC3339Nano), time.Duration(t.GetTimeoutMs())*time.Millisecond)
	fmt.Fprintf(w, "updated:     %s\n", time.UnixMilli(t.GetUpdatedUnixMs()).Format(time.RFC3339Nano))
	fmt.Fprintf(w, "attempts:    %d\n", t.GetAttempts())
	if t.GetLastError() != "" {
		fmt.Fprintf(w, "last error:  %s\n", t.GetLastError())
	}
	fmt.Fprintf(w, "branches:    %d\n", len(t.GetBranches()))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  BRANCH\tTYPE\tRESOURCE\tSTATUS\tLOCKS")
	for _, b := range t.GetBranches() {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", b.GetBranchId(), b.GetBranchType(), b.GetResourceId(), b.GetStatus(), b.GetLockKeys())
	}
	tw.Flush()
}
