package natsgtx_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/interceptors/natsgtx"
	"github.com/gtx-io/gtx/internal/gtxtest"
)

// secretBody is the body of every test message; it must never reach a log.
const secretBody = "SECRET-BODY-4711"

// syncBuffer is a log destination safe for the subscription goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func subject() string { return "gtxtest." + nuid.Next() }

// forEachServer runs f against the embedded NATS server and, when it
// answers, the machine's.
func forEachServer(t *testing.T, f func(t *testing.T, nc *nats.Conn)) {
	for name, url := range gtxtest.NATSServers(t) {
		t.Run(name, func(t *testing.T) { f(t, gtxtest.ConnectNATS(t, url)) })
	}
}

// seen collects what handlers saw.
type seen struct {
	mu  sync.Mutex
	got []string
	c   chan struct{}
}

func newSeen() *seen { return &seen{c: make(chan struct{}, 1000)} }

func (s *seen) add(v string) {
	s.mu.Lock()
	s.got = append(s.got, v)
	s.mu.Unlock()
	s.c <- struct{}{}
}

func (s *seen) wait(t *testing.T, n int) []string {
	t.Helper()
	for range n {
		select {
		case <-s.c:
		case <-time.After(10 * time.Second):
			t.Fatalf("handlers saw %d messages in 10s, want %d", len(s.all()), n)
		}
	}
	return s.all()
}

func (s *seen) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func TestPublishPropagation(t *testing.T) {
	forEachServer(t, func(t *testing.T, nc *nats.Conn) {
		subj := subject()
		s := newSeen()
		sub, err := nc.Subscribe(subj, natsgtx.Handler(context.Background(), func(ctx context.Context, msg *nats.Msg) error {
			s.add(gtxtest.Describe(ctx))
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		ctxs := []context.Context{
			gtx.ContextWithXID(context.Background(), "tc-1:7"),
			context.Background(),
			gtx.ContextWithoutXID(gtx.ContextWithXID(context.Background(), "tc-1:8")),
		}
		for _, ctx := range ctxs {
			if err := natsgtx.Publish(ctx, nc, subj, []byte(secretBody)); err != nil {
				t.Fatal(err)
			}
		}
		got := s.wait(t, len(ctxs))
		if want := "[tc-1:7|false |false |false]"; fmt.Sprint(got) != want {
			t.Fatalf("handlers saw %v, want %s", got, want)
		}
	})
}

func TestSetHeaderRemovesStaleXID(t *testing.T) {
	msg := &nats.Msg{Subject: "s", Header: nats.Header{gtx.MetadataKey: {"stale"}}}
	natsgtx.SetHeader(context.Background(), msg)
	if v := msg.Header.Values(gtx.MetadataKey); v != nil {
		t.Fatalf("header holds %q after SetHeader with no XID, want none", v)
	}
	natsgtx.SetHeader(gtx.ContextWithXID(context.Background(), "x"), msg)
	if v := msg.Header.Values(gtx.MetadataKey); fmt.Sprint(v) != "[x]" {
		t.Fatalf("header holds %q, want [x]", v)
	}
}

func TestRequestConcurrent(t *testing.T) {
	forEachServer(t, func(t *testing.T, nc *nats.Conn) {
		subj := subject()
		sub, err := nc.Subscribe(subj, natsgtx.Handler(context.Background(), func(ctx context.Context, msg *nats.Msg) error {
			return msg.Respond([]byte(gtxtest.Describe(ctx)))
		}))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		const n = 200
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				xid := fmt.Sprintf("tc:%d", i)
				ctx, cancel := context.WithTimeout(gtx.ContextWithXID(context.Background(), xid), 10*time.Second)
				defer cancel()
				reply, err := natsgtx.Request(ctx, nc, subj, []byte(secretBody))
				if err != nil {
					errs <- err
					return
				}
				if want := xid + "|false"; string(reply.Data) != want {
					errs <- fmt.Errorf("request %d saw %q, want %q", i, reply.Data, want)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

var malformed = []struct {
	name   string
	values []string
}{
	{"space", []string{"tc 1"}},
	{"oversized", []string{strings.Repeat("x", gtx.MaxXIDLen+1)}},
	{"two different", []string{"a", "b"}},
}

func TestMalformedRejected(t *testing.T) {
	forEachServer(t, func(t *testing.T, nc *nats.Conn) {
		logs := &syncBuffer{}
		logger := slog.New(slog.NewTextHandler(logs, nil))
		subj := subject()
		echo := &gtxtest.Echo{}
		sub, err := nc.Subscribe(subj, natsgtx.Handler(context.Background(), func(ctx context.Context, msg *nats.Msg) error {
			_, err := echo.Handle(ctx, "")
			if msg.Reply != "" {
				return msg.Respond([]byte("handled"))
			}
			return err
		}, natsgtx.WithLogger(logger)))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		for _, tt := range malformed {
			t.Run(tt.name, func(t *testing.T) {
				msg := &nats.Msg{Subject: subj, Data: []byte(secretBody), Header: nats.Header{gtx.MetadataKey: tt.values}}
				if err := nc.PublishMsg(msg); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				reply, err := nc.RequestMsgWithContext(ctx, msg)
				if err != nil {
					t.Fatal(err)
				}
				if code := reply.Header.Get(micro.ErrorCodeHeader); code != "400" || string(reply.Data) == "handled" {
					t.Fatalf("reply %q with error code %q, want an error reply with code 400", reply.Data, code)
				}
			})
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if n := echo.Calls.Load(); n != 0 {
			t.Fatalf("handler ran %d times for malformed XIDs, want 0", n)
		}
		out := logs.String()
		if strings.Count(out, "malformed xid") < 2*len(malformed) {
			t.Fatalf("logs do not record each rejected message:\n%s", out)
		}
		if strings.Contains(out, secretBody) {
			t.Fatalf("logs hold a message body:\n%s", out)
		}
	})
}

func TestJetStream(t *testing.T) {
	forEachServer(t, func(t *testing.T, nc *nats.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		name := "GTXTEST_" + nuid.Next()
		subj := "gtxtest.js." + nuid.Next()
		stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj}, Storage: jetstream.MemoryStorage})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = js.DeleteStream(context.Background(), name) }()
		cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		logs := &syncBuffer{}
		s := newSeen()
		cc, err := cons.Consume(natsgtx.JetStreamHandler(ctx, func(ctx context.Context, msg jetstream.Msg) error {
			s.add(gtxtest.Describe(ctx))
			return msg.Ack()
		}, natsgtx.WithLogger(slog.New(slog.NewTextHandler(logs, nil))), natsgtx.WithGlobalLock()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Stop()

		for _, tt := range malformed {
			msg := &nats.Msg{Subject: subj, Data: []byte(secretBody), Header: nats.Header{gtx.MetadataKey: tt.values}}
			if _, err := js.PublishMsg(ctx, msg); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := js.PublishMsg(ctx, natsgtx.NewMsg(gtx.ContextWithXID(ctx, "js-xid"), subj, []byte(secretBody))); err != nil {
			t.Fatal(err)
		}
		if got := s.wait(t, 1); fmt.Sprint(got) != "[js-xid|true]" {
			t.Fatalf("handler saw %v, want [js-xid|true]", got)
		}
		// Every message is settled: the good one acked, the malformed ones
		// terminated rather than left for redelivery.
		for {
			info, err := cons.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.NumAckPending == 0 && info.AckFloor.Stream == uint64(len(malformed)+1) {
				if info.NumRedelivered != 0 {
					t.Fatalf("%d messages were redelivered, want none", info.NumRedelivered)
				}
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("messages not settled: %+v", info)
			case <-time.After(20 * time.Millisecond):
			}
		}
		if got := s.all(); len(got) != 1 {
			t.Fatalf("handler saw %v, want only the well-formed message", got)
		}
		if out := logs.String(); strings.Count(out, "terminated") != len(malformed) || strings.Contains(out, secretBody) {
			t.Fatalf("logs should record %d terminations and no body:\n%s", len(malformed), out)
		}
	})
}

func TestGlobalTx(t *testing.T) {
	nc := gtxtest.ConnectNATS(t, gtxtest.StartNATS(t))
	runner := &gtxtest.Runner{}
	g, err := interceptors.NewGlobalTx(runner, interceptors.Name("consume-order"))
	if err != nil {
		t.Fatal(err)
	}
	subj := subject()
	sub, err := nc.Subscribe(subj, natsgtx.Handler(context.Background(), func(ctx context.Context, msg *nats.Msg) error {
		_, err := gtxtest.Handle(ctx, string(msg.Data))
		if rerr := msg.Respond([]byte(gtxtest.Describe(ctx))); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}, natsgtx.WithGlobalTx(g)))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, cmd := range []string{"", gtxtest.CmdFail} {
		if _, err := natsgtx.Request(ctx, nc, subj, []byte(cmd)); err != nil {
			t.Fatal(err)
		}
	}
	reply, err := natsgtx.Request(gtx.ContextWithXID(ctx, "outer:1"), nc, subj, nil)
	if err != nil || string(reply.Data) != "outer:1|false" {
		t.Fatalf("joined handler answered %v, %v; want outer:1|false", reply, err)
	}
	txs := runner.Txs()
	want := []gtxtest.Outcome{gtxtest.Committed, gtxtest.RolledBack, gtxtest.Joined}
	if len(txs) != len(want) {
		t.Fatalf("transactions %+v, want %v", txs, want)
	}
	for i, tx := range txs {
		if tx.Outcome != want[i] || tx.Name != "consume-order" {
			t.Fatalf("transactions %+v, want %v named consume-order", txs, want)
		}
	}
}
