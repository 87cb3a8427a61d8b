package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	tests := []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{"no build information", nil, false, "gtx (no build information)"},
		{"a tagged module with its commit", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.1.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "3d1a8130aaaabbbbccccdddd"}, {Key: "vcs.time", Value: "2026-12-07T21:00:00Z"}}},
			true, "gtx v0.1.0 (commit 3d1a8130aaaa 2026-12-07T21:00:00Z, go1.26.8)"},
		{"a checkout with changes", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}}},
			true, "gtx (devel) (commit abc+dirty, go1.26.8)"},
		{"built without VCS stamping", &debug.BuildInfo{GoVersion: "go1.26.8"}, true, "gtx (devel) (commit unknown, go1.26.8)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildVersion(tt.info, tt.ok); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// `gtx version` and `gtx --version` print the same line.
func TestVersionCommand(t *testing.T) {
	var outs []string
	for _, args := range [][]string{{"version"}, {"--version"}} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("gtx %v: %v", args, err)
		}
		if !strings.HasPrefix(out.String(), "gtx ") {
			t.Fatalf("gtx %v printed %q", args, out.String())
		}
		outs = append(outs, out.String())
	}
	if outs[0] != outs[1] {
		t.Errorf("gtx version printed %q, gtx --version %q", outs[0], outs[1])
	}
}
