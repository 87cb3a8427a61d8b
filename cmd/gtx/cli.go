package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtx-io/gtx/tc"
)

// examples are the Example sections of every command's help, by command
// path; TestEveryCommandExplainsItself fails for a command without one.
var examples = map[string]string{
	"gtx": `  gtx demo                      # see AT, TCC and sagas commit and roll back
  gtx tc --data-dir /var/lib/gtx   # run a coordinator
  gtx tx list --status COMMIT_FAILED`,
	"gtx tc": `  gtx tc
  gtx tc --config /etc/gtx/tc.yaml
  GTX_STORE_DSN='gtx:pw@tcp(db:3306)/gtx_tc' gtx tc --store-driver mysql --listen 0.0.0.0:8091 \
      --tls-cert tc.crt --tls-key tc.key --auth-tokens-file tokens.yaml`,
	"gtx tc members": `  gtx tc members list --raft-addr 10.0.0.1:8191
  gtx tc members add tc-4 10.0.0.4:8191
  gtx tc members remove tc-2`,
	"gtx tc members list":   `  gtx tc members list --raft-addr 10.0.0.1:8191`,
	"gtx tc members add":    `  gtx tc members add tc-4 10.0.0.4:8191 --raft-addr 10.0.0.1:8191`,
	"gtx tc members remove": `  gtx tc members remove tc-2 --raft-addr 10.0.0.1:8191`,
	"gtx tc recover":        `  gtx tc recover --data-dir /var/lib/gtx/tc --raft-id tc-1 --raft-addr 10.0.0.1:8191`,
	"gtx tx": `  gtx tx list --tc 127.0.0.1:8091
  gtx tx show tc-1:4711 --tls-ca ca.crt --token-file order.token`,
	"gtx tx list": `  gtx tx list
  gtx tx list --status COMMIT_FAILED,ROLLBACK_FAILED --limit 20
  gtx tx list --json | jq '.transactions[].xid'`,
	"gtx tx show": `  gtx tx show tc-1:4711
  gtx tx show tc-1:4711 --json`,
	"gtx tx retry": `  gtx tx retry tc-1:4711     # after fixing what made phase 2 fail`,
	"gtx demo": `  gtx demo
  gtx demo --keep            # leave everything serving and print curl lines
  gtx demo -v                # with the components' logs`,
	"gtx bench": `  gtx bench saga --mode code -c 16 -d 10s
  gtx bench order --order http://127.0.0.1:8001 -c 16 -d 30s`,
	"gtx bench saga": `  gtx bench saga --mode code -c 10
  gtx bench saga --mode plain -c 10      # the baseline without a saga
  gtx bench saga --tc 127.0.0.1:8091 --json`,
	"gtx bench order": `  gtx bench order --order http://127.0.0.1:8001 --inventory http://127.0.0.1:8002 \
      --account http://127.0.0.1:8003 -c 16 -d 30s`,
	"gtx version": `  gtx version
  gtx --version`,
}

// explainCommands gives every command of root its example, a GTX_*
// variable for every flag (named in the flag's help; `gtx tc` reads them
// while layering its configuration, the others before they run), and usage
// on argument and flag errors.
func explainCommands(root *cobra.Command) {
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{err: err, usage: c.UsageString()}
	})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if ex, ok := examples[c.CommandPath()]; ok && c.Example == "" {
			c.Example = ex
		}
		if args := c.Args; args != nil {
			c.Args = func(c *cobra.Command, a []string) error {
				if err := args(c, a); err != nil {
					return usageError{err: err, usage: c.UsageString()}
				}
				return nil
			}
		}
		for _, fs := range []*pflag.FlagSet{c.LocalNonPersistentFlags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if name := envName(f.Name); f.Name != "config" && f.Name != "help" && f.Name != "version" && !strings.Contains(f.Usage, name) {
					f.Usage += " (" + name + ")"
				}
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		if c.CommandPath() == "gtx tc" {
			return nil // layerConfig reads the environment between the file and the flags
		}
		return applyEnv(c.Flags())
	}
}

// flagOf names the Config field as c's flag for it (MaxTimeout is
// --max-timeout), or as the field when c has no such flag.
func flagOf(c *cobra.Command, field string) string {
	name := strings.ToLower(camelBreak.ReplaceAllString(field, "$1-$2"))
	if c.Flags().Lookup(name) != nil {
		return "--" + name
	}
	return field
}

var camelBreak = regexp.MustCompile(`([a-z0-9])([A-Z])`)

// envName is the environment variable of the flag name.
func envName(flag string) string {
	return "GTX_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// usageError is an argument or flag error, printed with the command's
// usage.
type usageError struct {
	err   error
	usage string
}

func (e usageError) Error() string { return e.err.Error() + "\n\n" + strings.TrimRight(e.usage, "\n") }
func (e usageError) Unwrap() error { return e.err }

// explainRun rewrites err of the command c ran in the user's terms, when c
// talks to a coordinator (it has a --tc flag).
func explainRun(ctx context.Context, c *cobra.Command, err error) error {
	if c == nil || err == nil {
		return err
	}
	var fe *tc.FieldError
	if errors.As(err, &fe) {
		return fmt.Errorf("%s (see gtx %s --help)", fe.Describe(func(field string) string { return flagOf(c, field) }), c.Name())
	}
	tcFlag, caFlag := c.Flags().Lookup("tc"), c.Flags().Lookup("tls-ca")
	if tcFlag == nil {
		return err
	}
	return explain(ctx, err, tcFlag.Value.String(), caFlag != nil && caFlag.Value.String() != "")
}

// explain rewrites an error of a command that called the coordinator at
// addr in the user's terms: the coordinator's answer without the gRPC
// wrapping, and, when a plaintext call failed against a server that speaks
// TLS, the flag to pass.
func explain(ctx context.Context, err error, addr string, tlsOn bool) error {
	st, ok := status.FromError(err)
	if !ok || addr == "" {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		if !tlsOn && speaksTLS(ctx, addr) {
			return fmt.Errorf("the coordinator at %s speaks TLS and this call did not: pass --tls-ca with the CA that signed its certificate (GTX_TLS_CA)", addr)
		}
		return fmt.Errorf("no answer from the coordinator at %s (is it running, and is --tc right?): %s", addr, st.Message())
	case codes.Unauthenticated:
		return fmt.Errorf("the coordinator at %s wants a valid token: pass --token-file (GTX_TOKEN_FILE): %s", addr, st.Message())
	case codes.PermissionDenied:
		return fmt.Errorf("the coordinator at %s refused: this token may not do that: %s", addr, st.Message())
	case codes.NotFound:
		// The message would show the coordinator's layers (store, session);
		// the code says it all.
		return fmt.Errorf("the coordinator at %s has no such transaction (finished ones are kept for its --retention)", addr)
	case codes.DeadlineExceeded:
		return fmt.Errorf("the coordinator at %s did not answer within --timeout: %s", addr, st.Message())
	}
	return fmt.Errorf("the coordinator at %s answered %s: %s", addr, st.Code(), st.Message())
}

// speaksTLS reports whether a TLS handshake with addr succeeds, whoever
// signed its certificate: only to tell the user which flag is missing.
func speaksTLS(ctx context.Context, addr string) bool {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 2 * time.Second},
		Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}} //nolint:gosec // a probe that sends nothing
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
