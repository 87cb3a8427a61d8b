package msg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tm"
)

// MaxMessages bounds the messages of one two-phase message.
const MaxMessages = 64

// ProducerConfig configures a Producer. Start from DefaultProducerConfig.
type ProducerConfig struct {
	// Check is where the coordinator asks this producer whether the local
	// transaction of a message it prepared committed, when the producer did
	// not submit the message within Timeout: an address served on the
	// barrier's database by CheckHandler (http://...), CheckServer
	// (grpc://HOST:PORT) or ServeCheck (nats:SUBJECT).
	Check string
	// Timeout is how long the coordinator waits for the submit of a
	// prepared message before it asks Check. Zero takes the coordinator's
	// default transaction timeout.
	Timeout time.Duration
	// Application names the producer for operators.
	Application string
	// Logger receives the producer's logs; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultProducerConfig names the application "gtx-msg"; set Check.
func DefaultProducerConfig() ProducerConfig {
	return ProducerConfig{Application: "gtx-msg"}
}

// Validate reports the first problem with c, as an error matching
// ErrInvalidConfig.
func (c *ProducerConfig) Validate() error {
	if _, err := parseEndpoint(c.Check); err != nil {
		return fmt.Errorf("%w: Check: %w", ErrInvalidConfig, err)
	}
	switch {
	case c.Timeout < 0:
		return fmt.Errorf("%w: Timeout must not be negative, got %v", ErrInvalidConfig, c.Timeout)
	case c.Application == "":
		return fmt.Errorf("%w: Application is empty: name the producing service", ErrInvalidConfig)
	}
	return nil
}

// Producer sends two-phase messages: messages delivered if and only if a
// local transaction in the barrier's database commits. It is safe for
// concurrent use.
type Producer struct {
	client  tcv1.CoordinatorClient
	tm      *tm.Manager
	barrier *Barrier
	cfg     ProducerConfig
	log     *slog.Logger
}

// NewProducer returns a producer that prepares messages at the coordinator
// client and records its local transactions in barrier.
func NewProducer(client tcv1.CoordinatorClient, barrier *Barrier, cfg ProducerConfig) (*Producer, error) {
	if client == nil || barrier == nil {
		return nil, fmt.Errorf("%w: a coordinator client and a barrier are required", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	tcfg := tm.DefaultConfig()
	tcfg.Application = cfg.Application
	tcfg.Logger = log
	m, err := tm.New(client, tcfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return &Producer{client: client, tm: m, barrier: barrier, cfg: cfg, log: log.With("component", "gtx.msg")}, nil
}

// Send runs local in a local transaction of the barrier's database and
// has msgs delivered exactly when it commits: Prepare, then Do. It returns
// the message's XID.
func (p *Producer) Send(ctx context.Context, name string, local func(ctx context.Context, tx *sql.Tx) error, msgs ...Message) (string, error) {
	m, err := p.Prepare(ctx, name, msgs...)
	if err != nil {
		return "", err
	}
	return m.XID(), m.Do(ctx, local)
}

// Prepare records msgs at the coordinator, not to be delivered before the
// local transaction commits. Bad input fails with ErrInvalidMessage before
// anything is sent. The caller goes on with Do, or with Commit in its own
// local transaction and then Submit; a message left alone is settled by
// the coordinator after Timeout through the producer's Check.
func (p *Producer) Prepare(ctx context.Context, name string, msgs ...Message) (*Prepared, error) {
	switch {
	case len(msgs) == 0:
		return nil, fmt.Errorf("%w: no message to send", ErrInvalidMessage)
	case len(msgs) > MaxMessages:
		return nil, fmt.Errorf("%w: %d messages, at most %d allowed in one", ErrInvalidMessage, len(msgs), MaxMessages)
	}
	data := make([][]byte, len(msgs))
	for i := range msgs {
		if err := msgs[i].validate(); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		d, err := msgs[i].encode(p.cfg.Check)
		if err != nil {
			return nil, fmt.Errorf("%w: message %d: %w", ErrInvalidMessage, i, err)
		}
		data[i] = d
	}
	var opts []tm.Option
	if p.cfg.Timeout > 0 {
		opts = append(opts, tm.Timeout(p.cfg.Timeout))
	}
	tx, err := p.tm.Begin(ctx, name, opts...)
	if err != nil {
		return nil, fmt.Errorf("msg: prepare %q: %w", name, err)
	}
	for i, d := range data {
		_, err := p.client.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{
			Xid:             tx.XID(),
			BranchType:      tcv1.BranchType_MSG,
			ResourceId:      tcv1.MessageResource,
			ApplicationData: d,
			AsyncCommit:     true,
		})
		if err != nil {
			// Nothing committed locally yet: give the message up.
			if _, rerr := tx.Rollback(context.WithoutCancel(ctx), "prepare failed"); rerr != nil {
				p.log.Warn("roll back a message whose prepare failed", "xid", tx.XID(), "err", rerr)
			}
			return nil, fmt.Errorf("msg: prepare %q: register message %d: %w", name, i, err)
		}
	}
	return &Prepared{p: p, tx: tx}, nil
}

// Prepared is a message recorded at the coordinator, waiting for its local
// transaction.
type Prepared struct {
	p  *Producer
	tx *tm.Tx
}

// XID returns the message's XID.
func (m *Prepared) XID() string { return m.tx.XID() }

// Do runs local in a new local transaction of the barrier's database
// together with the barrier row, commits it and submits the message. An
// error from local rolls the local transaction back and the message with
// it. Do fails with ErrRolledBack when the coordinator gave the message up
// first (it timed out and the check found no commit), and with
// ErrOutcomeUnknown when the local commit's outcome is unknown: the
// coordinator then settles the message from the barrier row. A submit that
// fails after the local commit is no error: the coordinator asks the
// barrier and delivers.
func (m *Prepared) Do(ctx context.Context, local func(ctx context.Context, tx *sql.Tx) error) error {
	tx, err := m.p.barrier.db.BeginTx(ctx, nil)
	if err != nil {
		m.abort(ctx, "begin local transaction failed")
		return fmt.Errorf("msg: begin the local transaction of %s: %w", m.XID(), err)
	}
	if err := m.Commit(ctx, tx); err != nil {
		_ = tx.Rollback()
		if !errors.Is(err, ErrRolledBack) {
			m.abort(ctx, "barrier insert failed")
		}
		return err
	}
	if err := local(m.tx.Context(), tx); err != nil {
		_ = tx.Rollback()
		m.abort(ctx, "local transaction failed")
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrOutcomeUnknown, m.XID(), err)
	}
	return m.Submit(ctx)
}

// Commit records in tx, the caller's own local transaction in the
// barrier's database, that the message is to be delivered once tx commits.
// Call Submit after tx committed. It fails with ErrRolledBack when the
// coordinator gave the message up first; roll tx back then.
func (m *Prepared) Commit(ctx context.Context, tx *sql.Tx) error {
	return m.p.barrier.Commit(ctx, tx, m.XID())
}

// Submit tells the coordinator that the local transaction committed, so
// the message is delivered now rather than after the check. A lost answer
// is no error: the coordinator learns the outcome from the barrier. It
// fails when the coordinator had rolled the message back, which happens
// only when an operator did or the barrier row was cleaned too early.
func (m *Prepared) Submit(ctx context.Context) error {
	_, err := m.tx.Commit(context.WithoutCancel(ctx))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, tm.ErrRolledBack):
		return fmt.Errorf("msg: submit %s after its local transaction committed: %w", m.XID(), err)
	}
	m.p.log.Warn("submit failed; the coordinator will ask the barrier", "xid", m.XID(), "err", err)
	return nil
}

// Abort gives the message up. Call it only for a message whose local
// transaction did not commit and never will (it was rolled back, or never
// begun): the coordinator does not ask the barrier about an aborted
// message.
func (m *Prepared) Abort(ctx context.Context, reason string) error {
	if _, err := m.tx.Rollback(context.WithoutCancel(ctx), reason); err != nil {
		return fmt.Errorf("msg: abort %s: %w", m.XID(), err)
	}
	return nil
}

func (m *Prepared) abort(ctx context.Context, reason string) {
	if err := m.Abort(ctx, reason); err != nil {
		m.p.log.Warn("abort message", "xid", m.XID(), "err", err)
	}
}
