package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Every command has an example, and every flag names its GTX_* variable.
func TestEveryCommandExplainsItself(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.Hidden && c.Name() != "help" && c.Name() != "completion" && c.Parent() != nil && c.Parent().Name() != "completion" {
			if c.Example == "" {
				t.Errorf("%s: no example in its help", c.CommandPath())
			}
			for _, fs := range []*pflag.FlagSet{c.LocalNonPersistentFlags(), c.PersistentFlags()} {
				fs.VisitAll(func(f *pflag.Flag) {
					if f.Name != "help" && f.Name != "config" && !strings.Contains(f.Usage, envName(f.Name)) {
						t.Errorf("%s --%s: its help does not name %s", c.CommandPath(), f.Name, envName(f.Name))
					}
				})
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
}

// run executes gtx with args as main does and returns its error, rewritten
// for the user.
func run(t *testing.T, args ...string) error {
	t.Helper()
	root := newRootCmd()
	root.SetArgs(args)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	c, err := root.ExecuteContextC(t.Context())
	return explainRun(t.Context(), c, err)
}

func TestCLIErrorsInTheUsersTerms(t *testing.T) {
	closed := freeAddr(t) // nothing listens there

	ca := newTestCA(t, "gtx cli CA")
	certPEM, keyPEM := ca.issue(t, "tc", x509.ExtKeyUsageServerAuth)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				_ = c.(*tls.Conn).HandshakeContext(context.Background())
				_, _ = c.Read(make([]byte, 1))
			}(c)
		}
	}()

	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"a missing argument prints the usage", nil, []string{"tx", "show"}, []string{"accepts 1 arg", "Usage:", "gtx tx show XID"}},
		{"an unknown flag prints the usage", nil, []string{"tx", "list", "--nope"}, []string{"unknown flag: --nope", "Usage:"}},
		{"no coordinator there", nil, []string{"tx", "list", "--tc", closed, "--timeout", "1s"}, []string{"no answer from the coordinator at " + closed}},
		{"the address from GTX_TC", map[string]string{"GTX_TC": closed, "GTX_TIMEOUT": "1s"}, []string{"tx", "list"}, []string{"coordinator at " + closed}},
		{"a setting out of range names the flags", nil, []string{"tc", "--listen", "127.0.0.1:0", "--node-id", "3", "--store-dsn", filepath.Join(t.TempDir(), "tc.db"),
			"--store-driver", "sqlite", "--default-timeout", "1m", "--max-timeout", "10s"},
			[]string{"--max-timeout 10s must not be below --default-timeout 1m0s"}},
		{"plaintext against TLS names --tls-ca", nil, []string{"tx", "show", "tc-1:1", "--tc", lis.Addr().String(), "--timeout", "2s"},
			[]string{"speaks TLS", "--tls-ca"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err := run(t, tt.args...)
			if err == nil {
				t.Fatalf("gtx %v: no error", tt.args)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("gtx %v: error %q lacks %q", tt.args, err, w)
				}
			}
			if strings.Contains(err.Error(), "rpc error:") {
				t.Errorf("gtx %v: error %q shows the gRPC wrapping", tt.args, err)
			}
		})
	}
}
