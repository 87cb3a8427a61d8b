package redislock_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx/lock"
	"github.com/gtx-io/gtx/lock/redislock"
)

// server is a redis-server subprocess on its own port.
type server struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startServer(t *testing.T) *server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	s := &server{t: t, port: freePort(t)}
	t.Cleanup(s.stop) // also when start gives up on a server it started
	s.start()
	return s
}

func (s *server) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *server) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.addr()})
	defer rdb.Close()
	for range 200 {
		if rdb.Ping(context.Background()).Err() == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("redis-server on %s did not start", s.addr())
}

func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// cluster is five independent servers, and a lock client over them.
type cluster struct {
	servers []*server
	nodes   []redis.UniversalClient
}

func newCluster(t *testing.T) *cluster {
	c := &cluster{}
	for range 5 {
		s := startServer(t)
		c.servers = append(c.servers, s)
		rdb := redis.NewClient(&redis.Options{
			Addr:                  s.addr(),
			DialTimeout:           100 * time.Millisecond,
			DialerRetries:         1,
			MaxRetries:            -1,
			ContextTimeoutEnabled: true,
		})
		t.Cleanup(func() { _ = rdb.Close() })
		c.nodes = append(c.nodes, rdb)
	}
	return c
}

func (c *cluster) client(t *testing.T, cfg lock.Config) *lock.Client {
	t.Helper()
	// A generous node timeout: the test machine may be loaded.
	r, err := redislock.NewRedLock(c.nodes, redislock.RedLockConfig{NodeTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l, err := lock.New(r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = l.Close(context.Background())
		_ = r.Close()
	})
	return l
}

func TestRedLockQuorum(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	cfg := lock.DefaultConfig()
	cfg.TTL = time.Second
	cfg.PollInterval = 20 * time.Millisecond
	locks := c.client(t, cfg)

	steps := []struct {
		alive int
		want  error
	}{
		{5, nil},
		{4, nil},
		{3, nil},
		{2, lock.ErrNotAcquired},
		{1, lock.ErrNotAcquired},
	}
	for _, step := range steps {
		t.Run(fmt.Sprintf("%d alive", step.alive), func(t *testing.T) {
			for i, s := range c.servers {
				if i >= step.alive {
					s.stop()
				}
			}
			name := fmt.Sprintf("q%d", step.alive)
			lease, err := locks.TryLock(ctx, name)
			if !errors.Is(err, step.want) {
				t.Fatalf("TryLock with %d of 5 alive = %v, want %v", step.alive, err, step.want)
			}
			if err != nil {
				return
			}
			if err := lease.Unlock(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A refused acquisition left nothing behind: with the servers back, the
	// lock is free.
	for _, s := range c.servers[1:] {
		s.start()
	}
	lease, err := locks.TryLock(ctx, "q2")
	if err != nil {
		t.Fatalf("TryLock after the servers came back: %v", err)
	}
	if err := lease.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRedLockSurvivesRestart(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	cfg := lock.DefaultConfig()
	cfg.TTL = 1500 * time.Millisecond
	cfg.PollInterval = 20 * time.Millisecond
	a := c.client(t, cfg)
	b := c.client(t, cfg)

	lease, err := a.Lock(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	// Restart one server: it comes back empty.
	c.servers[2].stop()
	c.servers[2].start()
	// Hold through several renewals.
	deadline := time.Now().Add(3 * cfg.TTL)
	for time.Now().Before(deadline) {
		if _, err := b.TryLock(ctx, "r"); !errors.Is(err, lock.ErrNotAcquired) {
			t.Fatalf("another client took a lock held on 4 of 5 nodes: %v", err)
		}
		time.Sleep(cfg.TTL / 4)
	}
	if err := lease.Context().Err(); err != nil {
		t.Fatalf("lease lost across a server restart: %v", context.Cause(lease.Context()))
	}
	if err := lease.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	next, err := b.Lock(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if next.Fence() <= lease.Fence() {
		t.Fatalf("fence after restart %d not above %d", next.Fence(), lease.Fence())
	}
	if err := next.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRedLockMutualExclusion(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	cfg := lock.DefaultConfig()
	cfg.TTL = 2 * time.Second
	cfg.PollInterval = 20 * time.Millisecond
	clients := []*lock.Client{c.client(t, cfg), c.client(t, cfg)}
	var holders, violations atomic.Int32
	errs := make(chan error, 32)
	done := make(chan struct{})
	for i := range 32 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 4 {
				lease, err := clients[i%2].Lock(ctx, "mx")
				if err != nil {
					errs <- err
					return
				}
				if holders.Add(1) != 1 {
					violations.Add(1)
				}
				holders.Add(-1)
				if err := lease.Unlock(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 32 {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := violations.Load(); n != 0 {
		t.Fatalf("%d overlapping holders", n)
	}
}

func TestNewRedLockBadInput(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	tests := []struct {
		name  string
		nodes []redis.UniversalClient
		cfg   redislock.RedLockConfig
	}{
		{"no nodes", nil, redislock.RedLockConfig{}},
		{"nil node", []redis.UniversalClient{rdb, nil}, redislock.RedLockConfig{}},
		{"negative timeout", []redis.UniversalClient{rdb}, redislock.RedLockConfig{NodeTimeout: -1}},
		{"drift of one", []redis.UniversalClient{rdb}, redislock.RedLockConfig{DriftFactor: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := redislock.NewRedLock(tt.nodes, tt.cfg); !errors.Is(err, lock.ErrInvalidConfig) {
				t.Fatalf("NewRedLock = %v, want ErrInvalidConfig", err)
			}
		})
	}
}
