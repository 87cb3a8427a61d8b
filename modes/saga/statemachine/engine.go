package statemachine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"gorm.io/gorm"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// Config configures an Engine. Start from DefaultConfig.
type Config struct {
	// DB stores instances and state executions (SQLite through
	// github.com/glebarez/sqlite, MySQL or PostgreSQL). Start migrates it.
	// On SQLite, a pool of one connection (SetMaxOpenConns(1)) serves
	// concurrent instances best: SQLite has one writer.
	DB *gorm.DB
	// Coordinator, when set, gives each instance its XID (Begin) and is
	// told its final status (Report: COMMITTED or ROLLBACKED). Nil runs
	// without a coordinator, with XIDs made here.
	Coordinator tcv1.CoordinatorClient
	// Application names the service to the coordinator.
	Application string
	// TxTimeout is the timeout of the global transaction begun for an
	// instance. The engine, not the coordinator, undoes an instance's work,
	// so give it room: a coordinator that times the transaction out first
	// refuses the final Report.
	TxTimeout time.Duration
	// CompensationRetryInitial and CompensationRetryMax bound the backoff
	// between attempts of a compensation, which is retried until it
	// succeeds.
	CompensationRetryInitial time.Duration
	CompensationRetryMax     time.Duration
	// JetStream, ReplyStream and ReplySubject are needed for NATS steps:
	// replies are published to ReplySubject, kept by the stream
	// ReplyStream (created when missing) and read by the durable consumer
	// ReplyConsumer.
	JetStream     jetstream.JetStream
	ReplyStream   string
	ReplySubject  string
	ReplyConsumer string
	// EngineID names this engine in the store: the owner of the instances
	// it runs. DefaultConfig makes one from the host name, the process ID
	// and a random suffix.
	EngineID string
	// LeaseTTL is how long an engine's hold on an instance lasts without
	// renewal; the engine renews it every LeaseTTL/3. When an engine dies,
	// another engine on the same store takes its instances over once their
	// leases ran out.
	LeaseTTL time.Duration
	// RecoveryInterval is how often the engine looks for instances whose
	// lease ran out, to take them over.
	RecoveryInterval time.Duration
	// Logger receives the engine's logs; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a Config with a ten-minute transaction timeout (the
// coordinator's default maximum), compensation backoff from 100ms to 10s, a
// generated EngineID, 30s leases and a recovery pass every 10s. DB (and the NATS fields, for NATS
// steps) are left for the caller.
func DefaultConfig() Config {
	return Config{
		Application:              "gtx-saga",
		TxTimeout:                10 * time.Minute,
		CompensationRetryInitial: 100 * time.Millisecond,
		CompensationRetryMax:     10 * time.Second,
		ReplyConsumer:            "gtx-saga-engine",
		EngineID:                 defaultEngineID(),
		LeaseTTL:                 30 * time.Second,
		RecoveryInterval:         10 * time.Second,
	}
}

func defaultEngineID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "engine"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), newID()[:8])
}

// Validate reports the first problem with c, as an error matching
// ErrInvalidConfig.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.DB == nil:
		return bad("DB is nil: give a *gorm.DB for the instances")
	case c.Coordinator != nil && c.Application == "":
		return bad("Application is empty: name the service for the coordinator")
	case c.TxTimeout <= 0:
		return bad("TxTimeout must be positive, got %v", c.TxTimeout)
	case c.CompensationRetryInitial <= 0 || c.CompensationRetryMax < c.CompensationRetryInitial:
		return bad("need 0 < CompensationRetryInitial <= CompensationRetryMax, got %v and %v", c.CompensationRetryInitial, c.CompensationRetryMax)
	case c.JetStream != nil && (c.ReplyStream == "" || c.ReplySubject == "" || c.ReplyConsumer == ""):
		return bad("with JetStream set, ReplyStream, ReplySubject and ReplyConsumer must be set too")
	case c.EngineID == "":
		return bad("EngineID is empty: start from DefaultConfig, which generates one")
	case c.LeaseTTL < 30*time.Millisecond:
		return bad("LeaseTTL must be at least 30ms, got %v", c.LeaseTTL)
	case c.RecoveryInterval <= 0:
		return bad("RecoveryInterval must be positive, got %v", c.RecoveryInterval)
	}
	return nil
}

// Engine runs state-machine instances, persists every step, compensates,
// and resumes unfinished instances when it starts. It is safe for
// concurrent use.
type Engine struct {
	cfg   Config
	log   *slog.Logger
	store *store

	mu       sync.Mutex
	defs     map[string]*Definition
	services map[string]Service
	async    map[string]AsyncService
	running  map[string]chan struct{} // root instance ID -> closed when its runner ends
	waiters  map[string]chan struct{} // execution key -> notified when a reply lands
	started  bool
	closed   bool

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	cons   jetstream.ConsumeContext
}

// New returns an Engine for cfg. Register definitions and services, then
// call Start.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Engine{
		cfg: cfg, log: log.With("component", "statemachine"), store: &store{db: cfg.DB},
		defs: map[string]*Definition{}, services: map[string]Service{}, async: map[string]AsyncService{},
		running: map[string]chan struct{}{}, waiters: map[string]chan struct{}{},
		ctx: ctx, cancel: cancel,
	}, nil
}

// Register adds a validated definition (see Parse). Registering a name
// again replaces the definition for new instances and for the states
// instances reach from then on.
func (e *Engine) Register(d *Definition) error {
	if d == nil {
		return fmt.Errorf("%w: nil definition", ErrInvalidDefinition)
	}
	if err := d.Validate(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.defs[d.Name] = d
	return nil
}

// RegisterService makes s the service ServiceTask states call by name.
func (e *Engine) RegisterService(name string, s Service) error {
	if name == "" || s == nil {
		return fmt.Errorf("%w: a service needs a name and a value", ErrInvalidConfig)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.services[name] = s
	return nil
}

// RegisterAsyncService makes s the asynchronous service ServiceTask states
// call by name; its results come back as replies (see NATS), so the Config
// needs the JetStream fields.
func (e *Engine) RegisterAsyncService(name string, s AsyncService) error {
	if name == "" || s == nil {
		return fmt.Errorf("%w: a service needs a name and a value", ErrInvalidConfig)
	}
	if e.cfg.JetStream == nil {
		return fmt.Errorf("%w: asynchronous service %q needs Config.JetStream for its replies", ErrInvalidConfig, name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.async[name] = s
	return nil
}

// Start migrates the store, starts reading NATS replies, and takes over
// every unfinished instance no engine holds (one whose engine closed, or
// died LeaseTTL ago), resuming it by its definition's RecoverStrategy; it
// keeps doing so every RecoveryInterval. Register the definitions and
// services those instances use before Start. An engine runs instances until
// Close. Several engines may share a store: each instance is run by the one
// holding its lease.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	if e.started {
		e.mu.Unlock()
		return fmt.Errorf("%w: Start called twice", ErrInvalidConfig)
	}
	e.started = true
	e.mu.Unlock()
	if err := Migrate(ctx, e.cfg.DB); err != nil {
		return err
	}
	if e.cfg.JetStream != nil {
		if err := e.consumeReplies(ctx); err != nil {
			return err
		}
	}
	if err := e.recover(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.wg.Add(1)
	go e.maintain()
	return nil
}

// recover takes over the instances whose lease ran out.
func (e *Engine) recover(ctx context.Context) error {
	for {
		rows, err := e.store.orphans(ctx, recoverBatch)
		if err != nil {
			return fmt.Errorf("statemachine: list instances to take over: %w", err)
		}
		taken := 0
		for i := range rows {
			inst := &rows[i]
			ok, err := e.store.claim(ctx, inst, e.cfg.EngineID, e.cfg.LeaseTTL)
			if err != nil {
				return fmt.Errorf("statemachine: take over instance %s: %w", inst.ID, err)
			}
			if ok {
				taken++
				e.log.Info("resuming an instance", "instance", inst.ID, "machine", inst.Machine, "status", inst.Status, "state", inst.CurrentState)
				e.spawn(inst, inst.Status == StatusRunning)
			}
		}
		if len(rows) < recoverBatch || taken == 0 {
			return nil
		}
	}
}

// recoverBatch is how many instances a recovery pass reads at a time.
const recoverBatch = 100

// maintain renews this engine's leases every LeaseTTL/3 and takes over
// orphaned instances every RecoveryInterval, until Close.
func (e *Engine) maintain() {
	defer e.wg.Done()
	renew := time.NewTicker(e.cfg.LeaseTTL / 3)
	defer renew.Stop()
	recovery := time.NewTicker(e.cfg.RecoveryInterval)
	defer recovery.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-renew.C:
			if err := e.store.renew(e.ctx, e.cfg.EngineID, e.cfg.LeaseTTL); err != nil && e.ctx.Err() == nil {
				e.log.Warn("renewing leases failed", "err", err)
			}
		case <-recovery.C:
			if err := e.recover(e.ctx); err != nil && e.ctx.Err() == nil {
				e.log.Warn("recovery pass failed", "err", err)
			}
		}
	}
}

// Close stops the engine: running instances stop where they are, with
// their progress stored, to be resumed by the next Start on the same store.
// Close waits for them.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	started, cons := e.started, e.cons
	e.mu.Unlock()
	e.cancel()
	if cons != nil {
		cons.Stop()
		<-cons.Closed()
	}
	e.wg.Wait()
	if !started {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.store.release(ctx, e.cfg.EngineID); err != nil {
		return fmt.Errorf("statemachine: release leases (other engines take the instances over when they run out): %w", err)
	}
	return nil
}

// Instance is a snapshot of a state-machine instance.
type Instance struct {
	ID      string
	Machine string
	XID     string
	// Status is StatusRunning, StatusCompensating, StatusSucceeded or
	// StatusFailed.
	Status string
	// Context holds the instance's variables.
	Context      map[string]any
	ErrorCode    string
	ErrorMessage string
	// Executions lists the state executions in the order they started.
	Executions []Execution
}

// Execution is one execution of a task or a SubStateMachine state.
type Execution struct {
	State        string
	Compensation bool
	Status       string
	Key          string
	Attempts     int
	Compensated  bool
	ErrorCode    string
}

// Run starts an instance of the definition machine with input as its
// context, and waits for it to end. It returns the instance, and a
// *FailedError when it failed.
func (e *Engine) Run(ctx context.Context, machine string, input map[string]any) (*Instance, error) {
	id, err := e.StartInstance(ctx, machine, input)
	if err != nil {
		return nil, err
	}
	return e.Wait(ctx, id)
}

// StartInstance starts an instance of machine with input as its context
// and returns its ID at once; the engine runs it in the background.
func (e *Engine) StartInstance(ctx context.Context, machine string, input map[string]any) (string, error) {
	e.mu.Lock()
	def, ok := e.defs[machine]
	started, closed := e.started, e.closed
	e.mu.Unlock()
	switch {
	case closed:
		return "", ErrClosed
	case !started:
		return "", ErrNotStarted
	case !ok:
		return "", fmt.Errorf("%w: %q; register it first", ErrUnknownDefinition, machine)
	}
	vars, err := json.Marshal(nonNil(input))
	if err != nil {
		return "", fmt.Errorf("statemachine: input of %q is not JSON: %w", machine, err)
	}
	id := newID()
	xid := "sm:" + id
	if e.cfg.Coordinator != nil {
		resp, err := e.cfg.Coordinator.Begin(ctx, &tcv1.BeginRequest{Name: machine, TimeoutMs: e.cfg.TxTimeout.Milliseconds(), Application: e.cfg.Application})
		if err != nil {
			return "", fmt.Errorf("statemachine: begin a global transaction for %q: %w", machine, err)
		}
		xid = resp.GetXid()
	}
	inst := &instanceRow{ID: id, Machine: def.Name, XID: xid, Status: StatusRunning, CurrentState: def.StartState, NextSeq: 1, Context: string(vars),
		Owner: e.cfg.EngineID, LeaseUntil: nowMs() + e.cfg.LeaseTTL.Milliseconds()}
	if err := e.store.createInstance(ctx, inst); err != nil {
		return "", fmt.Errorf("statemachine: store instance of %q: %w", machine, err)
	}
	e.spawn(inst, false)
	return id, nil
}

func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// spawn runs inst in a goroutine owned by the engine.
func (e *Engine) spawn(inst *instanceRow, recovering bool) {
	e.mu.Lock()
	if e.closed || e.running[inst.ID] != nil {
		e.mu.Unlock()
		return
	}
	done := make(chan struct{})
	e.running[inst.ID] = done
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		defer func() {
			e.mu.Lock()
			delete(e.running, inst.ID)
			e.mu.Unlock()
			close(done)
		}()
		e.run(inst, recovering)
	}()
}

// run drives inst until it ends or the engine closes. A failure to store
// progress (the database unreachable, a definition missing) stops the
// instance where it is; it is loaded again from the store and carried on
// after a backoff, a task in flight running again with its key.
func (e *Engine) run(inst *instanceRow, recovering bool) {
	wait := time.Second
	for {
		err := e.drive(e.ctx, inst, recovering)
		if err == nil || e.ctx.Err() != nil {
			return
		}
		if errors.Is(err, errLostLease) {
			e.log.Warn("instance taken over by another engine", "instance", inst.ID, "machine", inst.Machine, "xid", inst.XID)
			return
		}
		e.log.Error("instance stopped; retrying", "instance", inst.ID, "machine", inst.Machine, "xid", inst.XID, "in", wait, "err", err)
		if sleep(e.ctx, wait) != nil {
			return
		}
		wait = min(2*wait, 30*time.Second)
		if fresh, err := e.store.instance(e.ctx, inst.ID); err == nil {
			inst, recovering = fresh, false
		}
	}
}

// Wait waits until the instance id ends and returns it, with a
// *FailedError when it failed. It returns ErrClosed when the engine closes
// first.
func (e *Engine) Wait(ctx context.Context, id string) (*Instance, error) {
	for {
		e.mu.Lock()
		done := e.running[id]
		e.mu.Unlock()
		if done != nil {
			select {
			case <-done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		inst, err := e.Instance(ctx, id)
		if err != nil {
			return nil, err
		}
		switch inst.Status {
		case StatusSucceeded:
			return inst, nil
		case StatusFailed:
			return inst, &FailedError{InstanceID: id, Code: inst.ErrorCode, Message: inst.ErrorMessage}
		}
		if e.ctx.Err() != nil {
			return inst, ErrClosed
		}
		if done == nil {
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
}

// Instance returns the stored state of the instance id.
func (e *Engine) Instance(ctx context.Context, id string) (*Instance, error) {
	r, err := e.store.instance(ctx, id)
	if err != nil {
		return nil, err
	}
	inst := &Instance{ID: r.ID, Machine: r.Machine, XID: r.XID, Status: r.Status, ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage}
	if err := json.Unmarshal([]byte(r.Context), &inst.Context); err != nil {
		return nil, fmt.Errorf("statemachine: instance %s: stored context: %w", id, err)
	}
	rows, err := e.store.execs(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, x := range rows {
		inst.Executions = append(inst.Executions, Execution{State: x.Name, Compensation: x.Compensation, Status: x.Status, Key: x.Key, Attempts: x.Attempts, Compensated: x.Compensated, ErrorCode: x.ErrorCode})
	}
	return inst, nil
}

func (e *Engine) definition(name string) (*Definition, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.defs[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q; register it before Start", ErrUnknownDefinition, name)
	}
	return d, nil
}

// errStopped says the engine is closing; the runner leaves the instance
// where it is.
var errStopped = errors.New("statemachine: engine stopping")
