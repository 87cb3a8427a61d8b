package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Flags binds the common flags of a service binary to c, each defaulting to
// an environment variable when it is set: -http (GTX_HTTP_ADDR), -grpc
// (GTX_GRPC_ADDR), -tc (GTX_TC), -tc-ca (GTX_TC_CA), -nats (GTX_NATS_URL),
// -nats-stream (GTX_NATS_STREAM), -nats-subject (GTX_NATS_SUBJECT),
// -db-driver (GTX_DB_DRIVER), -tx-timeout (GTX_TX_TIMEOUT). Secrets have no
// flag, which would show in process listings: the coordinator token comes
// from GTX_TC_TOKEN or the file -tc-token-file (GTX_TC_TOKEN_FILE) names,
// and the database DSN (which may hold a password) from GTX_DB_DSN or the
// file -db-dsn-file (GTX_DB_DSN_FILE) names; -db-dsn is refused with a
// message saying so. Call the returned function after parsing to read the
// files. The second value is the log level flag (-log-level,
// GTX_LOG_LEVEL).
func Flags(fs *flag.FlagSet, c *Config) (token func() error, level *string) {
	fs.StringVar(&c.HTTPAddr, "http", Env("GTX_HTTP_ADDR", c.HTTPAddr), "HTTP listen address (GTX_HTTP_ADDR)")
	fs.StringVar(&c.GRPCAddr, "grpc", Env("GTX_GRPC_ADDR", c.GRPCAddr), "gRPC listen address (GTX_GRPC_ADDR)")
	fs.StringVar(&c.TC, "tc", Env("GTX_TC", c.TC), "coordinator replicas: host:port, host1:port,host2:port, or dns:///name:port (GTX_TC)")
	fs.StringVar(&c.TCCA, "tc-ca", Env("GTX_TC_CA", c.TCCA), "PEM file of the CA of the coordinator's TLS certificate; empty: plaintext (GTX_TC_CA)")
	tokenFile := fs.String("tc-token-file", Env("GTX_TC_TOKEN_FILE", ""), "file holding this application's coordinator token; GTX_TC_TOKEN gives it directly (GTX_TC_TOKEN_FILE)")
	fs.StringVar(&c.NATSURL, "nats", Env("GTX_NATS_URL", c.NATSURL), "NATS server with JetStream, for the saga steps (GTX_NATS_URL)")
	fs.StringVar(&c.NATSStream, "nats-stream", Env("GTX_NATS_STREAM", c.NATSStream), "JetStream stream of the saga steps (GTX_NATS_STREAM)")
	fs.StringVar(&c.NATSSubject, "nats-subject", Env("GTX_NATS_SUBJECT", c.NATSSubject), "subject prefix of the saga steps; the stream holds prefix.> (GTX_NATS_SUBJECT)")
	fs.StringVar(&c.Driver, "db-driver", Env("GTX_DB_DRIVER", c.Driver), "database driver: mysql (MySQL/MariaDB), postgres (PostgreSQL; needs a binary built with cgo) or sqlite (GTX_DB_DRIVER)")
	c.DSN = Env("GTX_DB_DSN", c.DSN)
	dsnFile := fs.String("db-dsn-file", Env("GTX_DB_DSN_FILE", ""), "file holding the service's database DSN: user:pass@tcp(host:3306)/db for mysql, postgres://user@host:5432/db or host=... dbname=... for postgres, a file path for sqlite; GTX_DB_DSN gives it directly (GTX_DB_DSN_FILE)")
	fs.Func("db-dsn", "refused: a DSN on the command line shows in process listings; use GTX_DB_DSN or -db-dsn-file", func(string) error {
		return errDSNFlag
	})
	timeout := c.TxTimeout
	if v, err := time.ParseDuration(os.Getenv("GTX_TX_TIMEOUT")); err == nil {
		timeout = v
	}
	fs.DurationVar(&c.TxTimeout, "tx-timeout", timeout, "timeout of the global transactions this service begins (GTX_TX_TIMEOUT)")
	level = fs.String("log-level", Env("GTX_LOG_LEVEL", "info"), "debug, info, warn or error (GTX_LOG_LEVEL)")
	token = func() error {
		if *dsnFile != "" {
			dsn, err := readSecret(*dsnFile, "database DSN")
			if err != nil {
				return err
			}
			c.DSN = dsn
		}
		c.TCToken = os.Getenv("GTX_TC_TOKEN")
		if *tokenFile == "" {
			return nil
		}
		tok, err := ReadToken(*tokenFile)
		c.TCToken = tok
		return err
	}
	return token, level
}

// errDSNFlag is what -db-dsn answers.
var errDSNFlag = errors.New("a DSN on the command line shows in process listings, with its password: set GTX_DB_DSN or put it in a file named by -db-dsn-file")

// Env returns the environment variable key, or def when it is unset.
func Env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

// Logger returns a text logger on stderr at level ("debug", "info", "warn",
// "error").
func Logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("service: log level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// Main runs a service binary: start builds the service, which serves until
// SIGINT or SIGTERM, and then is closed. It exits 1 when start fails.
func Main(name string, start func(ctx context.Context) (func(), error)) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	closeFn, err := start(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	<-ctx.Done()
	closeFn()
}
