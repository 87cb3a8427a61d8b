package service

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kerrors "github.com/go-kratos/kratos/v2/errors"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/gtx-io/gtx/interceptors/natsgtx"
	"github.com/gtx-io/gtx/modes/saga"
	"github.com/gtx-io/gtx/modes/saga/statemachine"
)

// Saga steps travel over NATS JetStream in the wire format of the saga
// state machine's NATS steps (statemachine.NATS, ParseCommand,
// Command.Reply): the XID in header gtx.MetadataKey, the step key in
// statemachine.IdempotencyKeyHeader, the reply subject and a send number in
// headers, the input as the JSON body. Subjects, under Config.NATSSubject:
//
//	<prefix>.cmd.<service>.<method>   commands, consumed by <service>
//	<prefix>.reply.<instance>         replies to one order instance
//
// all held by the stream Config.NATSStream.

// Timings of the steps over NATS.
const (
	// StepWait bounds the wait for one step's reply; the step is then sent
	// again (same key, so done at most once).
	StepWait = 15 * time.Second
	// stepAckWait is how long a command handed to a service instance stays
	// its own before JetStream delivers it again (to a restarted or another
	// instance).
	stepAckWait = 10 * time.Second
	// stepWorkers caps the commands one service instance runs at once.
	stepWorkers = 32
	// stepStreamAge is how long the stream keeps commands and replies.
	stepStreamAge = 24 * time.Hour
)

// Reasons of the step failures the sample makes itself.
const (
	// ReasonStepTimeout: no reply within StepWait; the step may be sent
	// again.
	ReasonStepTimeout = "STEP_TIMEOUT"
	// ReasonUnknownStep: the service has no such step method.
	ReasonUnknownStep = "UNKNOWN_STEP"
	// ReasonStepError: the step failed with an error that carried no
	// reason.
	ReasonStepError = "STEP_ERROR"
)

// openNATS connects to NATS and creates (or updates) the steps' stream.
func (b *Base) openNATS(ctx context.Context) error {
	cfg := b.Cfg
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("gtx-sample-"+cfg.Name), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return fmt.Errorf("service %s: connect to NATS at %s: %w", cfg.Name, cfg.NATSURL, err)
	}
	b.closers = append(b.closers, func() error { nc.Close(); return nil })
	if b.JS, err = jetstream.New(nc); err != nil {
		return fmt.Errorf("service %s: JetStream: %w", cfg.Name, err)
	}
	_, err = b.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        cfg.NATSStream,
		Description: "gtx order-inventory sample: saga step commands and replies",
		Subjects:    []string{cfg.NATSSubject + ".>"},
		MaxAge:      stepStreamAge,
	})
	if err != nil {
		return fmt.Errorf("service %s: create the JetStream stream %s for %s.> (is JetStream on?): %w", cfg.Name, cfg.NATSStream, cfg.NATSSubject, err)
	}
	return nil
}

// StepFunc runs one saga step command: the forward work or, when
// cmd.Compensation, the undo of the step cmd.ForwardKey. Its result is the
// reply's JSON body; an error is replied as a failure whose code is its
// kratos reason.
type StepFunc func(ctx context.Context, cmd *statemachine.Command) (any, error)

// ServeParticipant serves a saga participant: its steps over NATS
// (ServeSteps), the routes and gRPC services register adds, then Start. On
// failure it closes b.
func (b *Base) ServeParticipant(ctx context.Context, steps map[string]StepFunc, register func()) error {
	err := b.ServeSteps(ctx, steps)
	if err == nil {
		register()
		err = b.Start(ctx)
	}
	if err != nil {
		b.Close()
	}
	return err
}

// ServeSteps consumes this service's step commands (<prefix>.cmd.<name>.>)
// with a durable consumer that every instance of the service shares, runs
// each with the StepFunc its method names (up to 32 at once), replies, and
// then acknowledges it. A command whose instance died unacknowledged is
// delivered again after 10 s; steps must be idempotent by key. Consuming
// stops at Close, after the commands running have replied.
func (b *Base) ServeSteps(ctx context.Context, steps map[string]StepFunc) error {
	name := b.Cfg.Name
	filter := b.Cfg.NATSSubject + ".cmd." + name + ".>"
	cons, err := b.JS.CreateOrUpdateConsumer(ctx, b.Cfg.NATSStream, jetstream.ConsumerConfig{
		Durable:       "steps-" + name,
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       stepAckWait,
		MaxAckPending: 4 * stepWorkers,
	})
	if err != nil {
		return fmt.Errorf("service %s: consumer of %s: %w", name, filter, err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var (
		mu     sync.Mutex
		closed bool
		wg     sync.WaitGroup
		slots  = make(chan struct{}, stepWorkers)
	)
	handle := func(ctx context.Context, msg jetstream.Msg) error {
		select {
		case slots <- struct{}{}:
		case <-sctx.Done():
			return nil
		}
		mu.Lock()
		if closed {
			mu.Unlock()
			<-slots
			return msg.Nak()
		}
		wg.Add(1)
		mu.Unlock()
		go func() {
			defer func() { <-slots; wg.Done() }()
			b.runStep(ctx, msg, steps)
		}()
		return nil
	}
	cc, err := cons.Consume(natsgtx.JetStreamHandler(sctx, handle, natsgtx.WithLogger(b.Log)))
	if err != nil {
		cancel()
		return fmt.Errorf("service %s: consume %s: %w", name, filter, err)
	}
	b.closers = append(b.closers, func() error {
		cc.Stop()
		mu.Lock()
		closed = true
		mu.Unlock()
		wg.Wait()
		cancel()
		return nil
	})
	return nil
}

// runStep runs one command and replies; the command is acknowledged once
// the reply is out, and delivered again when it could not be sent.
func (b *Base) runStep(ctx context.Context, msg jetstream.Msg, steps map[string]StepFunc) {
	cmd, err := statemachine.ParseCommand(msg.Headers(), msg.Data())
	if err != nil {
		b.Log.Warn("dropped a malformed saga step command", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	var body json.RawMessage
	f := steps[cmd.Method]
	if f == nil {
		err = kerrors.BadRequest(ReasonUnknownStep, fmt.Sprintf("service %s: no step method %q", b.Cfg.Name, cmd.Method))
	} else {
		var out any
		if out, err = f(ctx, cmd); err == nil {
			body, err = json.Marshal(out)
		}
	}
	if err != nil {
		ke := kerrors.FromError(err)
		code := ke.Reason
		if code == "" {
			code = ReasonStepError
		}
		err = &statemachine.TaskError{Code: code, Message: ke.Message}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if rerr := cmd.Reply(rctx, b.JS, body, err); rerr != nil {
		b.Log.Warn("replying to a saga step failed; it will run again", "key", cmd.Key, "err", rerr)
		_ = msg.Nak()
		return
	}
	if aerr := msg.Ack(); aerr != nil {
		b.Log.Debug("acknowledging a saga step failed", "key", cmd.Key, "err", aerr)
	}
}

// StepClient sends saga steps over NATS and waits for their replies, which
// come back on a subject of this instance's own.
type StepClient struct {
	b       *Base
	send    statemachine.AsyncService
	replyTo string
	seq     atomic.Int64

	mu      sync.Mutex
	waiters map[string]chan *nats.Msg
}

// StepClient starts receiving replies on <prefix>.reply.<random>, until
// Close.
func (b *Base) StepClient(ctx context.Context) (*StepClient, error) {
	s := &StepClient{
		b:       b,
		send:    statemachine.NATS(b.JS, b.Cfg.NATSSubject+".cmd"),
		replyTo: b.Cfg.NATSSubject + ".reply." + nuid.Next(),
		waiters: map[string]chan *nats.Msg{},
	}
	// Compensations are numbered from a random start: any instance may send
	// one, any number of times, and each send needs a message ID of its own.
	s.seq.Store(rand.Int64N(1 << 40))
	cons, err := b.JS.OrderedConsumer(ctx, b.Cfg.NATSStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.replyTo},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("service %s: reply consumer: %w", b.Cfg.Name, err)
	}
	cc, err := cons.Consume(s.onReply)
	if err != nil {
		return nil, fmt.Errorf("service %s: consume replies: %w", b.Cfg.Name, err)
	}
	b.closers = append(b.closers, func() error { cc.Stop(); return nil })
	return s, nil
}

func (s *StepClient) onReply(msg jetstream.Msg) {
	h := msg.Headers()
	id := h.Get(statemachine.IdempotencyKeyHeader) + "@" + h.Get(statemachine.HeaderAttempt)
	s.mu.Lock()
	ch := s.waiters[id]
	s.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- &nats.Msg{Header: h, Data: msg.Data()}:
	default:
	}
}

// Do sends the forward command of step c to method ("inventory.reserve")
// with in as its JSON body, waits for the reply, and decodes its body into
// out (when not nil). A failure reply comes back as a kratos error with the
// step's reason and message; no reply within StepWait as one with
// ReasonStepTimeout.
func (s *StepClient) Do(ctx context.Context, method string, c saga.Call, in, out any) error {
	data, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("service %s: encode the %s command: %w", s.b.Cfg.Name, method, err)
	}
	attempt := max(c.Attempt, 1)
	return s.call(ctx, statemachine.Task{XID: c.XID, Key: c.Key, Method: method, Attempt: attempt, Input: data}, out)
}

// Undo sends the compensation of step c to method ("inventory.release")
// and waits for its reply. Its key is c.Key + "/undo" and it names c.Key
// as the step it undoes.
func (s *StepClient) Undo(ctx context.Context, method string, c saga.Call) error {
	t := statemachine.Task{XID: c.XID, Key: c.Key + "/undo", ForwardKey: c.Key, Compensation: true,
		Method: method, Attempt: int(s.seq.Add(1)), Input: json.RawMessage("{}")}
	return s.call(ctx, t, nil)
}

func (s *StepClient) call(ctx context.Context, t statemachine.Task, out any) error {
	t.ReplyTo = s.replyTo
	id := t.Key + "@" + strconv.Itoa(t.Attempt)
	ch := make(chan *nats.Msg, 1)
	s.mu.Lock()
	s.waiters[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, id)
		s.mu.Unlock()
	}()
	if err := s.send.Send(ctx, t); err != nil {
		return kerrors.ServiceUnavailable(ReasonStepTimeout, fmt.Sprintf("service %s: send %s: %v", s.b.Cfg.Name, t.Method, err))
	}
	timer := time.NewTimer(StepWait)
	defer timer.Stop()
	var reply *nats.Msg
	select {
	case reply = <-ch:
	case <-timer.C:
		return kerrors.ServiceUnavailable(ReasonStepTimeout, fmt.Sprintf("service %s: no reply to %s %s within %v", s.b.Cfg.Name, t.Method, t.Key, StepWait))
	case <-ctx.Done():
		return fmt.Errorf("service %s: wait for the reply to %s %s: %w", s.b.Cfg.Name, t.Method, t.Key, ctx.Err())
	}
	if code := reply.Header.Get(statemachine.HeaderErrorCode); code != "" {
		text := strings.TrimPrefix(reply.Header.Get(statemachine.HeaderError), code+": ")
		return kerrors.Conflict(code, text)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(reply.Data, out); err != nil {
		return fmt.Errorf("service %s: decode the reply to %s: %w", s.b.Cfg.Name, t.Method, err)
	}
	return nil
}
