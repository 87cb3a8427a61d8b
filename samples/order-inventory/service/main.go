package service

import (
	"context"
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
// (GTX_GRPC_ADDR), -tc (GTX_TC), -db-driver (GTX_DB_DRIVER), -db-dsn
// (GTX_DB_DSN), -tx-timeout (GTX_TX_TIMEOUT). It returns the log level flag
// (-log-level, GTX_LOG_LEVEL).
func Flags(fs *flag.FlagSet, c *Config) *string {
	fs.StringVar(&c.HTTPAddr, "http", Env("GTX_HTTP_ADDR", c.HTTPAddr), "HTTP listen address (GTX_HTTP_ADDR)")
	fs.StringVar(&c.GRPCAddr, "grpc", Env("GTX_GRPC_ADDR", c.GRPCAddr), "gRPC listen address (GTX_GRPC_ADDR)")
	fs.StringVar(&c.TC, "tc", Env("GTX_TC", c.TC), "coordinator gRPC address (GTX_TC)")
	fs.StringVar(&c.Driver, "db-driver", Env("GTX_DB_DRIVER", c.Driver), "database driver: mysql (MySQL/MariaDB) or sqlite; AT mode has no PostgreSQL dialect yet (GTX_DB_DRIVER)")
	fs.StringVar(&c.DSN, "db-dsn", Env("GTX_DB_DSN", c.DSN), "the service's database: user@tcp(host:3306)/db for mysql, a file path for sqlite (GTX_DB_DSN)")
	timeout := c.TxTimeout
	if v, err := time.ParseDuration(os.Getenv("GTX_TX_TIMEOUT")); err == nil {
		timeout = v
	}
	fs.DurationVar(&c.TxTimeout, "tx-timeout", timeout, "timeout of the global transactions this service begins (GTX_TX_TIMEOUT)")
	return fs.String("log-level", Env("GTX_LOG_LEVEL", "info"), "debug, info, warn or error (GTX_LOG_LEVEL)")
}

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
