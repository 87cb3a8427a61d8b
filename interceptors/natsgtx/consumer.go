package natsgtx

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/modes/msg"
)

// Headers a dead letter carries beside the message's own.
const (
	// HeaderDeadSubject is the subject the message was consumed from.
	HeaderDeadSubject = "Gtx-Dead-Subject"
	// HeaderDeadError is the error of its last attempt.
	HeaderDeadError = "Gtx-Dead-Error"
	// HeaderDeadAttempts is how many attempts it had.
	HeaderDeadAttempts = "Gtx-Dead-Attempts"
)

// ApplyFunc applies one message inside tx, the consumer's local
// transaction that also holds the message's inbox row; ctx carries the
// message's XID when it has one. It must not commit or roll back tx:
// return an error to roll back and retry.
type ApplyFunc func(ctx context.Context, tx *sql.Tx, m jetstream.Msg) error

// ConsumerConfig configures a Consumer. Start from DefaultConsumerConfig.
type ConsumerConfig struct {
	// MaxAttempts is the retry budget: a message whose apply failed this
	// many times is dead-lettered (published to DeadLetter, then
	// terminated) instead of retried.
	MaxAttempts int
	// DeadLetter is the subject dead letters are published to, with the
	// message's headers and payload, HeaderDeadSubject, HeaderDeadError and
	// HeaderDeadAttempts, deduplicated by the message ID; a JetStream
	// stream must capture it. Empty terminates such messages without a
	// copy (the consumer's advisories still name them).
	DeadLetter string
	// OrderKey, when set, applies the messages of one key one at a time, in
	// the order this consumer receives them: a failing message is retried
	// in place (holding back the later ones of its key) until it applies
	// or is dead-lettered. Nil applies messages in any order, a failed one
	// redelivered by JetStream after Backoff.
	OrderKey func(m jetstream.Msg) string
	// Workers is how many messages are applied at once (of different keys
	// when OrderKey is set).
	Workers int
	// Backoff is the pause before a failed message is tried again; it
	// doubles per attempt up to ten times its value.
	Backoff time.Duration
	// Logger receives the consumer's logs; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConsumerConfig retries a message 5 times, 4 workers at once, from
// 100ms apart.
func DefaultConsumerConfig() ConsumerConfig {
	return ConsumerConfig{MaxAttempts: 5, Workers: 4, Backoff: 100 * time.Millisecond}
}

// ErrInvalidConfig is matched by every error ConsumerConfig.Validate
// returns.
var ErrInvalidConfig = errors.New("natsgtx: invalid config")

// Validate reports the first problem with c, as an error matching
// ErrInvalidConfig.
func (c *ConsumerConfig) Validate() error {
	switch {
	case c.MaxAttempts <= 0:
		return fmt.Errorf("%w: MaxAttempts must be positive, got %d", ErrInvalidConfig, c.MaxAttempts)
	case c.Workers <= 0:
		return fmt.Errorf("%w: Workers must be positive, got %d", ErrInvalidConfig, c.Workers)
	case c.Backoff <= 0:
		return fmt.Errorf("%w: Backoff must be positive, got %v", ErrInvalidConfig, c.Backoff)
	}
	return nil
}

// Consumer applies JetStream messages to a database exactly once: each
// message's effects and its row in the inbox (msg.Inbox, keyed by the
// message ID) commit in one local transaction, and the message is
// acknowledged only after. A message delivered again (a lost ack, a
// consumer killed before it acknowledged, a publisher that sent it twice)
// finds its row and is acknowledged without being applied. The message ID
// is its Nats-Msg-Id header, which the coordinator's msg.Courier sets to
// the gtx message ID; a message without one is keyed by its stream and
// sequence.
type Consumer struct {
	inbox *msg.Inbox
	apply ApplyFunc
	cfg   ConsumerConfig
	js    jetstream.JetStream
	log   *slog.Logger
}

// NewConsumer returns a consumer that applies messages with apply in
// inbox's database. js publishes dead letters; it may be nil when
// cfg.DeadLetter is empty.
func NewConsumer(inbox *msg.Inbox, js jetstream.JetStream, apply ApplyFunc, cfg ConsumerConfig) (*Consumer, error) {
	if inbox == nil || apply == nil {
		return nil, fmt.Errorf("%w: an inbox and an apply function are required", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DeadLetter != "" && js == nil {
		return nil, fmt.Errorf("%w: DeadLetter %q needs a JetStream to publish to", ErrInvalidConfig, cfg.DeadLetter)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Consumer{inbox: inbox, apply: apply, cfg: cfg, js: js, log: log.With("component", "gtx.natsgtx.consumer")}, nil
}

// Run consumes from cons until ctx is done, then stops taking messages,
// lets the ones in hand finish (their local transactions run on a context
// that outlives ctx by at most the attempt), and returns nil. Give the
// JetStream consumer explicit acks and a MaxDeliver above MaxAttempts, or
// none.
func (c *Consumer) Run(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * c.cfg.Workers))
	if err != nil {
		return fmt.Errorf("natsgtx: consume: %w", err)
	}
	queues := make([]chan jetstream.Msg, c.cfg.Workers)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan jetstream.Msg, 1)
		q := queues[i]
		wg.Go(func() {
			for m := range q {
				c.handle(ctx, m)
			}
		})
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	next := 0
	for {
		m, err := it.Next()
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				c.log.Warn("consume", "err", err)
			}
			break
		}
		i := next
		if c.cfg.OrderKey != nil {
			h := fnv.New32a()
			_, _ = h.Write([]byte(c.cfg.OrderKey(m)))
			i = int(h.Sum32() % uint32(len(queues)))
		} else {
			next = (next + 1) % len(queues)
		}
		queues[i] <- m
	}
	it.Stop()
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	return nil
}

// messageID is the inbox key of m.
func messageID(m jetstream.Msg) string {
	if id := m.Headers().Get(jetstream.MsgIDHeader); id != "" {
		return id
	}
	md, err := m.Metadata()
	if err != nil {
		return ""
	}
	return md.Stream + ":" + strconv.FormatUint(md.Sequence.Stream, 10)
}

// handle applies m once, retrying in place when messages are ordered, and
// acknowledges, naks, or dead-letters it.
func (c *Consumer) handle(ctx context.Context, m jetstream.Msg) {
	attempts := 0
	if md, err := m.Metadata(); err == nil {
		attempts = int(md.NumDelivered) - 1
	}
	for {
		attempts++
		err := c.applyOnce(ctx, m)
		if err == nil {
			if aerr := m.Ack(); aerr != nil {
				// Redelivered later, and then found in the inbox.
				c.log.Warn("ack", "subject", m.Subject(), "err", aerr)
			}
			return
		}
		c.log.Warn("apply message", "subject", m.Subject(), "id", messageID(m), "attempt", attempts, "err", err)
		if attempts >= c.cfg.MaxAttempts {
			c.deadLetter(ctx, m, attempts, err)
			return
		}
		wait := c.backoff(attempts)
		if c.cfg.OrderKey == nil || ctx.Err() != nil {
			_ = m.NakWithDelay(wait)
			return
		}
		_ = m.InProgress()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			_ = m.Nak()
			return
		case <-t.C:
		}
	}
}

func (c *Consumer) applyOnce(ctx context.Context, m jetstream.Msg) error {
	id := messageID(m)
	actx := context.WithoutCancel(ctx)
	if xid := m.Headers().Get(gtx.MetadataKey); xid != "" && gtx.ValidateXID(xid) == nil {
		actx = gtx.ContextWithXID(actx, xid)
	}
	_, err := c.inbox.Apply(actx, id, func(ctx context.Context, tx *sql.Tx) error {
		return c.apply(ctx, tx, m)
	})
	return err
}

func (c *Consumer) backoff(attempts int) time.Duration {
	d := c.cfg.Backoff
	for i := 1; i < attempts && d < 10*c.cfg.Backoff; i++ {
		d *= 2
	}
	return min(d, 10*c.cfg.Backoff)
}

// deadLetter publishes m to DeadLetter and terminates it; a failed publish
// leaves m to be redelivered, so no message is lost.
func (c *Consumer) deadLetter(ctx context.Context, m jetstream.Msg, attempts int, cause error) {
	id := messageID(m)
	if c.cfg.DeadLetter != "" {
		dl := &nats.Msg{Subject: c.cfg.DeadLetter, Data: m.Data(), Header: nats.Header{}}
		for k, v := range m.Headers() {
			if k != jetstream.MsgIDHeader {
				dl.Header[k] = v
			}
		}
		reason := cause.Error()
		if len(reason) > 1024 {
			reason = reason[:1024]
		}
		dl.Header.Set(HeaderDeadSubject, m.Subject())
		dl.Header.Set(HeaderDeadError, reason)
		dl.Header.Set(HeaderDeadAttempts, strconv.Itoa(attempts))
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := c.js.PublishMsg(pctx, dl, jetstream.WithMsgID(id)); err != nil {
			c.log.Error("publish dead letter; the message is redelivered instead", "subject", m.Subject(), "id", id, "err", err)
			_ = m.NakWithDelay(c.backoff(attempts))
			return
		}
	}
	c.log.Error("message dead-lettered", "subject", m.Subject(), "id", id, "attempts", attempts, "err", cause, "dead_letter", c.cfg.DeadLetter)
	if err := m.Term(); err != nil {
		c.log.Warn("terminate dead-lettered message", "subject", m.Subject(), "id", id, "err", err)
	}
}
