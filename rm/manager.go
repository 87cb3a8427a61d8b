package rm

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// Manager is a resource manager: it registers branches with the
// coordinators and runs their phase 2 through the handlers of its branch
// types. It is safe for concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger
	// workers holds a token per running branch command.
	workers chan struct{}
	// next spreads RegisterBranch and ReportBranch over the coordinators.
	next atomic.Uint64

	mu sync.Mutex
	// resources only grows, so a prefix of it is what an earlier Hello
	// announced.
	resources []resource
	known     map[resource]bool
	handlers  map[tcv1.BranchType]Handler
	// conns are the coordinators: the static ones, then those discovered.
	conns     []*coordinator
	nextIndex int
	ctx       context.Context
	state     state
	cancel    context.CancelFunc
	// changed is closed, and replaced, whenever a coordinator attaches or
	// detaches, or the Manager closes.
	changed chan struct{}
	wg      sync.WaitGroup
}

type state int

const (
	stateNew state = iota
	stateStarted
	stateClosed
)

type resource struct {
	id  string
	typ tcv1.BranchType
}

// coordinator is one coordinator replica and, while attached, its stream.
type coordinator struct {
	index  int
	client tcv1.CoordinatorClient
	// addr is the discovered address; empty for a static coordinator.
	addr string
	// stop ends the attach loop of a discovered coordinator, done closes
	// when it has ended, and closer releases its connection.
	stop   context.CancelFunc
	done   chan struct{}
	closer io.Closer
	// att is the live attachment; guarded by Manager.mu.
	att *attachment
}

// New returns a Manager for cfg. It does not connect until Start.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg.Coordinators = append([]tcv1.CoordinatorClient(nil), cfg.Coordinators...)
	m := &Manager{
		cfg:      cfg,
		log:      log.With("component", "gtx.rm", "client_id", cfg.ClientID),
		workers:  make(chan struct{}, cfg.Workers),
		known:    make(map[resource]bool),
		handlers: make(map[tcv1.BranchType]Handler),
		changed:  make(chan struct{}),
	}
	for i, c := range cfg.Coordinators {
		m.conns = append(m.conns, &coordinator{index: i, client: c})
	}
	m.nextIndex = len(m.conns)
	return m, nil
}

// ClientID returns the Config.ClientID the Manager sends in Hello; give it
// to the process's transaction manager too (tm.Config.ClientID).
func (m *Manager) ClientID() string { return m.cfg.ClientID }

// AddResource registers a resource this instance can run phase 2 for. It is
// announced in the Hello of every attach and, to coordinators already
// attached, at once. Adding a resource twice is a no-op.
func (m *Manager) AddResource(resourceID string, t tcv1.BranchType) error {
	if resourceID == "" {
		return fmt.Errorf("%w: empty resource ID", ErrInvalidArgument)
	}
	if err := validType(t); err != nil {
		return err
	}
	r := resource{id: resourceID, typ: t}
	m.mu.Lock()
	if m.state == stateClosed {
		m.mu.Unlock()
		return ErrClosed
	}
	if m.known[r] {
		m.mu.Unlock()
		return nil
	}
	m.known[r] = true
	m.resources = append(m.resources, r)
	var live []*attachment
	for _, c := range m.conns {
		if c.att != nil {
			live = append(live, c.att)
		}
	}
	m.mu.Unlock()
	for _, a := range live {
		if err := a.send(addResource(r)); err != nil {
			// The stream is broken; the next attach announces r in Hello.
			m.log.Debug("announcing a resource failed", "resource_id", r.id, "coordinator", a.index, "err", err)
		}
	}
	return nil
}

// Handle sets the handler of the branches of type t. Like http.Handle, it
// panics on a nil handler, an unknown type, or a type that has one already.
func (m *Manager) Handle(t tcv1.BranchType, h Handler) {
	if err := validType(t); err != nil {
		panic(err.Error())
	}
	if h == nil {
		panic("rm: nil handler for branch type " + t.String())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.handlers[t] != nil {
		panic("rm: a handler for branch type " + t.String() + " is set already")
	}
	m.handlers[t] = h
}

// Start attaches to every coordinator, each in a goroutine that re-attaches
// with backoff whenever its stream ends. The goroutines run until Close is
// called or ctx is done; once ctx is done the Manager no longer attaches,
// and must still be closed.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.state {
	case stateStarted:
		return ErrStarted
	case stateClosed:
		return ErrClosed
	}
	ctx, m.cancel = context.WithCancel(ctx)
	m.ctx = ctx
	m.state = stateStarted
	for _, c := range m.conns {
		m.wg.Add(1)
		go m.attachLoop(ctx, c)
	}
	if m.cfg.Discovery != nil {
		m.wg.Add(1)
		go m.discover(ctx)
	}
	return nil
}

// Close stops attaching, cancels the handlers still running and waits for
// every goroutine of the Manager to end. The coordinators send the commands
// left unanswered to another instance, or to this one when it comes back.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.state == stateClosed {
		m.mu.Unlock()
		return nil
	}
	m.state = stateClosed
	cancel := m.cancel
	m.notifyLocked()
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	m.wg.Wait()
	m.mu.Lock()
	conns := m.conns
	m.conns = nil
	m.mu.Unlock()
	for _, c := range conns {
		c.release(m.log)
	}
	return nil
}

// Ready reports whether the Manager is attached to every coordinator right
// now (with Discovery, to every one found and at least one).
func (m *Manager) Ready() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.readyLocked()
}

func (m *Manager) readyLocked() bool {
	if m.state != stateStarted || len(m.conns) == 0 {
		return false
	}
	for _, c := range m.conns {
		if c.att == nil {
			return false
		}
	}
	return true
}

// WaitAttached waits until the Manager is attached to every coordinator, ctx
// is done, or the Manager is closed (ErrClosed).
func (m *Manager) WaitAttached(ctx context.Context) error {
	for {
		m.mu.Lock()
		if m.state == stateClosed {
			m.mu.Unlock()
			return ErrClosed
		}
		if m.readyLocked() {
			m.mu.Unlock()
			return nil
		}
		changed := m.changed
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("rm: waiting to attach to every coordinator: %w", ctx.Err())
		case <-changed:
		}
	}
}

// notifyLocked wakes the WaitAttached calls. m.mu must be held.
func (m *Manager) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *Manager) handler(t tcv1.BranchType) Handler {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.handlers[t]
}

func (m *Manager) hasResource(id string, t tcv1.BranchType) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.known[resource{id: id, typ: t}]
}

func validType(t tcv1.BranchType) error {
	if _, ok := tcv1.BranchType_name[int32(t)]; !ok || t == tcv1.BranchType_BRANCH_TYPE_UNSPECIFIED {
		return fmt.Errorf("%w: unknown branch type %v", ErrInvalidArgument, t)
	}
	return nil
}
