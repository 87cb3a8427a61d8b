package tc

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// StoreHealth keeps a gRPC health server (grpc.health.v1) in step with the
// store: SERVING while Store.Ping succeeds, NOT_SERVING while it fails, for
// the whole server ("") and for the gtx.tc.v1.Coordinator service. A
// replica that lost its store then drops out of load balancers and
// Kubernetes readiness until the store is back.
type StoreHealth struct {
	store Store
	hs    *health.Server
	every time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	serving bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// NewStoreHealth returns a StoreHealth that pings store every interval
// (each ping bounded by the interval) and sets hs; log may be nil.
func NewStoreHealth(store Store, hs *health.Server, every time.Duration, log *slog.Logger) *StoreHealth {
	if log == nil {
		log = slog.Default()
	}
	return &StoreHealth{store: store, hs: hs, every: every, log: log, serving: true}
}

// Start checks the store at once and then every interval until Close or
// ctx is done.
func (h *StoreHealth) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	h.mu.Lock()
	h.cancel, h.done = cancel, make(chan struct{})
	done := h.done
	h.mu.Unlock()
	h.check(ctx)
	go func() {
		defer close(done)
		t := time.NewTicker(h.every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				h.check(ctx)
			}
		}
	}()
}

// Close stops the checks and waits for them.
func (h *StoreHealth) Close() {
	h.mu.Lock()
	cancel, done := h.cancel, h.done
	h.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (h *StoreHealth) check(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, h.every)
	err := h.store.Ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	st := healthpb.HealthCheckResponse_SERVING
	if err != nil {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	h.mu.Lock()
	changed := h.serving != (err == nil)
	h.serving = err == nil
	h.mu.Unlock()
	if changed {
		if err != nil {
			h.log.Error("store unreachable, health NOT_SERVING", "err", err)
		} else {
			h.log.Info("store reachable again, health SERVING")
		}
	}
	h.hs.SetServingStatus("", st)
	h.hs.SetServingStatus(tcv1.Coordinator_ServiceDesc.ServiceName, st)
}
