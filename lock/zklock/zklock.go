package zklock

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gtx-io/gtx/lock"
)

// Config configures a Backend.
type Config struct {
	// Root is the node under which lock names live; it is created when
	// missing. Empty means "/gtx/locks".
	Root string
	// SessionTimeout is the session timeout the connection was made with
	// (zk.Connect), and that the servers accept (between their
	// minSessionTimeout and maxSessionTimeout, by default 2 and 20 tick
	// times): a holder's lock lives as long as its session. Must be
	// positive.
	SessionTimeout time.Duration
}

// maxEpochZxid is the first zxid above what a lock.Grant can carry.
const maxZxid = 1 << 47

// Backend is a lock.Backend on ZooKeeper. See the package documentation.
type Backend struct {
	conn    *zk.Conn
	root    string
	session time.Duration

	mu      sync.Mutex
	nodes   map[holding]*node // the contenders' nodes, while they exist
	waiters map[holding]chan<- struct{}
	closed  bool
	calls   sync.WaitGroup // ZooKeeper calls and watches, waited for by Close
	done    chan struct{}
}

// holding is a lock name and a contender's token.
type holding struct{ name, token string }

// node is the node of one contender.
type node struct {
	path    string
	session int64
	held    bool
}

var _ lock.Backend = (*Backend)(nil)

var errClosed = errors.New("zklock: backend closed")

// New returns a Backend that keeps locks in ZooKeeper through conn. Close
// it to stop its watches; conn stays open (closing conn ends the session
// and with it every lock of this Backend).
func New(conn *zk.Conn, cfg Config) (*Backend, error) {
	if conn == nil {
		return nil, fmt.Errorf("%w: nil zookeeper connection", lock.ErrInvalidConfig)
	}
	if cfg.SessionTimeout <= 0 {
		return nil, fmt.Errorf("%w: zklock SessionTimeout must be the positive session timeout given to zk.Connect, got %v", lock.ErrInvalidConfig, cfg.SessionTimeout)
	}
	root := cfg.Root
	if root == "" {
		root = "/gtx/locks"
	}
	if !strings.HasPrefix(root, "/") || (len(root) > 1 && strings.HasSuffix(root, "/")) {
		return nil, fmt.Errorf("%w: zklock Root must start with / and not end with one, got %q", lock.ErrInvalidConfig, root)
	}
	return &Backend{
		conn:    conn,
		root:    strings.TrimSuffix(root, "/"),
		session: cfg.SessionTimeout,
		nodes:   make(map[holding]*node),
		waiters: make(map[holding]chan<- struct{}),
		done:    make(chan struct{}),
	}, nil
}

// Close stops the watches of waiters and waits for calls in flight.
func (b *Backend) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
	b.mu.Unlock()
	b.calls.Wait()
	return nil
}

// dir is the node of one lock name.
func (b *Backend) dir(name string) string { return b.root + "/" + url.PathEscape(name) }

// call runs fn, a blocking ZooKeeper call, and returns its error, or ctx's
// when ctx ends first (fn then finishes in the background, and Close waits
// for it).
func (b *Backend) call(ctx context.Context, fn func() error) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errClosed
	}
	b.calls.Add(1)
	b.mu.Unlock()
	res := make(chan error, 1)
	go func() {
		defer b.calls.Done()
		res <- fn()
	}()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// create makes the contender's node for token, creating the name's node
// and the root when they are missing.
func (b *Backend) create(name, token string) (string, error) {
	dir := b.dir(name)
	acl := zk.WorldACL(zk.PermAll)
	for {
		p, err := b.conn.Create(dir+"/lock-", []byte(token), zk.FlagEphemeral|zk.FlagSequence, acl)
		if !errors.Is(err, zk.ErrNoNode) {
			return p, err
		}
		if err := b.mkdirs(dir); err != nil {
			return "", err
		}
	}
}

// mkdirs creates dir and its parents as persistent nodes. They are never
// deleted by the Backend.
func (b *Backend) mkdirs(dir string) error {
	parts := strings.Split(strings.TrimPrefix(dir, "/"), "/")
	p := ""
	for _, part := range parts {
		p += "/" + part
		if _, err := b.conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	return nil
}

// sequence returns the sequence number of a contender's node name.
func sequence(child string) string {
	if i := strings.LastIndex(child, "-"); i >= 0 {
		return child[i+1:]
	}
	return child
}

// Acquire implements lock.Backend. The ttl is not used: the lock lives as
// long as the session; the validity is the shorter of ttl and the session
// timeout.
func (b *Backend) Acquire(ctx context.Context, name, token string, ttl time.Duration) (lock.Grant, error) {
	var g lock.Grant
	err := b.call(ctx, func() error {
		var err error
		g, err = b.acquire(name, token, ttl)
		return err
	})
	if err != nil {
		return lock.Grant{}, fmt.Errorf("zklock: acquire %q: %w", name, err)
	}
	return g, nil
}

func (b *Backend) acquire(name, token string, ttl time.Duration) (lock.Grant, error) {
	session := b.conn.SessionID()
	b.mu.Lock()
	n := b.nodes[holding{name, token}]
	released, waiting := b.waiters[holding{name, token}]
	b.mu.Unlock()
	if n != nil && n.session != session {
		// The session that made the node expired: the node is gone.
		n = nil
	}
	if n == nil {
		p, err := b.create(name, token)
		if err != nil {
			return lock.Grant{}, err
		}
		n = &node{path: p, session: session}
		b.mu.Lock()
		b.nodes[holding{name, token}] = n
		b.mu.Unlock()
	}
	children, _, err := b.conn.Children(b.dir(name))
	if err != nil {
		return lock.Grant{}, err
	}
	slices.SortFunc(children, func(a, c string) int { return strings.Compare(sequence(a), sequence(c)) })
	mine := n.path[strings.LastIndex(n.path, "/")+1:]
	i := slices.Index(children, mine)
	if i < 0 {
		b.forget(name, token)
		return lock.Grant{}, errors.New("the contender's node vanished (session expired?)")
	}
	if i == 0 {
		ok, st, err := b.conn.Exists(n.path)
		if err != nil {
			return lock.Grant{}, err
		}
		if !ok || st.EphemeralOwner != session {
			b.forget(name, token)
			return lock.Grant{}, errors.New("the contender's node vanished (session expired?)")
		}
		if st.Czxid >= maxZxid {
			_ = b.conn.Delete(n.path, -1)
			b.forget(name, token)
			return lock.Grant{}, fmt.Errorf("the node's zxid %#x is beyond the 2^47 a fence can carry (leader epoch above 32767)", st.Czxid)
		}
		b.mu.Lock()
		n.held = true
		b.mu.Unlock()
		return lock.Grant{Acquired: true, Fence: st.Czxid, Validity: min(ttl, b.session)}, nil
	}
	if !waiting {
		// Not waiting (TryLock, or before Watch): leave the queue.
		b.forget(name, token)
		return lock.Grant{}, b.conn.Delete(n.path, -1)
	}
	// Watch the node just before ours only; when it goes, it is our turn
	// (or the turn of the next node, which watches it in turn).
	ok, _, ev, err := b.conn.ExistsW(b.dir(name) + "/" + children[i-1])
	if err != nil {
		return lock.Grant{}, err
	}
	if !ok {
		notify(released)
		return lock.Grant{}, nil
	}
	b.calls.Add(1)
	go func() {
		defer b.calls.Done()
		select {
		case <-ev:
			notify(released)
		case <-b.done:
		}
	}()
	return lock.Grant{}, nil
}

func notify(released chan<- struct{}) {
	select {
	case released <- struct{}{}:
	default:
	}
}

func (b *Backend) forget(name, token string) {
	b.mu.Lock()
	delete(b.nodes, holding{name, token})
	b.mu.Unlock()
}

// held returns the node of the lock token holds in the current session.
func (b *Backend) held(name, token string) (*node, bool) {
	b.mu.Lock()
	n := b.nodes[holding{name, token}]
	b.mu.Unlock()
	if n == nil || !n.held || n.session != b.conn.SessionID() {
		return nil, false
	}
	return n, true
}

// Renew implements lock.Backend: it checks that token's node still exists
// in the current session, which proves the session alive when the check
// was sent.
func (b *Backend) Renew(ctx context.Context, name, token string, ttl time.Duration) (time.Duration, error) {
	n, ok := b.held(name, token)
	if !ok {
		return 0, lock.ErrNotHeld
	}
	var (
		exists bool
		st     *zk.Stat
	)
	err := b.call(ctx, func() error {
		var err error
		exists, st, err = b.conn.Exists(n.path)
		return err
	})
	switch {
	case err != nil:
		return 0, fmt.Errorf("zklock: renew %q: %w", name, err)
	case !exists || st.EphemeralOwner != n.session:
		b.forget(name, token)
		return 0, lock.ErrNotHeld
	}
	return min(ttl, b.session), nil
}

// Release implements lock.Backend: it deletes token's node, which wakes
// the next waiter's watch. It reports contention as unknown (true).
func (b *Backend) Release(ctx context.Context, name, token string) (bool, error) {
	n, ok := b.held(name, token)
	if !ok {
		return false, lock.ErrNotHeld
	}
	err := b.call(ctx, func() error { return b.conn.Delete(n.path, -1) })
	switch {
	case errors.Is(err, zk.ErrNoNode):
		b.forget(name, token)
		return false, lock.ErrNotHeld
	case err != nil:
		return false, fmt.Errorf("zklock: release %q: %w", name, err)
	}
	b.forget(name, token)
	return true, nil
}

// Watch implements lock.Backend: it makes token a waiter, whose node stays
// in the queue between attempts and whose attempts watch the node before
// it. stop deletes the node unless it holds the lock.
func (b *Backend) Watch(ctx context.Context, name, token string, released chan<- struct{}) (func(), error) {
	b.mu.Lock()
	b.waiters[holding{name, token}] = released
	b.mu.Unlock()
	return sync.OnceFunc(func() {
		b.mu.Lock()
		delete(b.waiters, holding{name, token})
		n := b.nodes[holding{name, token}]
		if n != nil && !n.held {
			delete(b.nodes, holding{name, token})
		} else {
			n = nil
		}
		b.mu.Unlock()
		if n != nil {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.session)
			defer cancel()
			_ = b.call(ctx, func() error { return b.conn.Delete(n.path, -1) })
		}
	}), nil
}
