// Command gtx is gtx's one CLI: `gtx tc` runs the transaction coordinator,
// `gtx tx list|show|retry` inspects and repairs transactions on a running
// coordinator, `gtx demo` shows a committed and a rolled-back global
// transaction with nothing installed, and `gtx bench` measures throughput
// and latency.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cmd, err := newRootCmd().ExecuteContextC(ctx)
	err = explainRun(ctx, cmd, err)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gtx:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "gtx",
		Short:         "gtx: distributed transactions for Go microservices",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// --version prints what `gtx version` prints.
	root.Version = buildVersion(debug.ReadBuildInfo())
	root.SetVersionTemplate("{{.Version}}\n")
	bench := newBenchCmd()
	bench.AddCommand(newBenchOrderCmd())
	root.AddCommand(newTCCmd(), newTxCmd(), newDemoCmd(), bench, newVersionCmd())
	explainCommands(root)
	return root
}
