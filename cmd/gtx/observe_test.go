package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// tcpProxy forwards a local address to target until cut, which closes the
// listener and every connection: to the coordinator, the store is gone.
type tcpProxy struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	lis   net.Listener
	conns []net.Conn
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{t: t, addr: "127.0.0.1:0", target: target}
	p.listen()
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) listen() {
	lis, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.addr = lis.Addr().String()
	p.mu.Lock()
	p.lis = lis
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(up, c); up.Close() })
			p.wg.Go(func() { _, _ = io.Copy(c, up); c.Close() })
		}
	})
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	if p.lis != nil {
		p.lis.Close()
		p.lis = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// scrape returns the value of the sample named by series (name and labels
// exactly as exposed), or 0 when it is absent.
func scrape(t *testing.T, addr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f
		}
	}
	return 0
}

// The coordinator's gRPC health follows its store: SERVING, NOT_SERVING
// once every connection to MariaDB is cut, SERVING again when it is back;
// and the Prometheus counters move with the transactions.
func TestHealthAndMetrics(t *testing.T) {
	dsn := mysqlTestDB(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, cfg.Addr)
	cfg.Addr = proxy.addr
	cfg.Timeout = time.Second

	c := defaultTCConfig()
	c.Listen = freeAddr(t)
	c.MetricsListen = freeAddr(t)
	c.StoreDriver = "mysql"
	c.StoreDSN = cfg.FormatDSN()
	c.NodeID = 9
	c.LogLevel = "error"
	c.HealthInterval = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runTC(ctx, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("runTC: %v", err)
		}
	})
	conn, err := grpc.NewClient(c.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	client := tcv1.NewCoordinatorClient(conn)
	waitHealth := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: tcv1.Coordinator_ServiceDesc.ServiceName})
			if err == nil && resp.GetStatus() == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("health never became %v: %v, %v", want, resp.GetStatus(), err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitHealth(healthpb.HealthCheckResponse_SERVING)

	const begun = "gtx_tc_transactions_begun_total"
	committed := `gtx_tc_transactions_finished_total{mode="empty",outcome="committed"}`
	rolledBack := `gtx_tc_transactions_finished_total{mode="empty",outcome="rolled_back"}`
	for i := range 3 {
		b, err := client.Begin(ctx, &tcv1.BeginRequest{Name: "metrics"})
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			_, err = client.Commit(ctx, &tcv1.CommitRequest{Xid: b.GetXid()})
		} else {
			_, err = client.Rollback(ctx, &tcv1.RollbackRequest{Xid: b.GetXid()})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for series, want := range map[string]float64{begun: 3, committed: 2, rolledBack: 1, "gtx_tc_retry_backlog": 0} {
		if got := scrape(t, c.MetricsListen, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}

	proxy.cut()
	waitHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	if got := scrape(t, c.MetricsListen, "gtx_tc_retry_backlog"); got != -1 {
		t.Errorf("retry backlog without a store = %v, want -1", got)
	}
	proxy.listen()
	waitHealth(healthpb.HealthCheckResponse_SERVING)
}
