package msg

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// Message is one message of a two-phase message or of an outbox.
type Message struct {
	// Target is where the message goes: "nats:SUBJECT" (a JetStream publish,
	// deduplicated by its Nats-Msg-Id header), "http://..." or "https://..."
	// (a POST whose 2xx answer acknowledges it), or "grpc://HOST:PORT"
	// (tcv1.MessageReceiver's Deliver).
	Target string
	// Payload is the message body.
	Payload []byte
	// Headers go with the payload: NATS or HTTP headers, or the headers of
	// the Deliver request.
	Headers map[string]string
}

// Limits on what one message may hold; a message past them is refused
// before anything is sent. Together they keep a message's branch data under
// the coordinator's 1 MiB of application data (tc.Limits).
const (
	MaxPayload = 960 << 10
	MaxTarget  = 1024
	MaxHeaders = 32
	// MaxHeaderLen bounds one header's name plus value.
	MaxHeaderLen = 1024
)

// HeaderMessageID carries the message ID (tcv1.MessageID) in an HTTP
// delivery; a NATS delivery carries it in jetstream.MsgIDHeader
// (Nats-Msg-Id). Both also carry the XID in gtx.MetadataKey.
const HeaderMessageID = "Gtx-Message-Id"

// kind is the transport of a target.
type kind int

const (
	kindNATS kind = iota + 1
	kindHTTP
	kindGRPC
)

// endpoint is a parsed target or check address.
type endpoint struct {
	kind kind
	// addr is the NATS subject, the HTTP URL or the gRPC host:port.
	addr string
}

// parseEndpoint parses a target or check address and says what is wrong
// with a bad one.
func parseEndpoint(s string) (endpoint, error) {
	switch {
	case s == "":
		return endpoint{}, fmt.Errorf("%w: empty address; use nats:SUBJECT, http(s)://... or grpc://HOST:PORT", ErrInvalidMessage)
	case len(s) > MaxTarget:
		return endpoint{}, fmt.Errorf("%w: address is %d bytes long, at most %d allowed", ErrInvalidMessage, len(s), MaxTarget)
	case strings.HasPrefix(s, "nats:"):
		subject := strings.TrimPrefix(s, "nats:")
		if subject == "" || strings.ContainsAny(subject, " \t\r\n*>") || strings.HasPrefix(subject, ".") || strings.HasSuffix(subject, ".") || strings.Contains(subject, "..") {
			return endpoint{}, fmt.Errorf("%w: %q is no NATS subject to publish to (no wildcards, spaces or empty tokens)", ErrInvalidMessage, subject)
		}
		return endpoint{kind: kindNATS, addr: subject}, nil
	case strings.HasPrefix(s, "http://"), strings.HasPrefix(s, "https://"):
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return endpoint{}, fmt.Errorf("%w: %q is no HTTP URL with a host", ErrInvalidMessage, s)
		}
		return endpoint{kind: kindHTTP, addr: s}, nil
	case strings.HasPrefix(s, "grpc://"):
		hostport := strings.TrimPrefix(s, "grpc://")
		if hostport == "" || strings.ContainsAny(hostport, "/ ") {
			return endpoint{}, fmt.Errorf("%w: %q is no grpc://HOST:PORT", ErrInvalidMessage, s)
		}
		return endpoint{kind: kindGRPC, addr: hostport}, nil
	}
	return endpoint{}, fmt.Errorf("%w: %q has no known scheme; use nats:SUBJECT, http(s)://... or grpc://HOST:PORT", ErrInvalidMessage, s)
}

// validate checks m and says what to fix.
func (m *Message) validate() error {
	if _, err := parseEndpoint(m.Target); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if len(m.Payload) > MaxPayload {
		return fmt.Errorf("%w: payload is %d bytes, at most %d allowed", ErrInvalidMessage, len(m.Payload), MaxPayload)
	}
	if len(m.Headers) > MaxHeaders {
		return fmt.Errorf("%w: %d headers, at most %d allowed", ErrInvalidMessage, len(m.Headers), MaxHeaders)
	}
	for k, v := range m.Headers {
		switch {
		case k == "" || strings.ContainsAny(k, ": \t\r\n"):
			return fmt.Errorf("%w: header name %q is empty or has a colon, space or line break", ErrInvalidMessage, k)
		case strings.ContainsAny(v, "\r\n"):
			return fmt.Errorf("%w: header %q has a line break in its value", ErrInvalidMessage, k)
		case len(k)+len(v) > MaxHeaderLen:
			return fmt.Errorf("%w: header %q is %d bytes, at most %d allowed", ErrInvalidMessage, k, len(k)+len(v), MaxHeaderLen)
		case !utf8.ValidString(k) || !utf8.ValidString(v):
			return fmt.Errorf("%w: header %q is not valid UTF-8", ErrInvalidMessage, k)
		}
	}
	return nil
}

// encode returns m as a MSG branch's application data, with check, the
// producer's check address, empty for an outbox message.
func (m *Message) encode(check string) ([]byte, error) {
	return proto.Marshal(&tcv1.MessageData{Target: m.Target, Payload: m.Payload, Headers: m.Headers, Check: check})
}

// decode parses a MSG branch's application data.
func decode(data []byte) (*tcv1.MessageData, error) {
	var d tcv1.MessageData
	if err := proto.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%w: the branch data is no tcv1.MessageData: %w", ErrInvalidMessage, err)
	}
	m := Message{Target: d.GetTarget(), Payload: d.GetPayload(), Headers: d.GetHeaders()}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return &d, nil
}
