package statemachine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gtx-io/gtx/internal/gtxtest"
	sm "github.com/gtx-io/gtx/modes/saga/statemachine"
)

const natsJSON = `{
  "Name": "ship",
  "StartState": "Book",
  "RecoverStrategy": "Forward",
  "States": {
    "Book": {"Type": "ServiceTask", "ServiceName": "shipping", "ServiceMethod": "book", "CompensateState": "Cancel",
             "Input": {"order": "$.order"}, "Output": {"tracking": "$.tracking"}, "Next": "Notify"},
    "Cancel": {"Type": "ServiceTask", "ServiceName": "shipping", "ServiceMethod": "cancel", "IsForCompensation": true},
    "Notify": {"Type": "ServiceTask", "ServiceName": "local", "ServiceMethod": "notify", "Next": "Done"},
    "Done": {"Type": "Succeed"}
  }
}`

// natsEnv is one test's streams on one NATS server.
type natsEnv struct {
	js                     jetstream.JetStream
	prefix                 string
	cmdStream, replyStream string
}

func newNATSEnv(t *testing.T, url string) *natsEnv {
	t.Helper()
	nc := gtxtest.ConnectNATS(t, url)
	js, err := jetstream.New(nc)
	mustOK(t, err)
	n := &natsEnv{js: js, prefix: uniqueName("gtxsaga"), cmdStream: uniqueName("GTXSAGA_CMD_"), replyStream: uniqueName("GTXSAGA_REPLY_")}
	ctx := ctxTimeout(t)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: n.cmdStream, Subjects: []string{n.prefix + ".cmd.>"}, Duplicates: time.Minute})
	mustOK(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range []string{n.cmdStream, n.replyStream} {
			if err := js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Errorf("delete stream %s: %v", s, err)
			}
		}
	})
	return n
}

func (n *natsEnv) config(c *sm.Config) {
	c.JetStream = n.js
	c.ReplyStream = n.replyStream
	c.ReplySubject = n.prefix + ".reply"
	c.ReplyConsumer = "engine"
}

// worker consumes the command stream and hands each command to handle.
func (n *natsEnv) worker(t *testing.T, handle func(c *sm.Command)) {
	t.Helper()
	ctx := ctxTimeout(t)
	cons, err := n.js.CreateOrUpdateConsumer(ctx, n.cmdStream, jetstream.ConsumerConfig{Durable: "worker", AckPolicy: jetstream.AckExplicitPolicy})
	mustOK(t, err)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		c, err := sm.ParseCommand(msg.Headers(), msg.Data())
		if err != nil {
			t.Errorf("ParseCommand: %v", err)
			_ = msg.Term()
			return
		}
		handle(c)
		_ = msg.Ack()
	})
	mustOK(t, err)
	t.Cleanup(cc.Stop)
}

func (n *natsEnv) engine(t *testing.T, db opener, j *journal) *sm.Engine {
	t.Helper()
	e := newEngine(t, db(t), n.config)
	mustOK(t, e.Register(mustParse(t, natsJSON)))
	mustOK(t, e.RegisterAsyncService("shipping", sm.NATS(n.js, n.prefix+".cmd.shipping")))
	mustOK(t, e.RegisterService("local", recorder(j, nil)))
	return e
}

// TestNATSDuplicateReply: the service answers twice with different results;
// the first is applied, the second ignored.
func TestNATSDuplicateReply(t *testing.T) {
	for name, url := range gtxtest.NATSServers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			n := newNATSEnv(t, url)
			ctx := ctxTimeout(t)
			var mu sync.Mutex
			var cmds []*sm.Command
			n.worker(t, func(c *sm.Command) {
				mu.Lock()
				cmds = append(cmds, c)
				mu.Unlock()
				for i := 1; i <= 2; i++ {
					out, _ := json.Marshal(map[string]any{"tracking": fmt.Sprintf("T%d", i)})
					if err := c.Reply(ctx, n.js, out, nil); err != nil {
						t.Errorf("Reply: %v", err)
					}
				}
			})
			j := &journal{}
			dsn := sqliteDSN(t)
			e := n.engine(t, func(t testing.TB) *gormDB { return openSQLite(t, dsn) }, j)
			mustOK(t, e.Start(ctx))
			inst, err := e.Run(ctx, "ship", map[string]any{"order": "o-1"})
			if err != nil {
				t.Fatalf("Run: %v (%s)", err, describe(inst))
			}
			waitDrained(t, n.js, n.replyStream, "engine")
			inst, err = e.Instance(ctx, inst.ID)
			mustOK(t, err)
			if inst.Context["tracking"] != "T1" {
				t.Fatalf("tracking %v, want T1 from the first reply", inst.Context["tracking"])
			}
			if x := inst.Executions[0]; x.Attempts != 1 || x.Status != "Succeeded" {
				t.Fatalf("execution %+v, want one attempt, succeeded", x)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(cmds) != 1 || cmds[0].XID != inst.XID || cmds[0].Key != inst.Executions[0].Key || string(cmds[0].Input) != `{"order":"o-1"}` {
				t.Fatalf("commands %+v, want one for %s with its key and input", cmds, inst.XID)
			}
		})
	}
}

// waitDrained waits until the durable consumer has every message acked.
func waitDrained(t *testing.T, js jetstream.JetStream, stream, durable string) {
	t.Helper()
	ctx := ctxTimeout(t)
	for {
		c, err := js.Consumer(ctx, stream, durable)
		mustOK(t, err)
		info, err := c.Info(ctx)
		mustOK(t, err)
		if info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream > 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("consumer %s still has messages: %+v", durable, info)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestNATSRestartResumesWaiting: the engine stops while it waits for a
// reply; the reply arrives while no engine runs; a new engine on the same
// store and streams applies it and finishes the instance, without sending
// the command twice to the service.
func TestNATSRestartResumesWaiting(t *testing.T) {
	for name, url := range gtxtest.NATSServers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			n := newNATSEnv(t, url)
			ctx := ctxTimeout(t)
			cmds := make(chan *sm.Command, 4)
			n.worker(t, func(c *sm.Command) { cmds <- c })
			dsn := sqliteDSN(t)
			db := func(t testing.TB) *gormDB { return openSQLite(t, dsn) }

			j1 := &journal{}
			e1 := n.engine(t, db, j1)
			mustOK(t, e1.Start(ctx))
			id, err := e1.StartInstance(ctx, "ship", map[string]any{"order": "o-2"})
			mustOK(t, err)
			cmd := <-cmds
			mustOK(t, e1.Close())
			mustOK(t, cmd.Reply(ctx, n.js, json.RawMessage(`{"tracking":"T9"}`), nil))

			j2 := &journal{}
			e2 := n.engine(t, db, j2)
			mustOK(t, e2.Start(ctx))
			inst, err := e2.Wait(ctx, id)
			if err != nil {
				t.Fatalf("Wait: %v (%s)", err, describe(inst))
			}
			if inst.Context["tracking"] != "T9" || len(j1.list()) != 0 || len(j2.list()) != 1 {
				t.Fatalf("tracking %v, calls %v then %v: want T9 and notify once, after the restart", inst.Context["tracking"], j1.list(), j2.list())
			}
			select {
			case c := <-cmds:
				t.Fatalf("the service got the command again: %+v", c)
			default:
			}
		})
	}
}

// TestNATSFailedReplyCompensates: a failure reply fails the step for good
// (no retry rule), and the compensation goes out as a NATS command too.
func TestNATSFailedReplyCompensates(t *testing.T) {
	n := newNATSEnv(t, gtxtest.StartNATS(t))
	ctx := ctxTimeout(t)
	var mu sync.Mutex
	var seen []string
	n.worker(t, func(c *sm.Command) {
		mu.Lock()
		seen = append(seen, c.Method)
		mu.Unlock()
		var err error
		if c.Method == "book" {
			err = sm.Errorf("NoCarrier", "no carrier today")
		}
		if rerr := c.Reply(ctx, n.js, nil, err); rerr != nil {
			t.Errorf("Reply: %v", rerr)
		}
		if c.Compensation && c.ForwardKey == "" {
			t.Errorf("compensation command without the forward key")
		}
	})
	j := &journal{}
	dsn := sqliteDSN(t)
	e := n.engine(t, func(t testing.TB) *gormDB { return openSQLite(t, dsn) }, j)
	mustOK(t, e.Start(ctx))
	_, err := e.Run(ctx, "ship", map[string]any{"order": "o-3"})
	var fe *sm.FailedError
	if !errors.As(err, &fe) || fe.Code != "NoCarrier" {
		t.Fatalf("Run: %v, want failure NoCarrier", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(seen) != "[book cancel]" {
		t.Fatalf("commands %v, want book then cancel", seen)
	}
}

const natsTimeoutJSON = `{
  "Name": "slow",
  "StartState": "Book",
  "States": {
    "Book": {"Type": "ServiceTask", "ServiceName": "shipping", "ServiceMethod": "book", "TimeoutSeconds": 0.2,
             "Retry": [{"Exceptions": ["Timeout"], "IntervalSeconds": 0.01, "MaxAttempts": 5}],
             "Output": {"tracking": "$.tracking"}, "Next": "Done"},
    "Done": {"Type": "Succeed"}
  }
}`

// TestNATSTimeoutRetryIgnoresStaleReply: the first command gets no reply in
// time, so the step is retried with a new attempt; the reply to the first
// attempt, arriving late, is ignored. (Should a busy machine let a later
// attempt time out too, the next one is answered the same way.)
func TestNATSTimeoutRetryIgnoresStaleReply(t *testing.T) {
	n := newNATSEnv(t, gtxtest.StartNATS(t))
	ctx := ctxTimeout(t)
	var mu sync.Mutex
	var first *sm.Command
	n.worker(t, func(c *sm.Command) {
		mu.Lock()
		defer mu.Unlock()
		if c.Attempt == 1 {
			first = c // answered only after the second attempt
			return
		}
		if err := first.Reply(ctx, n.js, json.RawMessage(`{"tracking":"stale"}`), nil); err != nil {
			t.Errorf("Reply: %v", err)
		}
		if err := c.Reply(ctx, n.js, json.RawMessage(`{"tracking":"fresh"}`), nil); err != nil {
			t.Errorf("Reply: %v", err)
		}
	})
	e := newEngine(t, openSQLite(t, sqliteDSN(t)), n.config)
	mustOK(t, e.Register(mustParse(t, natsTimeoutJSON)))
	mustOK(t, e.RegisterAsyncService("shipping", sm.NATS(n.js, n.prefix+".cmd.shipping")))
	mustOK(t, e.Start(ctx))
	inst, err := e.Run(ctx, "slow", nil)
	if err != nil {
		t.Fatalf("Run: %v (%s)", err, describe(inst))
	}
	waitDrained(t, n.js, n.replyStream, "engine")
	inst, err = e.Instance(ctx, inst.ID)
	mustOK(t, err)
	if inst.Context["tracking"] != "fresh" || inst.Executions[0].Attempts < 2 {
		t.Fatalf("tracking %v after %d attempts, want fresh after 2 or more", inst.Context["tracking"], inst.Executions[0].Attempts)
	}
}
