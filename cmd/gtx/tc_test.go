package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTCConfigLayers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tc.yaml")
	err := os.WriteFile(file, []byte("listen: 127.0.0.1:7000\nstore_dsn: from-file.db\nserver_id: file-id\nlease: 90s\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GTX_LISTEN", "127.0.0.1:7001")
	t.Setenv("GTX_SERVER_ID", "env-id")

	var got tcConfig
	cmd := tcCommand(func(_ context.Context, c tcConfig) error { got = c; return nil })
	cmd.SetArgs([]string{"--config", file, "--server-id", "flag-id"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"flag beats env and file", got.ServerID, "flag-id"},
		{"env beats file", got.Listen, "127.0.0.1:7001"},
		{"file beats default", got.StoreDSN, "from-file.db"},
		{"file duration", got.Lease, 90 * time.Second},
		{"default stays", got.StoreDriver, "raft"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestTCConfigBadInput(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknown, []byte("listn: 127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown yaml key", []string{"--config", unknown}, nil, "listn"},
		{"missing file", []string{"--config", filepath.Join(dir, "none.yaml")}, nil, "no such file"},
		{"bad env duration", nil, map[string]string{"GTX_LEASE": "soon"}, "GTX_LEASE"},
		{"bad log level", []string{"--log-level", "loud"}, nil, "log level"},
		{"bad store driver", []string{"--store-driver", "oracle", "--listen", "127.0.0.1:0"}, nil, "oracle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cmd := newRootCmd()
			cmd.SetArgs(append([]string{"tc"}, tt.args...))
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}
