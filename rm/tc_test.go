package rm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// fakeTC is an in-memory coordinator for the RM side of the protocol: the
// test double of our own service, served over a real loopback gRPC listener.
type fakeTC struct {
	tcv1.UnimplementedCoordinatorServer
	id string

	mu sync.Mutex
	// announced is every resource announced, by Hello or add_resource.
	announced map[resource]bool
	hellos    int
	peer      *peer
	results   map[int64]*tcv1.BranchResult
	// changed is closed and replaced on every change above.
	changed chan struct{}

	// register answers RegisterBranch; nil hands out branch IDs.
	register   func(*tcv1.RegisterBranchRequest) (*tcv1.RegisterBranchResponse, error)
	registered []*tcv1.RegisterBranchRequest
	nextBranch int64
}

type peer struct {
	mu     sync.Mutex
	stream tcv1.Coordinator_AttachServer
}

func newFakeTC(id string) *fakeTC {
	return &fakeTC{id: id, announced: map[resource]bool{}, results: map[int64]*tcv1.BranchResult{}, changed: make(chan struct{})}
}

func (f *fakeTC) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeTC) Attach(stream tcv1.Coordinator_AttachServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return fmt.Errorf("fake tc: first message is %T, want hello", first.GetMsg())
	}
	p := &peer{stream: stream}
	p.mu.Lock()
	err = stream.Send(&tcv1.AttachResponse{Msg: &tcv1.AttachResponse_Welcome{Welcome: &tcv1.Welcome{ServerId: f.id}}})
	p.mu.Unlock()
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.hellos++
	for _, r := range hello.GetResources() {
		f.announced[resource{r.GetResourceId(), r.GetBranchType()}] = true
	}
	f.peer = p
	f.notifyLocked()
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		if f.peer == p {
			f.peer = nil
			f.notifyLocked()
		}
		f.mu.Unlock()
	}()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		f.mu.Lock()
		switch {
		case msg.GetResult() != nil:
			f.results[msg.GetResult().GetRequestId()] = msg.GetResult()
		case msg.GetAddResource() != nil:
			r := msg.GetAddResource()
			f.announced[resource{r.GetResourceId(), r.GetBranchType()}] = true
		}
		f.notifyLocked()
		f.mu.Unlock()
	}
}

func (f *fakeTC) RegisterBranch(_ context.Context, r *tcv1.RegisterBranchRequest) (*tcv1.RegisterBranchResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registered = append(f.registered, r)
	if f.register != nil {
		return f.register(r)
	}
	f.nextBranch++
	return &tcv1.RegisterBranchResponse{BranchId: f.nextBranch}, nil
}

func (f *fakeTC) ReportBranch(_ context.Context, r *tcv1.ReportBranchRequest) (*tcv1.ReportBranchResponse, error) {
	return &tcv1.ReportBranchResponse{}, nil
}

// waitFor waits until cond, called with f.mu held, is true.
func (f *fakeTC) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("fake tc %s: gave up waiting for %s", f.id, what)
		case <-ch:
		}
	}
}

// send sends cmd to the attached RM and returns its result.
func (f *fakeTC) send(t testing.TB, cmd *tcv1.BranchCommand) *tcv1.BranchResult {
	t.Helper()
	f.start(t, cmd)
	return f.result(t, cmd.GetRequestId())
}

func (f *fakeTC) start(t testing.TB, cmd *tcv1.BranchCommand) {
	t.Helper()
	var p *peer
	f.waitFor(t, "an attached RM", func() bool { p = f.peer; return p != nil })
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stream.Send(&tcv1.AttachResponse{Msg: &tcv1.AttachResponse_Command{Command: cmd}}); err != nil {
		t.Fatalf("send command: %v", err)
	}
}

func (f *fakeTC) result(t testing.TB, requestID int64) *tcv1.BranchResult {
	t.Helper()
	var r *tcv1.BranchResult
	f.waitFor(t, fmt.Sprintf("result %d", requestID), func() bool { r = f.results[requestID]; return r != nil })
	return r
}

func (f *fakeTC) waitAnnounced(t testing.TB, want ...resource) {
	t.Helper()
	f.waitFor(t, fmt.Sprintf("resources %v", want), func() bool {
		for _, r := range want {
			if !f.announced[r] {
				return false
			}
		}
		return true
	})
}

// tcServer serves a fakeTC on a loopback address; it can be stopped and a
// new server started on the same address.
type tcServer struct {
	t    testing.TB
	addr string
	mu   sync.Mutex
	srv  *grpc.Server
	done chan struct{}
}

func startTC(t testing.TB, fake *fakeTC) *tcServer {
	t.Helper()
	s := &tcServer{t: t, addr: "127.0.0.1:0"}
	s.start(fake)
	t.Cleanup(s.stop)
	return s
}

func (s *tcServer) start(fake *fakeTC) {
	s.t.Helper()
	lis, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("listen: %v", err)
	}
	s.addr = lis.Addr().String()
	srv := grpc.NewServer()
	tcv1.RegisterCoordinatorServer(srv, fake)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	s.mu.Lock()
	s.srv, s.done = srv, done
	s.mu.Unlock()
}

func (s *tcServer) stop() {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Stop()
		<-done
	}
}

func dial(t testing.TB, addr string) tcv1.CoordinatorClient {
	t.Helper()
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return tcv1.NewCoordinatorClient(conn)
}

// newManager returns a started Manager attached to the given coordinators,
// closed when the test ends.
func newManager(t testing.TB, clients []tcv1.CoordinatorClient, edit func(*Config), setup func(*Manager)) *Manager {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Application = "rm-test"
	cfg.Coordinators = clients
	cfg.ReconnectInitial = 10 * time.Millisecond
	cfg.ReconnectMax = 200 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if edit != nil {
		edit(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if setup != nil {
		setup(m)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.WaitAttached(ctx); err != nil {
		t.Fatalf("WaitAttached: %v", err)
	}
	return m
}
