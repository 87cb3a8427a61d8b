package statemachine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gtx-io/gtx"
)

// Headers of NATS step commands and replies. The XID travels in
// gtx.MetadataKey, and the idempotency key in IdempotencyKeyHeader.
const (
	// HeaderAttempt carries Task.Attempt; a reply echoes it.
	HeaderAttempt = "Gtx-Saga-Attempt"
	// HeaderReplyTo carries the subject the reply is published to.
	HeaderReplyTo = "Gtx-Saga-Reply-To"
	// HeaderMethod carries the state's ServiceMethod.
	HeaderMethod = "Gtx-Saga-Method"
	// HeaderCompensation is "true" on a compensation command.
	HeaderCompensation = "Gtx-Saga-Compensation"
	// HeaderForwardKey carries Task.ForwardKey on a compensation command.
	HeaderForwardKey = "Gtx-Saga-Forward-Key"
	// HeaderErrorCode and HeaderError carry a failure on a reply; a reply
	// without HeaderErrorCode is a success, its body the result.
	HeaderErrorCode = "Gtx-Saga-Error-Code"
	HeaderError     = "Gtx-Saga-Error"
)

// NATS returns an AsyncService that publishes each task as a command to
// subject + "." + ServiceMethod (just subject when the method is empty)
// through JetStream, so a stream must hold that subject. The body is the
// task's input; the headers carry the XID, the idempotency key, the attempt
// and the subject to reply to. The message ID (Nats-Msg-Id) is the key and
// the attempt, so a command sent again after an engine restart is dropped
// by the stream's duplicate window.
//
// The service reads commands with ParseCommand and answers with
// Command.Reply. A reply delivered twice is applied once.
func NATS(js jetstream.JetStream, subject string) AsyncService {
	return &natsService{js: js, subject: subject}
}

type natsService struct {
	js      jetstream.JetStream
	subject string
}

func (n *natsService) Send(ctx context.Context, t Task) error {
	subject := n.subject
	if t.Method != "" {
		subject += "." + t.Method
	}
	msg := &nats.Msg{Subject: subject, Data: t.Input, Header: nats.Header{}}
	msg.Header.Set(gtx.MetadataKey, t.XID)
	msg.Header.Set(IdempotencyKeyHeader, t.Key)
	msg.Header.Set(HeaderAttempt, strconv.Itoa(t.Attempt))
	msg.Header.Set(HeaderReplyTo, t.ReplyTo)
	msg.Header.Set(HeaderMethod, t.Method)
	if t.Compensation {
		msg.Header.Set(HeaderCompensation, "true")
		msg.Header.Set(HeaderForwardKey, t.ForwardKey)
	}
	msg.Header.Set(jetstream.MsgIDHeader, t.Key+"@"+strconv.Itoa(t.Attempt))
	if _, err := n.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("statemachine: publish command to %s: %w", subject, err)
	}
	return nil
}

// Command is a NATS step's command, as the service sees it.
type Command struct {
	// XID, Key, ForwardKey, Method, Attempt and Compensation are the
	// task's (see Task).
	XID          string
	Key          string
	ForwardKey   string
	Method       string
	Attempt      int
	Compensation bool
	// Input is the message body.
	Input   json.RawMessage
	replyTo string
}

// ErrBadCommand is returned by ParseCommand for a message that is not a
// well-formed command.
var ErrBadCommand = errors.New("statemachine: malformed step command")

// ParseCommand reads a command from a message's headers and body.
func ParseCommand(header nats.Header, data []byte) (*Command, error) {
	c := &Command{
		XID: header.Get(gtx.MetadataKey), Key: header.Get(IdempotencyKeyHeader), ForwardKey: header.Get(HeaderForwardKey),
		Method: header.Get(HeaderMethod), Compensation: header.Get(HeaderCompensation) == "true",
		Input: json.RawMessage(data), replyTo: header.Get(HeaderReplyTo),
	}
	if err := gtx.ValidateXID(c.XID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCommand, err)
	}
	n, err := strconv.Atoi(header.Get(HeaderAttempt))
	switch {
	case c.Key == "":
		return nil, fmt.Errorf("%w: no %s header", ErrBadCommand, IdempotencyKeyHeader)
	case c.replyTo == "":
		return nil, fmt.Errorf("%w: no %s header", ErrBadCommand, HeaderReplyTo)
	case err != nil || n < 1:
		return nil, fmt.Errorf("%w: %s header %q is not a positive number", ErrBadCommand, HeaderAttempt, header.Get(HeaderAttempt))
	}
	c.Attempt = n
	return c, nil
}

// Reply publishes the outcome of c through js: result on success, or a
// failure when err is not nil (a *TaskError gives its code). Replying
// again, after a redelivered command, is harmless.
func (c *Command) Reply(ctx context.Context, js jetstream.JetStream, result json.RawMessage, err error) error {
	msg := &nats.Msg{Subject: c.replyTo, Data: result, Header: nats.Header{}}
	msg.Header.Set(gtx.MetadataKey, c.XID)
	msg.Header.Set(IdempotencyKeyHeader, c.Key)
	msg.Header.Set(HeaderAttempt, strconv.Itoa(c.Attempt))
	if err != nil {
		msg.Data = nil
		msg.Header.Set(HeaderErrorCode, codeOf(err))
		msg.Header.Set(HeaderError, err.Error())
	}
	if _, perr := js.PublishMsg(ctx, msg); perr != nil {
		return fmt.Errorf("statemachine: publish reply to %s: %w", c.replyTo, perr)
	}
	return nil
}

// consumeReplies makes sure the reply stream exists and starts the durable
// consumer that applies replies.
func (e *Engine) consumeReplies(ctx context.Context) error {
	js := e.cfg.JetStream
	stream, err := js.Stream(ctx, e.cfg.ReplyStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		stream, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: e.cfg.ReplyStream, Subjects: []string{e.cfg.ReplySubject}})
	}
	if err != nil {
		return fmt.Errorf("statemachine: reply stream %q: %w", e.cfg.ReplyStream, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: e.cfg.ReplyConsumer, FilterSubject: e.cfg.ReplySubject,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("statemachine: reply consumer %q: %w", e.cfg.ReplyConsumer, err)
	}
	cc, err := cons.Consume(e.applyReply)
	if err != nil {
		return fmt.Errorf("statemachine: consume replies: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		cc.Stop()
		return ErrClosed
	}
	e.cons = cc
	return nil
}

// applyReply records a reply on its execution, once: a reply for an
// attempt already finished (a duplicate) or unknown is acknowledged and
// dropped.
func (e *Engine) applyReply(msg jetstream.Msg) {
	h := msg.Headers()
	key := h.Get(IdempotencyKeyHeader)
	attempt, err := strconv.Atoi(h.Get(HeaderAttempt))
	if key == "" || err != nil {
		e.log.Warn("dropped a malformed step reply", "subject", msg.Subject(), "key", key)
		_ = msg.Term()
		return
	}
	code, text := h.Get(HeaderErrorCode), h.Get(HeaderError)
	out := string(msg.Data())
	if code == "" && len(out) > 0 && !json.Valid(msg.Data()) {
		code, text, out = CodeInput, "the reply's body is not JSON", ""
	}
	if code != "" && text == "" {
		text = code
	}
	applied, err := e.store.finishExec(e.ctx, key, attempt, out, code, text)
	if err != nil {
		e.log.Warn("storing a step reply failed; it will be redelivered", "key", key, "err", err)
		_ = msg.Nak()
		return
	}
	if !applied {
		e.log.Debug("ignored a duplicate or stale step reply", "key", key, "attempt", attempt)
	}
	if err := msg.Ack(); err != nil {
		e.log.Debug("acknowledging a step reply failed", "key", key, "err", err)
	}
	if applied {
		e.notify(key)
	}
}

func (e *Engine) notify(key string) {
	e.mu.Lock()
	ch := e.waiters[key]
	e.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// await sends the current attempt of x to an asynchronous service and waits
// for its reply (or its timeout). After a restart it sends the command
// again, which the stream drops as a duplicate if it was sent before.
func (r *runner) await(ctx context.Context, st *State, x *execRow, task Task, svc AsyncService) error {
	ch := make(chan struct{}, 1)
	r.e.mu.Lock()
	r.e.waiters[x.Key] = ch
	r.e.mu.Unlock()
	defer func() {
		r.e.mu.Lock()
		delete(r.e.waiters, x.Key)
		r.e.mu.Unlock()
	}()
	if err := r.reload(ctx, x); err != nil || x.Status != execRunning {
		return err
	}
	task.ReplyTo = r.e.cfg.ReplySubject
	if err := svc.Send(ctx, task); err != nil {
		if ctx.Err() != nil {
			return errStopped
		}
		if _, ferr := r.e.store.finishExec(ctx, x.Key, x.Attempts, "", codeOf(err), err.Error()); ferr != nil {
			return r.stopOr(ctx, ferr)
		}
		return r.reload(ctx, x)
	}
	var timeout <-chan time.Time
	if st.TimeoutSeconds > 0 {
		t := time.NewTimer(time.Duration(st.TimeoutSeconds * float64(time.Second)))
		defer t.Stop()
		timeout = t.C
	}
	// The store is read again now and then besides: a reply applied by
	// another process's consumer notifies no one here.
	poll := time.NewTicker(replyPoll)
	defer poll.Stop()
	for {
		select {
		case <-ch:
		case <-poll.C:
		case <-timeout:
			if _, err := r.e.store.finishExec(ctx, x.Key, x.Attempts, "", CodeTimeout, fmt.Sprintf("no reply within %vs", st.TimeoutSeconds)); err != nil {
				return r.stopOr(ctx, err)
			}
		case <-ctx.Done():
			return errStopped
		}
		attempt := x.Attempts
		if err := r.reload(ctx, x); err != nil || x.Status != execRunning || x.Attempts != attempt {
			return err
		}
	}
}

// replyPoll is how often a task waiting for a reply reads its execution
// again.
const replyPoll = 2 * time.Second
