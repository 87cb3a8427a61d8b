package natsgtx

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/gtx-io/gtx"
)

// NewMsg returns a message for subject carrying the XID of ctx in its
// header gtx.MetadataKey. Send it with nats.Conn.PublishMsg,
// RequestMsgWithContext or jetstream.JetStream.PublishMsg.
func NewMsg(ctx context.Context, subject string, data []byte) *nats.Msg {
	msg := &nats.Msg{Subject: subject, Data: data}
	SetHeader(ctx, msg)
	return msg
}

// SetHeader sets msg's header gtx.MetadataKey to the XID ctx carries, or
// removes it when ctx carries none.
func SetHeader(ctx context.Context, msg *nats.Msg) {
	xid, ok := gtx.XIDFromContext(ctx)
	if !ok {
		if msg.Header != nil {
			msg.Header.Del(gtx.MetadataKey)
		}
		return
	}
	if msg.Header == nil {
		msg.Header = make(nats.Header, 1)
	}
	msg.Header.Set(gtx.MetadataKey, xid)
}

// Publish publishes data to subject with the XID of ctx.
func Publish(ctx context.Context, nc *nats.Conn, subject string, data []byte) error {
	return nc.PublishMsg(NewMsg(ctx, subject, data))
}

// Request sends data to subject with the XID of ctx and waits for the reply
// until ctx is done. A subscriber that rejects a malformed XID answers with
// the nats micro error headers (micro.ErrorCodeHeader "400").
func Request(ctx context.Context, nc *nats.Conn, subject string, data []byte) (*nats.Msg, error) {
	return nc.RequestMsgWithContext(ctx, NewMsg(ctx, subject, data))
}
