package tc

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// tracerName names the coordinator's tracer.
const tracerName = "github.com/gtx-io/gtx/tc"

// observer holds the coordinator's metrics and tracer. Without
// Config.Metrics its metrics are counted but registered nowhere; without
// Config.TracerProvider its spans are no-ops.
type observer struct {
	tracer    trace.Tracer
	begun     prometheus.Counter
	finished  *prometheus.CounterVec
	phase2    *prometheus.HistogramVec
	conflicts prometheus.Counter
}

// BacklogCounter is an optional Store capability: counting the sessions
// in a phase-2 status (tcv1.Phase2Statuses()) without reading them. The backlog
// gauge uses it when the Store has it, and ListGlobals otherwise.
type BacklogCounter interface {
	CountPhase2(ctx context.Context) (int, error)
}

// maxBacklogCount caps the backlog gauge's count through ListGlobals.
const maxBacklogCount = 10000

// countBacklog counts the sessions still in phase 2.
func countBacklog(ctx context.Context, store Store) (int, error) {
	if c, ok := store.(BacklogCounter); ok {
		return c.CountPhase2(ctx)
	}
	gs, err := store.ListGlobals(ctx, ListFilter{Statuses: tcv1.Phase2Statuses(), Limit: maxBacklogCount})
	return len(gs), err
}

func newObserver(cfg Config, store Store) (*observer, error) {
	tp := cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	o := &observer{
		tracer: tp.Tracer(tracerName),
		begun: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "gtx", Subsystem: "tc", Name: "transactions_begun_total",
			Help: "Global transactions begun by this replica.",
		}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gtx", Subsystem: "tc", Name: "transactions_finished_total",
			Help: "Global transactions this replica finished, by mode (the branch types involved, or empty) and outcome (committed, rolled_back, timeout_rolled_back, failed).",
		}, []string{"mode", "outcome"}),
		phase2: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "gtx", Subsystem: "tc", Name: "phase2_attempt_seconds",
			Help:    "Duration of one phase-2 attempt over every branch of a transaction, by mode and action.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"mode", "action"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "gtx", Subsystem: "tc", Name: "lock_conflicts_total",
			Help: "Branch registrations refused because another transaction holds a global lock.",
		}),
	}
	if cfg.Metrics == nil {
		return o, nil
	}
	backlog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "gtx", Subsystem: "tc", Name: "retry_backlog",
		Help: fmt.Sprintf("Transactions in the store still in phase 2: committing or rolling back, retries included (up to %d; -1 when the store does not answer).", maxBacklogCount),
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := countBacklog(ctx, store)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	for _, c := range []prometheus.Collector{o.begun, o.finished, o.phase2, o.conflicts, backlog} {
		if err := cfg.Metrics.Register(c); err != nil {
			return nil, fmt.Errorf("%w: register metrics: %w", ErrInvalidConfig, err)
		}
	}
	return o, nil
}

// mode names the branch types of g, "at+tcc" say, or "empty".
func mode(g *GlobalSession) string {
	var types []string
	for _, b := range g.Branches {
		t := strings.ToLower(b.Type.String())
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	if len(types) == 0 {
		return "empty"
	}
	slices.Sort(types)
	return strings.Join(types, "+")
}

func outcomeLabel(st tcv1.GlobalStatus) string {
	switch st {
	case tcv1.GlobalStatus_COMMITTED:
		return "committed"
	case tcv1.GlobalStatus_ROLLBACKED:
		return "rolled_back"
	case tcv1.GlobalStatus_TIMEOUT_ROLLBACKED:
		return "timeout_rolled_back"
	}
	return "failed"
}

// attempted records one phase-2 attempt of g that led to next.
func (o *observer) attempted(g *GlobalSession, next tcv1.GlobalStatus, took time.Duration) {
	m := mode(g)
	action := "rollback"
	if g.Status.IsCommitting() {
		action = "commit"
	}
	o.phase2.WithLabelValues(m, action).Observe(took.Seconds())
	if next.IsFinal() {
		o.finished.WithLabelValues(m, outcomeLabel(next)).Inc()
	}
}

// finishedEmpty records a transaction without branches ended in st.
func (o *observer) finishedEmpty(st tcv1.GlobalStatus) {
	o.finished.WithLabelValues("empty", outcomeLabel(st)).Inc()
}

// startBranch starts the span of one branch's phase 2.
func (o *observer) startBranch(ctx context.Context, action tcv1.BranchAction, b *BranchSession) (context.Context, trace.Span) {
	return o.tracer.Start(ctx, "gtx.tc.branch "+strings.ToLower(strings.TrimPrefix(action.String(), "BRANCH_")),
		trace.WithAttributes(
			attribute.String("gtx.xid", b.XID),
			attribute.Int64("gtx.branch_id", b.BranchID),
			attribute.String("gtx.branch_type", b.Type.String()),
			attribute.String("gtx.resource_id", b.ResourceID),
		))
}

// traced are the methods the interceptor puts in spans.
var traced = map[string]string{
	tcv1.Coordinator_Begin_FullMethodName:    "gtx.tc.begin",
	tcv1.Coordinator_Commit_FullMethodName:   "gtx.tc.commit",
	tcv1.Coordinator_Rollback_FullMethodName: "gtx.tc.rollback",
}

// UnaryInterceptor returns the interceptor that traces Begin, Commit and
// Rollback and counts begun transactions and lock conflicts. Install it on
// the grpc.Server the coordinator is registered on.
func (s *Server) UnaryInterceptor() grpc.UnaryServerInterceptor {
	o := s.obs
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		name, ok := traced[info.FullMethod]
		if !ok {
			resp, err := handler(ctx, req)
			if err != nil && info.FullMethod == tcv1.Coordinator_RegisterBranch_FullMethodName && isLockConflict(err) {
				o.conflicts.Inc()
			}
			return resp, err
		}
		ctx, span := o.tracer.Start(ctx, name)
		defer span.End()
		if x, ok := req.(interface{ GetXid() string }); ok {
			span.SetAttributes(attribute.String("gtx.xid", x.GetXid()))
		}
		resp, err := handler(ctx, req)
		if err != nil {
			span.SetStatus(otelcodes.Error, err.Error())
			return resp, err
		}
		switch r := resp.(type) {
		case *tcv1.BeginResponse:
			o.begun.Inc()
			span.SetAttributes(attribute.String("gtx.xid", r.GetXid()))
		case interface{ GetStatus() tcv1.GlobalStatus }:
			span.SetAttributes(attribute.String("gtx.status", r.GetStatus().String()))
		}
		return resp, err
	}
}

func isLockConflict(err error) bool {
	return tcv1.ErrorInfoOf(err).GetReason() == tcv1.ReasonLockConflict
}
