package msg

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/poll"
)

// TestReceivers delivers one two-phase message to an HTTP and a gRPC
// receiver whose first answer is lost after the message was applied: the
// coordinator delivers again, and the inbox applies it once.
func TestReceivers(t *testing.T) {
	nc, _ := connect(t, natsURL())
	c := startCluster(t, nc)
	producerDB, consumerDB := sqliteDB(t), sqliteDB(t)
	consumerDB.exec(t, "CREATE TABLE points (id VARCHAR(255) NOT NULL, via VARCHAR(8) NOT NULL)")
	bcfg := DefaultBarrierConfig()
	bcfg.Dialect = producerDB.dialect
	barrier, err := OpenBarrier(context.Background(), producerDB.db, bcfg)
	if err != nil {
		t.Fatal(err)
	}
	icfg := DefaultInboxConfig()
	icfg.Dialect = consumerDB.dialect
	inbox, err := OpenInbox(context.Background(), consumerDB.db, icfg)
	if err != nil {
		t.Fatal(err)
	}
	apply := func(via string) ReceiveFunc {
		return func(ctx context.Context, tx *sql.Tx, d Delivery) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO points (id, via) VALUES (?, ?)", d.ID, via)
			return err
		}
	}
	// The HTTP receiver keeps an inbox table of its own, as a service of its
	// own would.
	httpInbox, err := OpenInbox(context.Background(), consumerDB.db, InboxConfig{Dialect: consumerDB.dialect, Table: "inbox_http"})
	if err != nil {
		t.Fatal(err)
	}
	var httpCalls, grpcCalls atomic.Int32
	inner := ReceiverHandler(httpInbox, apply("http"), quiet)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		if httpCalls.Add(1) == 1 {
			http.Error(w, "answer lost", http.StatusBadGateway)
			return
		}
		w.WriteHeader(rec.Code)
	}))
	t.Cleanup(hs.Close)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if grpcCalls.Add(1) == 1 && err == nil {
			return nil, errors.New("answer lost")
		}
		return resp, err
	}))
	tcv1.RegisterMessageReceiverServer(gs, ReceiverServer(inbox, apply("grpc")))
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	check := httptest.NewServer(CheckHandler(barrier))
	t.Cleanup(check.Close)
	pcfg := DefaultProducerConfig()
	pcfg.Check = check.URL
	pcfg.Logger = quiet
	p, err := NewProducer(c.client, barrier, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	xid, err := p.Send(ctx, "place-order", insertOrder(randomName("o"), producerDB.dialect),
		Message{Target: hs.URL, Payload: []byte("h")}, Message{Target: "grpc://" + lis.Addr().String(), Payload: []byte("g")})
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "COMMITTED", 0, func() bool { return c.status(t, xid) == tcv1.GlobalStatus_COMMITTED })
	if httpCalls.Load() < 2 || grpcCalls.Load() < 2 {
		t.Fatalf("%d HTTP and %d gRPC deliveries, want at least 2 each", httpCalls.Load(), grpcCalls.Load())
	}
	for _, via := range []string{"http", "grpc"} {
		var n int
		if err := consumerDB.db.QueryRow("SELECT COUNT(*) FROM points WHERE via = ?", via).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("%s receiver applied the message %d times, want 1", via, n)
		}
	}
	// A delivery without a message ID changes nothing.
	resp, err := http.Post(hs.URL, "application/octet-stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("delivery without an ID answered %s, want 400", resp.Status)
	}
}
