package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildVersion describes the binary from the build information the Go
// toolchain embeds: the module version (a tag, a pseudo-version, or
// "(devel)" for a build from a checkout), the VCS revision and whether the
// tree had uncommitted changes, and the Go version.
func buildVersion(info *debug.BuildInfo, ok bool) string {
	if !ok {
		return "gtx (no build information)"
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var revision, modified, when string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		case "vcs.time":
			when = " " + s.Value
		}
	}
	if revision == "" {
		revision = "unknown"
	} else if len(revision) > 12 {
		revision = revision[:12]
	}
	return fmt.Sprintf("gtx %s (commit %s%s%s, %s)", version, revision, modified, when, info.GoVersion)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print gtx's module version, commit and Go version",
		Example: `  gtx version
  gtx --version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), buildVersion(debug.ReadBuildInfo()))
			return err
		},
	}
}
