package natsgtx

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/interceptors"
)

// Option configures a handler wrapper.
type Option func(*options)

type options struct {
	logger     *slog.Logger
	globalTx   *interceptors.GlobalTx
	globalLock bool
}

// WithLogger sets the logger that records rejected messages and handler
// errors (subject and reason, never the message body). The default is
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithGlobalTx runs the handler inside the global transaction g describes:
// the @GlobalTransactional of NATS. The operation is the message's subject.
// A handler error or panic rolls back. A nil g is ignored.
func WithGlobalTx(g *interceptors.GlobalTx) Option {
	return func(o *options) { o.globalTx = g }
}

// WithGlobalLock marks the handler's context with gtx.WithGlobalLock: the
// @GlobalLock of NATS.
func WithGlobalLock() Option {
	return func(o *options) { o.globalLock = true }
}

func newOptions(opts []Option) *options {
	o := &options{logger: slog.Default()}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// HandlerFunc handles one core NATS message with a context carrying its XID.
type HandlerFunc func(ctx context.Context, msg *nats.Msg) error

// JetStreamHandlerFunc handles one JetStream message with a context carrying
// its XID. Acknowledging the message is its job.
type JetStreamHandlerFunc func(ctx context.Context, msg jetstream.Msg) error

// Handler wraps h as the handler of a core NATS subscription (nc.Subscribe,
// nc.QueueSubscribe). Each message's context derives from ctx and carries
// the XID of the message's header gtx.MetadataKey. A message with a
// malformed XID does not reach h: a request is answered with the nats micro
// error headers (code "400"), a JetStream message is terminated, any other
// message is dropped; each is logged without its body. An error h returns
// is logged; answering requests and acknowledging JetStream messages stays
// h's job.
func Handler(ctx context.Context, h HandlerFunc, opts ...Option) nats.MsgHandler {
	o := newOptions(opts)
	return func(msg *nats.Msg) {
		mctx, err := o.ingress(ctx, msg.Header)
		if err != nil {
			reject(ctx, o.logger, msg, err)
			return
		}
		o.run(mctx, msg.Subject, func(ctx context.Context) error { return h(ctx, msg) })
	}
}

// JetStreamHandler wraps h as the handler of a JetStream consumer
// (jetstream.Consumer.Consume). A message with a malformed XID does not
// reach h: it is terminated (it would never become valid, so it is not
// redelivered) and logged without its body.
func JetStreamHandler(ctx context.Context, h JetStreamHandlerFunc, opts ...Option) jetstream.MessageHandler {
	o := newOptions(opts)
	return func(msg jetstream.Msg) {
		mctx, err := o.ingress(ctx, msg.Headers())
		if err != nil {
			o.logger.WarnContext(ctx, "natsgtx: terminated a jetstream message with a malformed xid", "subject", msg.Subject(), "error", err)
			if err := msg.Term(); err != nil {
				o.logger.WarnContext(ctx, "natsgtx: terminating a jetstream message failed", "subject", msg.Subject(), "error", err)
			}
			return
		}
		o.run(mctx, msg.Subject(), func(ctx context.Context) error { return h(ctx, msg) })
	}
}

// ingress returns ctx carrying the XID in header, marked for global locks
// when the options ask for it.
func (o *options) ingress(ctx context.Context, header nats.Header) (context.Context, error) {
	xid, ok, err := interceptors.ParseXID(header.Values(gtx.MetadataKey)...)
	if err != nil {
		return nil, err
	}
	if ok {
		ctx = gtx.ContextWithXID(ctx, xid)
	}
	if o.globalLock {
		ctx = gtx.WithGlobalLock(ctx)
	}
	return ctx, nil
}

// run calls fn, inside the global transaction when the options ask for one,
// and logs its error.
func (o *options) run(ctx context.Context, subject string, fn func(ctx context.Context) error) {
	var err error
	if o.globalTx != nil && o.globalTx.Applies(subject) {
		err = o.globalTx.Run(ctx, subject, fn)
	} else {
		err = fn(ctx)
	}
	if err != nil {
		o.logger.WarnContext(ctx, "natsgtx: handler failed", "subject", subject, "error", err)
	}
}

// reject answers or terminates a core NATS message with a malformed XID.
func reject(ctx context.Context, logger *slog.Logger, msg *nats.Msg, cause error) {
	if msg.Reply == "" {
		logger.WarnContext(ctx, "natsgtx: dropped a message with a malformed xid", "subject", msg.Subject, "error", cause)
		return
	}
	if _, err := msg.Metadata(); err == nil {
		logger.WarnContext(ctx, "natsgtx: terminated a jetstream message with a malformed xid", "subject", msg.Subject, "error", cause)
		if err := msg.Term(); err != nil {
			logger.WarnContext(ctx, "natsgtx: terminating a jetstream message failed", "subject", msg.Subject, "error", err)
		}
		return
	}
	logger.WarnContext(ctx, "natsgtx: refused a request with a malformed xid", "subject", msg.Subject, "error", cause)
	resp := &nats.Msg{Header: nats.Header{
		micro.ErrorHeader:     []string{"gtx: malformed xid: " + cause.Error()},
		micro.ErrorCodeHeader: []string{"400"},
	}}
	if err := msg.RespondMsg(resp); err != nil {
		logger.WarnContext(ctx, "natsgtx: answering a request with a malformed xid failed", "subject", msg.Subject, "error", err)
	}
}
