package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gtx-io/gtx/tc/store/raftstore"
)

// newMembersCmd is `gtx tc members`: the membership of the raft store's
// cluster, listed and changed through any node's --raft-addr.
func newMembersCmd() *cobra.Command {
	var (
		addr    string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List and change the members of the raft store's cluster",
		Long: `List and change the voters of the cluster the coordinators' raft store
runs on. Ask any node (its --raft-addr); the change is made by the leader.
Change one member at a time and wait for it to be listed before the next;
see docs/operations.md.`,
	}
	cmd.PersistentFlags().StringVar(&addr, "raft-addr", "127.0.0.1:8191", "--raft-addr of any node of the cluster")
	cmd.PersistentFlags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for a leader to answer")
	ctxOf := func(c *cobra.Command) (context.Context, context.CancelFunc) {
		return context.WithTimeout(c.Context(), timeout)
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the members, and which one leads",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, cancel := ctxOf(c)
			defer cancel()
			members, err := raftstore.Members(ctx, addr)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tADDRESS\tVOTER\tLEADER")
			for _, m := range members {
				fmt.Fprintf(w, "%s\t%s\t%v\t%v\n", m.ID, m.Address, m.Voter, m.Leader)
			}
			return w.Flush()
		},
	}
	add := &cobra.Command{
		Use:   "add ID ADDRESS",
		Short: "Add the node ID, reachable at ADDRESS (its --raft-addr), as a voter",
		Long: `Add a voter. Start the new node first, with --join pointing at a member
(which adds it by itself) or with an empty --data-dir and no --raft-peers
and this command; it catches up from the leader's snapshot and log.`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, cancel := ctxOf(c)
			defer cancel()
			if err := raftstore.AddVoter(ctx, addr, args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "added %s at %s\n", args[0], args[1])
			return nil
		},
	}
	remove := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove the node ID from the cluster",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, cancel := ctxOf(c)
			defer cancel()
			if err := raftstore.RemoveServer(ctx, addr, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "removed %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(list, add, remove)
	return cmd
}

// newRecoverCmd is `gtx tc recover`: a stopped node's data directory
// rewritten as a one-node cluster, for a quorum lost for good or a backup.
func newRecoverCmd() *cobra.Command {
	var dataDir, raftAddr, raftID string
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Make a stopped node's data directory a one-node cluster (after a lost quorum, or from a backup)",
		Long: `Rewrite the data directory of a stopped node so that it starts as a one-node
cluster with everything its log and snapshots hold. Use it when a majority
of the voters is gone for good, on the survivor with the most entries, or to
start a new cluster from a copy of a data directory; then start the node
with the same --data-dir, --raft-id and --raft-addr and add others with
--join. Changes the node never received are lost. See docs/operations.md.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if raftID == "" {
				return errors.New("--raft-id is required: the ID the node had in the cluster")
			}
			cfg := raftstore.DefaultConfig()
			cfg.NodeID, cfg.Dir, cfg.Bind = raftID, dataDir, raftAddr
			if err := raftstore.Recover(cfg); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "%s in %s is now a one-node cluster at %s; start it with the same flags\n", raftID, dataDir, raftAddr)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "gtx-tc-data", "the stopped node's data directory")
	cmd.Flags().StringVar(&raftAddr, "raft-addr", "127.0.0.1:8191", "the --raft-addr the node will run on")
	cmd.Flags().StringVar(&raftID, "raft-id", "", "the node's ID in the cluster")
	return cmd
}
