package msg

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/tc"
)

// checkers serves the barrier's check over HTTP, gRPC and NATS and returns
// the address of each.
func checkers(t testing.TB, b *Barrier, nc *nats.Conn, subject string) map[string]string {
	t.Helper()
	hs := httptest.NewServer(CheckHandler(b))
	t.Cleanup(hs.Close)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	tcv1.RegisterMessageCheckerServer(gs, CheckServer(b))
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	sub, err := ServeCheck(nc, subject, b, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return map[string]string{"http": hs.URL + "/check", "grpc": "grpc://" + lis.Addr().String(), "nats": "nats:" + subject}
}

// count returns how many messages the stream holds on subject.
func count(t testing.TB, js jetstream.JetStream, stream, subject string) int {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return int(info.State.Subjects[subject])
}

func insertOrder(id string, d Dialect) func(ctx context.Context, tx *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, placeholders(d, "INSERT INTO orders (id, amount) VALUES (?, ?)"), id, 100)
		return err
	}
}

var errBusiness = errors.New("business rule refused the order")

// TestTwoPhaseMessage runs a two-phase message to the end on every
// database and every way of checking: submitted, rolled back by its local
// transaction, committed but never submitted (the coordinator's check
// finds the barrier row), and never committed (the check refuses a late
// local commit).
func TestTwoPhaseMessage(t *testing.T) {
	nc, js := connect(t, natsURL())
	streamName, prefix := stream(t, js)
	c := startCluster(t, nc)
	backends(t, func(t *testing.T, b *backend) {
		cfg := DefaultBarrierConfig()
		cfg.Dialect = b.dialect
		barrier, err := OpenBarrier(context.Background(), b.db, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for via, check := range checkers(t, barrier, nc, "check."+prefix+"."+b.name) {
			t.Run(via, func(t *testing.T) {
				ctx := testContext(t)
				pcfg := DefaultProducerConfig()
				pcfg.Check = check
				pcfg.Timeout = 500 * time.Millisecond
				pcfg.Logger = quiet
				p, err := NewProducer(c.client, barrier, pcfg)
				if err != nil {
					t.Fatal(err)
				}
				subject := func(name string) string { return prefix + "." + b.name + "." + via + "." + name }
				message := func(name string) Message {
					return Message{Target: "nats:" + subject(name), Payload: []byte(name), Headers: map[string]string{"Kind": "order.placed"}}
				}

				t.Run("submitted", func(t *testing.T) {
					id := randomName("o")
					xid, err := p.Send(ctx, "place-order", insertOrder(id, b.dialect), message(id))
					if err != nil {
						t.Fatal(err)
					}
					poll.Until(t, "the message in the stream", 0, func() bool { return count(t, js, streamName, subject(id)) == 1 })
					poll.Until(t, "COMMITTED", 0, func() bool { return c.status(t, xid) == tcv1.GlobalStatus_COMMITTED })
					s, err := js.Stream(ctx, streamName)
					if err != nil {
						t.Fatal(err)
					}
					m, err := s.GetLastMsgForSubject(ctx, subject(id))
					if err != nil {
						t.Fatal(err)
					}
					if got := m.Header.Get(jetstream.MsgIDHeader); !strings.HasPrefix(got, xid+"-") {
						t.Fatalf("Nats-Msg-Id %q, want a message ID of %s", got, xid)
					}
					if string(m.Data) != id || m.Header.Get("Kind") != "order.placed" {
						t.Fatalf("delivered %q with headers %v", m.Data, m.Header)
					}
					if n := b.orders(t, id); n != 1 {
						t.Fatalf("%d order rows, want 1", n)
					}
				})

				t.Run("local transaction fails", func(t *testing.T) {
					id := randomName("o")
					xid, err := p.Send(ctx, "place-order", func(ctx context.Context, tx *sql.Tx) error {
						if err := insertOrder(id, b.dialect)(ctx, tx); err != nil {
							return err
						}
						return errBusiness
					}, message(id))
					if !errors.Is(err, errBusiness) {
						t.Fatalf("Send: %v, want the business error", err)
					}
					if st := c.status(t, xid); st != tcv1.GlobalStatus_ROLLBACKED {
						t.Fatalf("status %s, want ROLLBACKED", st)
					}
					if n := count(t, js, streamName, subject(id)); n != 0 {
						t.Fatalf("%d messages delivered for a rolled-back local transaction", n)
					}
					if n := b.orders(t, id); n != 0 {
						t.Fatalf("%d order rows after the rollback", n)
					}
				})

				t.Run("committed, never submitted", func(t *testing.T) {
					id := randomName("o")
					m, err := p.Prepare(ctx, "place-order", message(id))
					if err != nil {
						t.Fatal(err)
					}
					tx, err := b.db.BeginTx(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					if err := m.Commit(ctx, tx); err != nil {
						t.Fatal(err)
					}
					if err := insertOrder(id, b.dialect)(ctx, tx); err != nil {
						t.Fatal(err)
					}
					if err := tx.Commit(); err != nil {
						t.Fatal(err)
					}
					// The producer "dies" here: no Submit.
					poll.Until(t, "the checked message in the stream", 0, func() bool { return count(t, js, streamName, subject(id)) == 1 })
					poll.Until(t, "COMMITTED", 0, func() bool { return c.status(t, m.XID()) == tcv1.GlobalStatus_COMMITTED })
					// A submit after the check changes nothing.
					if err := m.Submit(ctx); err != nil {
						t.Fatalf("late submit: %v", err)
					}
					if n := count(t, js, streamName, subject(id)); n != 1 {
						t.Fatalf("%d messages, want 1", n)
					}
				})

				t.Run("never committed", func(t *testing.T) {
					id := randomName("o")
					m, err := p.Prepare(ctx, "place-order", message(id))
					if err != nil {
						t.Fatal(err)
					}
					poll.Until(t, "TIMEOUT_ROLLBACKED", 0, func() bool { return c.status(t, m.XID()) == tcv1.GlobalStatus_TIMEOUT_ROLLBACKED })
					err = m.Do(ctx, insertOrder(id, b.dialect))
					if !errors.Is(err, ErrRolledBack) {
						t.Fatalf("late local transaction: %v, want ErrRolledBack", err)
					}
					if n := b.orders(t, id); n != 0 {
						t.Fatalf("%d order rows committed after the message was given up", n)
					}
					if n := count(t, js, streamName, subject(id)); n != 0 {
						t.Fatalf("%d messages delivered for a message never committed", n)
					}
				})
			})
		}
	})
}

// TestBarrierRace races a local commit with the coordinator's check, many
// times: exactly one wins, and the check's answer is what happened.
func TestBarrierRace(t *testing.T) {
	backends(t, func(t *testing.T, b *backend) {
		cfg := DefaultBarrierConfig()
		cfg.Dialect = b.dialect
		cfg.Table = "race_barrier"
		barrier, err := OpenBarrier(context.Background(), b.db, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx := testContext(t)
		committedSeen, rolledBackSeen := 0, 0
		for i := range 40 {
			xid := randomName("race-")
			var (
				wg        sync.WaitGroup
				localErr  error
				committed bool
				checkErr  error
			)
			wg.Go(func() {
				tx, err := b.db.BeginTx(ctx, nil)
				if err != nil {
					localErr = err
					return
				}
				if err := barrier.Commit(ctx, tx, xid); err != nil {
					_ = tx.Rollback()
					localErr = err
					return
				}
				localErr = tx.Commit()
			})
			wg.Go(func() { committed, checkErr = barrier.Check(ctx, xid) })
			wg.Wait()
			if checkErr != nil {
				t.Fatalf("round %d: check: %v", i, checkErr)
			}
			switch {
			case localErr == nil && committed:
				committedSeen++
			case errors.Is(localErr, ErrRolledBack) && !committed:
				rolledBackSeen++
			default:
				t.Fatalf("round %d: local commit %v, check answered committed=%v", i, localErr, committed)
			}
			again, err := barrier.Check(ctx, xid)
			if err != nil || again != committed {
				t.Fatalf("round %d: a second check answered %v (%v), the first %v", i, again, err, committed)
			}
		}
		t.Logf("%d rounds won by the local commit, %d by the check", committedSeen, rolledBackSeen)
		// Every round left one row.
		if n, err := barrier.Clean(ctx, time.Now().Add(time.Minute), 1000); err != nil || n != 40 {
			t.Fatalf("Clean removed %d rows (%v), want 40", n, err)
		}
	})
}

// recorder is an HTTP and gRPC target that fails its first calls.
type recorder struct {
	tcv1.UnimplementedMessageReceiverServer
	mu    sync.Mutex
	fail  int
	calls []string
	ok    int
}

func (r *recorder) take(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, id)
	if len(r.calls) <= r.fail {
		return false
	}
	r.ok++
	return true
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if !r.take(req.Header.Get(HeaderMessageID)) {
		http.Error(w, "not yet", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *recorder) Deliver(_ context.Context, req *tcv1.DeliverMessageRequest) (*tcv1.DeliverMessageResponse, error) {
	if !r.take(req.GetId()) {
		return nil, errors.New("not yet")
	}
	return &tcv1.DeliverMessageResponse{}, nil
}

func (r *recorder) snapshot() (calls []string, ok int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...), r.ok
}

// TestDeliverHTTPAndGRPC delivers to HTTP and gRPC targets that refuse the
// first two deliveries: the coordinator retries until one is acknowledged,
// always with the same message ID.
func TestDeliverHTTPAndGRPC(t *testing.T) {
	nc, _ := connect(t, natsURL())
	c := startCluster(t, nc)
	b := sqliteDB(t)
	cfg := DefaultBarrierConfig()
	cfg.Dialect = b.dialect
	barrier, err := OpenBarrier(context.Background(), b.db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(CheckHandler(barrier))
	t.Cleanup(hs.Close)
	pcfg := DefaultProducerConfig()
	pcfg.Check = hs.URL
	pcfg.Logger = quiet
	p, err := NewProducer(c.client, barrier, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	httpTarget := &recorder{fail: 2}
	ht := httptest.NewServer(httpTarget)
	t.Cleanup(ht.Close)
	grpcTarget := &recorder{fail: 2}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	tcv1.RegisterMessageReceiverServer(gs, grpcTarget)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	ctx := testContext(t)
	id := randomName("o")
	xid, err := p.Send(ctx, "place-order", insertOrder(id, b.dialect),
		Message{Target: ht.URL + "/events", Payload: []byte("h")},
		Message{Target: "grpc://" + lis.Addr().String(), Payload: []byte("g")})
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "COMMITTED", 0, func() bool { return c.status(t, xid) == tcv1.GlobalStatus_COMMITTED })
	for name, r := range map[string]*recorder{"http": httpTarget, "grpc": grpcTarget} {
		calls, ok := r.snapshot()
		if ok != 1 || len(calls) != 3 {
			t.Fatalf("%s target: %d calls, %d acknowledged; want 3 and 1", name, len(calls), ok)
		}
		for _, id := range calls {
			if id != calls[0] || !strings.HasPrefix(id, xid+"-") {
				t.Fatalf("%s target saw message IDs %v, want one ID of %s", name, calls, xid)
			}
		}
	}
}

// TestSubmitAfterTimeout submits a message after its timeout and before
// the coordinator's sweep found it: the submit commits it, where an
// ordinary transaction past its timeout is rolled back.
func TestSubmitAfterTimeout(t *testing.T) {
	nc, js := connect(t, natsURL())
	streamName, prefix := stream(t, js)
	// The sweep runs at start and then not within the test.
	c := startCluster(t, nc, func(cfg *tc.Config) { cfg.TimeoutCheckInterval = time.Hour })
	b := sqliteDB(t)
	cfg := DefaultBarrierConfig()
	cfg.Dialect = b.dialect
	barrier, err := OpenBarrier(context.Background(), b.db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pcfg := DefaultProducerConfig()
	pcfg.Check = "http://127.0.0.1:1/unused"
	pcfg.Timeout = 200 * time.Millisecond
	pcfg.Logger = quiet
	p, err := NewProducer(c.client, barrier, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	id := randomName("o")
	subject := prefix + "." + id
	m, err := p.Prepare(ctx, "place-order", Message{Target: "nats:" + subject, Payload: []byte(id)})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Commit(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := insertOrder(id, b.dialect)(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(pcfg.Timeout)
	poll.Until(t, "the message's timeout to pass", 0, func() bool { return time.Now().After(deadline.Add(50 * time.Millisecond)) })
	if err := m.Submit(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "COMMITTED", 0, func() bool { return c.status(t, m.XID()) == tcv1.GlobalStatus_COMMITTED })
	if n := count(t, js, streamName, subject); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
}
