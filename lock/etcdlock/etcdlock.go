package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gtx-io/gtx/lock"
)

// Config configures a Backend.
type Config struct {
	// Prefix starts every key. Empty means "gtx/lock/".
	Prefix string
}

// Backend is a lock.Backend on etcd. See the package documentation.
type Backend struct {
	cli    *clientv3.Client
	prefix string

	mu     sync.Mutex
	leases map[holding]clientv3.LeaseID // while the token holds the name
	ctx    context.Context              // ends with Close; bounds the watches
	stop   context.CancelFunc
	wg     sync.WaitGroup // watch goroutines
}

// holding is a lock name and the token holding it.
type holding struct{ name, token string }

var _ lock.Backend = (*Backend)(nil)

// New returns a Backend that keeps locks in etcd through cli. Close it to
// stop its watches; cli stays open.
func New(cli *clientv3.Client, cfg Config) (*Backend, error) {
	if cli == nil {
		return nil, fmt.Errorf("%w: nil etcd client", lock.ErrInvalidConfig)
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = "gtx/lock/"
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Backend{cli: cli, prefix: prefix, leases: make(map[holding]clientv3.LeaseID), ctx: ctx, stop: stop}, nil
}

// Close stops the watches of waiters and waits for them.
func (b *Backend) Close() error {
	b.stop()
	b.wg.Wait()
	return nil
}

// seconds rounds ttl up to whole seconds, as etcd counts lease TTLs.
func seconds(ttl time.Duration) int64 {
	return max(1, int64((ttl+time.Second-1)/time.Second))
}

// Acquire implements lock.Backend.
func (b *Backend) Acquire(ctx context.Context, name, token string, ttl time.Duration) (lock.Grant, error) {
	key := b.prefix + name
	lease, err := b.cli.Grant(ctx, seconds(ttl))
	if err != nil {
		return lock.Grant{}, fmt.Errorf("etcdlock: acquire %q: grant lease: %w", name, err)
	}
	resp, err := b.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, token, clientv3.WithLease(lease.ID))).
		Commit()
	if err != nil || !resp.Succeeded {
		b.revoke(ctx, lease.ID)
		if err != nil {
			return lock.Grant{}, fmt.Errorf("etcdlock: acquire %q: %w", name, err)
		}
		return lock.Grant{}, nil
	}
	b.mu.Lock()
	b.leases[holding{name, token}] = lease.ID
	b.mu.Unlock()
	validity := min(ttl, time.Duration(lease.TTL)*time.Second)
	return lock.Grant{Acquired: true, Fence: resp.Header.Revision, Validity: validity}, nil
}

// revoke ends a lease, bounded by a second; a lease that cannot be revoked
// expires after its TTL.
func (b *Backend) revoke(ctx context.Context, id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_, _ = b.cli.Revoke(ctx, id)
}

func (b *Backend) lease(name, token string) (clientv3.LeaseID, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id, ok := b.leases[holding{name, token}]
	return id, ok
}

// Renew implements lock.Backend: one keep-alive of the holder's lease,
// then a check that the key still holds the token.
func (b *Backend) Renew(ctx context.Context, name, token string, ttl time.Duration) (time.Duration, error) {
	id, ok := b.lease(name, token)
	if !ok {
		return 0, lock.ErrNotHeld
	}
	ka, err := b.cli.KeepAliveOnce(ctx, id)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		b.forget(name, token)
		return 0, lock.ErrNotHeld
	}
	if err != nil {
		return 0, fmt.Errorf("etcdlock: renew %q: %w", name, err)
	}
	key := b.prefix + name
	resp, err := b.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", token), clientv3.Compare(clientv3.LeaseValue(key), "=", id)).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("etcdlock: renew %q: %w", name, err)
	}
	if !resp.Succeeded {
		b.forget(name, token)
		b.revoke(ctx, id)
		return 0, lock.ErrNotHeld
	}
	return min(ttl, time.Duration(ka.TTL)*time.Second), nil
}

func (b *Backend) forget(name, token string) {
	b.mu.Lock()
	delete(b.leases, holding{name, token})
	b.mu.Unlock()
}

// Release implements lock.Backend: it deletes the key if it holds token,
// which wakes the waiters' watches, and revokes the lease. It reports
// contention as unknown (true).
func (b *Backend) Release(ctx context.Context, name, token string) (bool, error) {
	id, ok := b.lease(name, token)
	if !ok {
		return false, lock.ErrNotHeld
	}
	key := b.prefix + name
	resp, err := b.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", token), clientv3.Compare(clientv3.LeaseValue(key), "=", id)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return false, fmt.Errorf("etcdlock: release %q: %w", name, err)
	}
	b.forget(name, token)
	b.revoke(ctx, id)
	if !resp.Succeeded {
		return false, lock.ErrNotHeld
	}
	return true, nil
}

// Watch implements lock.Backend: it watches the key for deletions, from
// the revision of its first read, so none is missed between the waiter's
// attempt and the watch.
func (b *Backend) Watch(ctx context.Context, name, token string, released chan<- struct{}) (func(), error) {
	key := b.prefix + name
	get, err := b.cli.Get(ctx, key, clientv3.WithKeysOnly())
	if err != nil {
		return func() {}, fmt.Errorf("etcdlock: watch %q: %w", name, err)
	}
	wctx, cancel := context.WithCancel(b.ctx)
	ch := b.cli.Watch(clientv3.WithRequireLeader(wctx), key, clientv3.WithRev(get.Header.Revision+1), clientv3.WithFilterPut())
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for resp := range ch {
			if len(resp.Events) > 0 || resp.Err() != nil {
				select {
				case released <- struct{}{}:
				default:
				}
			}
		}
	}()
	return cancel, nil
}
