package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"gopkg.in/yaml.v3"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/modes/msg"
	"github.com/gtx-io/gtx/tc"
)

// tcConfig is the configuration of `gtx tc`, from a YAML file, GTX_*
// environment variables and flags, in rising precedence.
type tcConfig struct {
	Listen             string        `yaml:"listen"`
	ServerID           string        `yaml:"server_id"`
	NodeID             int64         `yaml:"node_id"`
	StoreDriver        string        `yaml:"store_driver"`
	DataDir            string        `yaml:"data_dir"`
	RaftAddr           string        `yaml:"raft_addr"`
	RaftAdvertise      string        `yaml:"raft_advertise"`
	RaftID             string        `yaml:"raft_id"`
	RaftPeers          string        `yaml:"raft_peers"`
	Join               string        `yaml:"join"`
	StoreDSN           string        `yaml:"store_dsn"`
	StorePrefix        string        `yaml:"store_prefix"`
	LockStore          string        `yaml:"lock_store"`
	StoreMaxBatch      int           `yaml:"store_max_batch"`
	DefaultTimeout     time.Duration `yaml:"default_timeout"`
	MaxTimeout         time.Duration `yaml:"max_timeout"`
	BranchTimeout      time.Duration `yaml:"branch_timeout"`
	RetryInitial       time.Duration `yaml:"retry_initial"`
	RetryMax           time.Duration `yaml:"retry_max"`
	RetryBudget        time.Duration `yaml:"retry_budget"`
	MaxAttempts        int           `yaml:"max_attempts"`
	Lease              time.Duration `yaml:"lease"`
	DetachGrace        time.Duration `yaml:"detach_grace"`
	Workers            int           `yaml:"workers"`
	Retention          time.Duration `yaml:"retention"`
	LogLevel           string        `yaml:"log_level"`
	TLSCert            string        `yaml:"tls_cert"`
	TLSKey             string        `yaml:"tls_key"`
	TLSClientCA        string        `yaml:"tls_client_ca"`
	AuthTokensFile     string        `yaml:"auth_tokens_file"`
	AuthReloadInterval time.Duration `yaml:"auth_reload_interval"`
	MetricsListen      string        `yaml:"metrics_listen"`
	MetricsTokenFile   string        `yaml:"metrics_token_file"`
	HealthListen       string        `yaml:"health_listen"`
	HealthInterval     time.Duration `yaml:"health_interval"`
	TraceExporter      string        `yaml:"trace_exporter"`
	OTLPEndpoint       string        `yaml:"otlp_endpoint"`
	MsgNATS            string        `yaml:"msg_nats"`
}

func defaultTCConfig() tcConfig {
	d := tc.DefaultConfig()
	return tcConfig{
		Listen:             "127.0.0.1:8091",
		ServerID:           d.ServerID,
		StoreDriver:        "raft",
		StoreDSN:           "gtx-tc.db",
		DataDir:            "gtx-tc-data",
		RaftAddr:           "127.0.0.1:8191",
		DefaultTimeout:     d.DefaultTimeout,
		MaxTimeout:         d.MaxTimeout,
		BranchTimeout:      d.BranchTimeout,
		RetryInitial:       d.RetryInitial,
		RetryMax:           d.RetryMax,
		RetryBudget:        d.RetryBudget,
		MaxAttempts:        d.MaxAttempts,
		Lease:              d.Lease,
		DetachGrace:        d.DetachGrace,
		Workers:            d.Workers,
		Retention:          d.Retention,
		LogLevel:           "info",
		HealthInterval:     5 * time.Second,
		AuthReloadInterval: 10 * time.Second,
		TraceExporter:      "none",
	}
}

func (c *tcConfig) bind(fs *pflag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "gRPC listen address (GTX_LISTEN)")
	fs.StringVar(&c.ServerID, "server-id", c.ServerID, "name of this replica, unique per replica sharing a store (GTX_SERVER_ID)")
	fs.Int64Var(&c.NodeID, "node-id", c.NodeID, "snowflake node ID 0-1023 for XIDs, unique per replica; -1 leases one from the mysql, postgres or redis store (GTX_NODE_ID)")
	fs.StringVar(&c.StoreDriver, "store-driver", c.StoreDriver, "session store: raft (embedded and replicated, in --data-dir), sqlite, mysql, postgres or redis (GTX_STORE_DRIVER)")
	fs.StringVar(&c.StoreDSN, "store-dsn", c.StoreDSN, "session store DSN; for sqlite a file path, for redis redis://host:port/db (GTX_STORE_DSN)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "raft store: this node's data directory, the Raft log and snapshots (GTX_DATA_DIR)")
	fs.StringVar(&c.RaftAddr, "raft-addr", c.RaftAddr, "raft store: host:port this node listens on for Raft and for calls followers forward (GTX_RAFT_ADDR)")
	fs.StringVar(&c.RaftAdvertise, "raft-advertise", c.RaftAdvertise, "raft store: host:port the other nodes reach --raft-addr at; empty means --raft-addr (GTX_RAFT_ADVERTISE)")
	fs.StringVar(&c.RaftID, "raft-id", c.RaftID, "raft store: this node's ID in the cluster, stable across restarts; empty means --server-id (GTX_RAFT_ID)")
	fs.StringVar(&c.RaftPeers, "raft-peers", c.RaftPeers, "raft store: bootstrap a new cluster of these voters, id=host:port,..., this node included, the same on each (GTX_RAFT_PEERS)")
	fs.StringVar(&c.Join, "join", c.Join, "raft store: join the cluster of the node at this --raft-addr instead of bootstrapping (GTX_JOIN)")
	fs.StringVar(&c.StorePrefix, "store-prefix", c.StorePrefix, "key prefix in a redis store; empty means gtx:tc: (GTX_STORE_PREFIX)")
	fs.IntVar(&c.StoreMaxBatch, "store-max-batch", c.StoreMaxBatch, "most store writes one group commit takes in a sql store; 0 means the default (64), 1 turns group commit off (GTX_STORE_MAX_BATCH)")
	fs.StringVar(&c.LockStore, "lock-store", c.LockStore, "keep the global row locks in Redis (redis://host:port/db) while sessions stay in the sql store; empty keeps them with the sessions (GTX_LOCK_STORE)")
	fs.DurationVar(&c.DefaultTimeout, "default-timeout", c.DefaultTimeout, "timeout of a transaction that asks for none (GTX_DEFAULT_TIMEOUT)")
	fs.DurationVar(&c.MaxTimeout, "max-timeout", c.MaxTimeout, "largest timeout a client may ask for (GTX_MAX_TIMEOUT)")
	fs.DurationVar(&c.BranchTimeout, "branch-timeout", c.BranchTimeout, "bound on one phase-2 command to a resource manager (GTX_BRANCH_TIMEOUT)")
	fs.DurationVar(&c.RetryInitial, "retry-initial", c.RetryInitial, "first phase-2 retry backoff (GTX_RETRY_INITIAL)")
	fs.DurationVar(&c.RetryMax, "retry-max", c.RetryMax, "largest phase-2 retry backoff (GTX_RETRY_MAX)")
	fs.DurationVar(&c.RetryBudget, "retry-budget", c.RetryBudget, "time after begin when phase 2 gives up with COMMIT_FAILED/ROLLBACK_FAILED; 0 never (GTX_RETRY_BUDGET)")
	fs.IntVar(&c.MaxAttempts, "max-attempts", c.MaxAttempts, "phase-2 attempts before giving up; 0 unlimited (GTX_MAX_ATTEMPTS)")
	fs.DurationVar(&c.Lease, "lease", c.Lease, "how long a replica owns the phase 2 it drives (GTX_LEASE)")
	fs.DurationVar(&c.DetachGrace, "detach-grace", c.DetachGrace, "how long after a process's resource manager detached its open transactions are rolled back; 0 waits for their timeout (GTX_DETACH_GRACE)")
	fs.IntVar(&c.Workers, "workers", c.Workers, "transactions whose phase 2 a replica drives at once in the background: as many recovered ones, and as many asynchronous commits right after their decision (GTX_WORKERS)")
	fs.DurationVar(&c.Retention, "retention", c.Retention, "how long finished transactions are kept; 0 forever (GTX_RETENTION)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (GTX_LOG_LEVEL)")
	fs.StringVar(&c.MsgNATS, "msg-nats", c.MsgNATS, "NATS URL through which the coordinator delivers two-phase messages to nats: targets and asks nats: checks; empty delivers only to http and grpc targets (GTX_MSG_NATS)")
	c.bindSecurity(fs)
	c.bindObservability(fs)
}

// loadFile reads a YAML configuration file over c; unknown keys are errors.
func (c *tcConfig) loadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// applyEnv sets every flag not given on the command line from its GTX_*
// environment variable.
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "config" {
			return
		}
		name := "GTX_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}

func newTCCmd() *cobra.Command { return tcCommand(runTC) }

// tcCommand builds `gtx tc` around run, which gets the layered
// configuration.
func tcCommand(run func(context.Context, tcConfig) error) *cobra.Command {
	cfg := defaultTCConfig()
	var file string
	cmd := &cobra.Command{
		Use:   "tc",
		Short: "Run the transaction coordinator",
		Long: `Run the transaction coordinator: a gRPC server (the gtx.tc.v1.Coordinator
service and gRPC health) on a session store. Configuration comes from
--config FILE (YAML, keys as the flags with _ for -), GTX_* environment
variables, and flags, each overriding the one before. SIGTERM or SIGINT
stops it gracefully.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := layerConfig(cmd.Flags(), file, &cfg); err != nil {
				return err
			}
			return run(cmd.Context(), cfg)
		},
	}
	cfg.bind(cmd.Flags())
	cmd.Flags().StringVar(&file, "config", "", "YAML configuration file")
	cmd.AddCommand(newMembersCmd(), newRecoverCmd())
	return cmd
}

// layerConfig puts the configuration together, each layer over the one
// before: defaults, the YAML file, GTX_* environment variables, flags.
// fs's flags are bound to cfg's fields.
func layerConfig(fs *pflag.FlagSet, file string, cfg *tcConfig) error {
	given := make(map[string]string)
	fs.Visit(func(f *pflag.Flag) { given[f.Name] = f.Value.String() })
	if file != "" {
		*cfg = defaultTCConfig()
		if err := cfg.loadFile(file); err != nil {
			return err
		}
	}
	if err := applyEnv(fs); err != nil {
		return err
	}
	for name, v := range given {
		if err := fs.Set(name, v); err != nil {
			return err
		}
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// runTC serves the coordinator until ctx is done.
func runTC(ctx context.Context, c tcConfig) error {
	level, err := parseLevel(c.LogLevel)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	store, locks, closeStores, err := openStores(ctx, c, log)
	if err != nil {
		return err
	}
	defer closeStores()
	ids, releaseIDs, err := newIDs(ctx, c, log)
	if err != nil {
		return err
	}
	defer releaseIDs()

	tcfg := tc.DefaultConfig()
	tcfg.ServerID = c.ServerID
	tcfg.IDs = ids
	tcfg.DefaultTimeout = c.DefaultTimeout
	tcfg.MaxTimeout = c.MaxTimeout
	tcfg.BranchTimeout = c.BranchTimeout
	tcfg.RetryInitial = c.RetryInitial
	tcfg.RetryMax = c.RetryMax
	tcfg.RetryBudget = c.RetryBudget
	tcfg.MaxAttempts = c.MaxAttempts
	tcfg.Lease = c.Lease
	tcfg.DetachGrace = c.DetachGrace
	tcfg.Workers = c.Workers
	tcfg.Retention = c.Retention
	tcfg.Logger = log
	obs, err := startObservability(ctx, c, log)
	if err != nil {
		return err
	}
	defer obs.stop(context.WithoutCancel(ctx))
	tcfg.Metrics = obs.metrics
	tcfg.TracerProvider = obs.tracer
	courier, closeCourier, err := newCourier(c, log)
	if err != nil {
		return err
	}
	defer closeCourier()
	tcfg.Messages = courier
	srv, err := tc.NewServer(tcfg, store, locks)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Listen, err)
	}
	opts, auth, err := serverSecurity(c, store, log)
	if err != nil {
		return err
	}
	if auth != nil {
		if c.AuthReloadInterval <= 0 {
			return fmt.Errorf("--auth-reload-interval must be positive, got %v", c.AuthReloadInterval)
		}
		defer watchCredentials(ctx, c.AuthTokensFile, c.AuthReloadInterval, auth, log)()
	}
	warnExposure(c, log)
	gs := grpc.NewServer(append(opts, grpc.ChainUnaryInterceptor(srv.UnaryInterceptor()))...)
	tcv1.RegisterCoordinatorServer(gs, srv)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	storeHealth := tc.NewStoreHealth(store, hs, c.HealthInterval, log)
	storeHealth.Start(ctx)
	defer storeHealth.Close()
	if c.HealthListen != "" {
		stopHealth, err := serveHealth(c.HealthListen, hs, log)
		if err != nil {
			return err
		}
		defer stopHealth()
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- gs.Serve(lis) }()
	log.Info("coordinator serving", "listen", lis.Addr().String(), "store", c.StoreDriver, "server_id", c.ServerID)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		_ = srv.Close()
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("coordinator stopping")
	hs.Shutdown()
	_ = srv.Close()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		gs.Stop()
	}
	if err := <-serveErr; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// newCourier returns the coordinator's deliverer of two-phase messages,
// over NATS when --msg-nats is set, and what releases it.
func newCourier(c tcConfig, log *slog.Logger) (*msg.Courier, func(), error) {
	var nc *nats.Conn
	if c.MsgNATS != "" {
		var err error
		nc, err = nats.Connect(c.MsgNATS, nats.Name("gtx-tc"), nats.MaxReconnects(-1))
		if err != nil {
			return nil, nil, fmt.Errorf("connect to NATS at --msg-nats %s: %w", c.MsgNATS, err)
		}
	}
	courier, err := msg.NewCourier(msg.CourierConfig{NATS: nc, Logger: log})
	if err != nil {
		if nc != nil {
			nc.Close()
		}
		return nil, nil, err
	}
	return courier, func() {
		_ = courier.Close()
		if nc != nil {
			nc.Close()
		}
	}, nil
}
