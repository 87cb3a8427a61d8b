package tc_test

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/idgen"
	"github.com/gtx-io/gtx/tc"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
)

// metricValue returns the value of the counter, or the sample count of the
// histogram, name with labels; 0 when absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			default:
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// A two-branch commit makes spans for begin, commit and each branch's
// phase 2, and moves the counters and the phase-2 histogram; a refused lock
// counts as a conflict.
func TestSpansAndMetrics(t *testing.T) {
	ctx := context.Background()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reg := prometheus.NewRegistry()
	ids, err := idgen.New(idgen.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := tc.DefaultConfig()
	testConfig(&cfg)
	cfg.IDs = ids
	cfg.TracerProvider = tp
	cfg.Metrics = reg
	store, err := sqlstore.Open(ctx, sqlstore.Config{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "tc.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv, err := tc.NewServer(cfg, store, store)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.NewServer(cfg, store, store); err == nil {
		t.Fatal("a second server registered the same metrics")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(srv.UnaryInterceptor()))
	tcv1.RegisterCoordinatorServer(gs, srv)
	go gs.Serve(lis)
	defer gs.Stop()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := tcv1.NewCoordinatorClient(conn)
	startRM(t, lis.Addr().String(), &recorder{})

	b, err := client.Begin(ctx, &tcv1.BeginRequest{Name: "traced"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: b.GetXid(), BranchType: tcv1.BranchType_TCC, ResourceId: "res", LockKeys: "t:1"}); err != nil {
			t.Fatal(err)
		}
	}
	other, err := client.Begin(ctx, &tcv1.BeginRequest{Name: "blocked"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: other.GetXid(), BranchType: tcv1.BranchType_TCC, ResourceId: "res", LockKeys: "t:1"}); err == nil {
		t.Fatal("a held lock was granted")
	}
	if r, err := client.Commit(ctx, &tcv1.CommitRequest{Xid: b.GetXid()}); err != nil || r.GetStatus() != tcv1.GlobalStatus_COMMITTED {
		t.Fatalf("Commit = %v, %v", r, err)
	}
	if _, err := client.Rollback(ctx, &tcv1.RollbackRequest{Xid: other.GetXid()}); err != nil {
		t.Fatal(err)
	}

	var names []string
	for _, s := range spans.Ended() {
		names = append(names, s.Name())
	}
	for name, want := range map[string]int{"gtx.tc.begin": 2, "gtx.tc.commit": 1, "gtx.tc.rollback": 1, "gtx.tc.branch commit": 2} {
		got := 0
		for _, n := range names {
			if n == name {
				got++
			}
		}
		if got != want {
			t.Errorf("%d %q spans, want %d (spans: %v)", got, name, want, names)
		}
	}
	if !slices.Contains(names, "gtx.tc.branch commit") {
		t.Errorf("no branch span among %v", names)
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gtx_tc_transactions_begun_total", nil, 2},
		{"gtx_tc_transactions_finished_total", map[string]string{"mode": "tcc", "outcome": "committed"}, 1},
		{"gtx_tc_transactions_finished_total", map[string]string{"mode": "empty", "outcome": "rolled_back"}, 1},
		{"gtx_tc_phase2_attempt_seconds", map[string]string{"mode": "tcc", "action": "commit"}, 1},
		{"gtx_tc_lock_conflicts_total", nil, 1},
		{"gtx_tc_retry_backlog", nil, 0},
	}
	for _, tt := range tests {
		if got := metricValue(t, reg, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}
