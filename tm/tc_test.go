package tm

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// fakeTC is a small in-memory coordinator: the test double of our own
// service, served over a real loopback gRPC listener.
type fakeTC struct {
	tcv1.UnimplementedCoordinatorServer

	mu  sync.Mutex
	seq int
	txs map[string]*fakeTx
	// commitTo is the status a commit from BEGIN moves to (COMMITTED when
	// unset).
	commitTo tcv1.GlobalStatus
	// refuse makes Commit and Rollback outside BEGIN answer
	// FailedPrecondition instead of the current status.
	refuse bool
	// drop and lose inject faults per method name: drop fails a call with
	// Unavailable before the handler runs (the request is lost), lose runs
	// the handler and then fails with Unavailable (the answer is lost).
	// Each call consumes one; a negative count never runs out.
	drop, lose map[string]int
	// calls counts handler runs per method name.
	calls map[string]int
}

type fakeTx struct {
	name, app string
	timeoutMS int64
	status    tcv1.GlobalStatus
	reason    string
}

func newFakeTC() *fakeTC {
	return &fakeTC{txs: map[string]*fakeTx{}, drop: map[string]int{}, lose: map[string]int{}, calls: map[string]int{}}
}

func (f *fakeTC) Begin(_ context.Context, r *tcv1.BeginRequest) (*tcv1.BeginResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	xid := fmt.Sprintf("127.0.0.1:8091:%d", f.seq)
	f.txs[xid] = &fakeTx{name: r.GetName(), app: r.GetApplication(), timeoutMS: r.GetTimeoutMs(), status: tcv1.GlobalStatus_BEGIN}
	return &tcv1.BeginResponse{Xid: xid}, nil
}

func (f *fakeTC) Commit(_ context.Context, r *tcv1.CommitRequest) (*tcv1.CommitResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tx, ok := f.txs[r.GetXid()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "fake tc: %s not found", r.GetXid())
	}
	if tx.status == tcv1.GlobalStatus_BEGIN {
		tx.status = tcv1.GlobalStatus_COMMITTED
		if f.commitTo != tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED {
			tx.status = f.commitTo
		}
	} else if f.refuse {
		return nil, status.Errorf(codes.FailedPrecondition, "fake tc: %s is %s", r.GetXid(), tx.status)
	}
	return &tcv1.CommitResponse{Status: tx.status}, nil
}

func (f *fakeTC) Rollback(_ context.Context, r *tcv1.RollbackRequest) (*tcv1.RollbackResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tx, ok := f.txs[r.GetXid()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "fake tc: %s not found", r.GetXid())
	}
	if tx.status == tcv1.GlobalStatus_BEGIN {
		tx.status = tcv1.GlobalStatus_ROLLBACKED
		tx.reason = r.GetReason()
	} else if f.refuse {
		return nil, status.Errorf(codes.FailedPrecondition, "fake tc: %s is %s", r.GetXid(), tx.status)
	}
	return &tcv1.RollbackResponse{Status: tx.status}, nil
}

func (f *fakeTC) GetStatus(_ context.Context, r *tcv1.GetStatusRequest) (*tcv1.GetStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tx, ok := f.txs[r.GetXid()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "fake tc: %s not found", r.GetXid())
	}
	return &tcv1.GetStatusResponse{Status: tx.status}, nil
}

// intercept injects the faults configured in drop and lose.
func (f *fakeTC) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := path.Base(info.FullMethod)
	if f.take(f.drop, method) {
		return nil, status.Error(codes.Unavailable, "injected: request lost")
	}
	resp, err := handler(ctx, req)
	f.mu.Lock()
	f.calls[method]++
	f.mu.Unlock()
	if f.take(f.lose, method) {
		return nil, status.Error(codes.Unavailable, "injected: answer lost")
	}
	return resp, err
}

func (f *fakeTC) take(m map[string]int, method string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch n := m[method]; {
	case n < 0:
		return true
	case n > 0:
		m[method] = n - 1
		return true
	}
	return false
}

func (f *fakeTC) set(fn func(f *fakeTC)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeTC) tx(xid string) fakeTx {
	f.mu.Lock()
	defer f.mu.Unlock()
	if tx, ok := f.txs[xid]; ok {
		return *tx
	}
	return fakeTx{}
}

func (f *fakeTC) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// tcServer serves a fakeTC on a loopback address and can be stopped and
// started again on the same address.
type tcServer struct {
	t    testing.TB
	fake *fakeTC
	addr string
	mu   sync.Mutex
	srv  *grpc.Server
	done chan struct{}
}

func startTC(t testing.TB, fake *fakeTC) *tcServer {
	t.Helper()
	s := &tcServer{t: t, fake: fake, addr: "127.0.0.1:0"}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *tcServer) start() {
	s.t.Helper()
	lis, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("listen: %v", err)
	}
	s.addr = lis.Addr().String()
	srv := grpc.NewServer(grpc.UnaryInterceptor(s.fake.intercept))
	tcv1.RegisterCoordinatorServer(srv, s.fake)
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

// client dials the server with a short reconnect backoff.
func (s *tcServer) client() tcv1.CoordinatorClient {
	s.t.Helper()
	conn, err := grpc.NewClient(s.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		s.t.Fatalf("dial: %v", err)
	}
	s.t.Cleanup(func() { _ = conn.Close() })
	return tcv1.NewCoordinatorClient(conn)
}

// newManager starts a fake coordinator and returns a Manager for it.
func newManager(t testing.TB, edit func(*Config)) (*Manager, *fakeTC, *tcServer) {
	t.Helper()
	fake := newFakeTC()
	srv := startTC(t, fake)
	cfg := DefaultConfig()
	cfg.Application = "tm-test"
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	cfg.StatusPollInterval = 10 * time.Millisecond
	cfg.StatusPollTimeout = 20 * time.Second
	if edit != nil {
		edit(&cfg)
	}
	m, err := New(srv.client(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m, fake, srv
}
