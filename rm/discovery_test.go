package rm

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// movingResolver answers what the test last set.
type movingResolver struct {
	mu    sync.Mutex
	addrs []string
	err   error
}

func (r *movingResolver) set(err error, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs, r.err = addrs, err
}

func (r *movingResolver) Resolve(context.Context) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.addrs), r.err
}

// The Manager attaches to each coordinator discovery finds, detaches from
// each one that goes, and keeps its coordinators when discovery fails.
func TestDiscoveryFollowsTheSet(t *testing.T) {
	fakes := []*fakeTC{newFakeTC("a"), newFakeTC("b"), newFakeTC("c")}
	var addrs []string
	for _, f := range fakes {
		addrs = append(addrs, startTC(t, f).addr)
	}
	attached := func(f *fakeTC) func() bool { return func() bool { return f.peer != nil } }
	detached := func(f *fakeTC) func() bool { return func() bool { return f.peer == nil } }
	res := &movingResolver{}
	res.set(nil, addrs[0])
	cfg := DefaultConfig()
	cfg.Application = "discovery-test"
	cfg.ReconnectInitial = 10 * time.Millisecond
	cfg.ReconnectMax = 100 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Discovery = &Discovery{
		Resolver: res,
		Dial:     GRPCDialer(grpc.WithTransportCredentials(insecure.NewCredentials())),
		Interval: 20 * time.Millisecond,
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fakes[0].waitFor(t, "attach to a", attached(fakes[0]))

	steps := []struct {
		name       string
		err        error
		set        []int
		attached   []int
		detached   []int
		registerOn int
	}{
		{"grows", nil, []int{0, 1, 2}, []int{0, 1, 2}, nil, -1},
		{"shrinks", nil, []int{1}, []int{1}, []int{0, 2}, 1},
		{"resolver fails", errors.New("dns down"), nil, []int{1}, []int{0, 2}, 1},
		{"resolves nothing", nil, []int{}, []int{1}, []int{0, 2}, 1},
		{"moves", nil, []int{2}, []int{2}, []int{0, 1}, 2},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var set []string
			for _, i := range st.set {
				set = append(set, addrs[i])
			}
			res.set(st.err, set...)
			for _, i := range st.attached {
				fakes[i].waitFor(t, "attach to "+strconv.Itoa(i), attached(fakes[i]))
			}
			for _, i := range st.detached {
				fakes[i].waitFor(t, "detach from "+strconv.Itoa(i), detached(fakes[i]))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := m.WaitAttached(ctx); err != nil {
				t.Fatal(err)
			}
			if st.registerOn < 0 {
				return
			}
			f := fakes[st.registerOn]
			f.mu.Lock()
			before := len(f.registered)
			f.mu.Unlock()
			if _, err := m.RegisterBranch(ctx, "discovery:1", tcv1.BranchType_TCC, "r", "", nil); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			after := len(f.registered)
			f.mu.Unlock()
			if after != before+1 {
				t.Fatalf("RegisterBranch did not reach the only coordinator left (%d -> %d)", before, after)
			}
		})
	}
}

func TestDNSResolver(t *testing.T) {
	got, err := DNSResolver{Name: "localhost", Port: 8091}.Resolve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, "127.0.0.1:8091") {
		t.Fatalf("localhost resolved to %v, want 127.0.0.1:8091 among them", got)
	}
	if _, err := (DNSResolver{Name: "no-such-host.invalid", Port: 1}).Resolve(t.Context()); err == nil {
		t.Fatal("an unknown name resolved")
	}
}

func TestDiscoveryConfig(t *testing.T) {
	tests := []struct {
		name string
		d    *Discovery
	}{
		{"no resolver", &Discovery{Dial: GRPCDialer()}},
		{"no dial", &Discovery{Resolver: StaticResolver{"x:1"}}},
		{"negative interval", &Discovery{Resolver: StaticResolver{"x:1"}, Dial: GRPCDialer(), Interval: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Application = "a"
			cfg.Discovery = tt.d
			if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
		})
	}
}
