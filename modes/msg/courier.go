package msg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// checkTimeout bounds one check a NATS check subscription answers.
const checkTimeout = 10 * time.Second

// maxAnswer bounds the body of an HTTP answer the courier reads.
const maxAnswer = 64 << 10

// maxConns bounds the gRPC connections a Courier keeps open; past it, a
// call dials a connection of its own and closes it after.
const maxConns = 256

// CourierConfig configures a Courier.
type CourierConfig struct {
	// NATS carries nats: targets (JetStream publishes) and checks
	// (requests). Nil refuses them.
	NATS *nats.Conn
	// HTTP carries http(s) targets and checks; nil means a client of the
	// Courier's own, its timeout bounded by the call's context.
	HTTP *http.Client
	// GRPCDialOptions dial grpc:// targets and checks; empty means
	// plaintext (insecure.NewCredentials()).
	GRPCDialOptions []grpc.DialOption
	// Logger receives the courier's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Courier is the coordinator's side of two-phase messages: it implements
// tc.Messenger, delivering each message to its target and asking producers
// about messages they did not submit. Wire it into the coordinator with
// tc.Config.Messages (gtx tc does with --msg-nats). It is safe for
// concurrent use; Close releases its connections.
type Courier struct {
	cfg  CourierConfig
	js   jetstream.JetStream
	http *http.Client
	log  *slog.Logger

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

// NewCourier returns a Courier for cfg.
func NewCourier(cfg CourierConfig) (*Courier, error) {
	c := &Courier{cfg: cfg, http: cfg.HTTP, log: cfg.Logger, conns: make(map[string]*grpc.ClientConn)}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("component", "gtx.msg.courier")
	if len(c.cfg.GRPCDialOptions) == 0 {
		c.cfg.GRPCDialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	if cfg.NATS != nil {
		js, err := jetstream.New(cfg.NATS)
		if err != nil {
			return nil, fmt.Errorf("%w: jetstream on the NATS connection: %w", ErrInvalidConfig, err)
		}
		c.js = js
	}
	return c, nil
}

// errNoNATS means a nats: address came to a Courier without a NATS
// connection.
var errNoNATS = errors.New("msg: the courier has no NATS connection for a nats: address; set CourierConfig.NATS")

// Deliver implements tc.Messenger: it hands the message in data to its
// target and returns nil once the target acknowledged it (a JetStream
// PubAck, a 2xx answer, an OK from Deliver).
func (c *Courier) Deliver(ctx context.Context, xid string, branchID int64, data []byte) error {
	d, err := decode(data)
	if err != nil {
		return err
	}
	ep, err := parseEndpoint(d.GetTarget())
	if err != nil {
		return err
	}
	id := tcv1.MessageID(xid, branchID)
	switch ep.kind {
	case kindNATS:
		if c.js == nil {
			return errNoNATS
		}
		m := &nats.Msg{Subject: ep.addr, Data: d.GetPayload(), Header: make(nats.Header, len(d.GetHeaders())+2)}
		for k, v := range d.GetHeaders() {
			m.Header.Set(k, v)
		}
		m.Header.Set(gtx.MetadataKey, xid)
		if _, err := c.js.PublishMsg(ctx, m, jetstream.WithMsgID(id)); err != nil {
			return fmt.Errorf("msg: publish %s to %s: %w", id, ep.addr, err)
		}
		return nil
	case kindHTTP:
		h := make(http.Header, len(d.GetHeaders())+2)
		for k, v := range d.GetHeaders() {
			h.Set(k, v)
		}
		h.Set(HeaderMessageID, id)
		h.Set(gtx.MetadataKey, xid)
		if _, err := c.post(ctx, ep.addr, h, d.GetPayload()); err != nil {
			return fmt.Errorf("msg: deliver %s: %w", id, err)
		}
		return nil
	default:
		err := c.withConn(ep.addr, func(cc *grpc.ClientConn) error {
			_, err := tcv1.NewMessageReceiverClient(cc).Deliver(ctx, &tcv1.DeliverMessageRequest{Id: id, Xid: xid, Payload: d.GetPayload(), Headers: d.GetHeaders()})
			return err
		})
		if err != nil {
			return fmt.Errorf("msg: deliver %s to %s: %w", id, ep.addr, err)
		}
		return nil
	}
}

// Check implements tc.Messenger: it asks the producer named in data
// whether the local transaction of xid committed.
func (c *Courier) Check(ctx context.Context, xid string, data []byte) (bool, error) {
	d, err := decode(data)
	if err != nil {
		return false, err
	}
	ep, err := parseEndpoint(d.GetCheck())
	if err != nil {
		return false, fmt.Errorf("check: %w", err)
	}
	req := &tcv1.CheckMessageRequest{Xid: xid}
	var resp tcv1.CheckMessageResponse
	switch ep.kind {
	case kindNATS:
		if c.cfg.NATS == nil {
			return false, errNoNATS
		}
		body, err := proto.Marshal(req)
		if err != nil {
			return false, err
		}
		reply, err := c.cfg.NATS.RequestWithContext(ctx, ep.addr, body)
		if err != nil {
			return false, fmt.Errorf("msg: check %s at %s: %w", xid, ep.addr, err)
		}
		if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
			return false, fmt.Errorf("msg: check %s at %s: producer answered %s: %s", xid, ep.addr, code, reply.Header.Get(micro.ErrorHeader))
		}
		if err := proto.Unmarshal(reply.Data, &resp); err != nil {
			return false, fmt.Errorf("msg: check %s at %s: answer is no CheckMessageResponse: %w", xid, ep.addr, err)
		}
	case kindHTTP:
		body, err := protojson.Marshal(req)
		if err != nil {
			return false, err
		}
		out, err := c.post(ctx, ep.addr, http.Header{"Content-Type": {"application/json"}}, body)
		if err != nil {
			return false, fmt.Errorf("msg: check %s: %w", xid, err)
		}
		if err := protojson.Unmarshal(out, &resp); err != nil {
			return false, fmt.Errorf("msg: check %s at %s: answer is no CheckMessageResponse: %w", xid, ep.addr, err)
		}
	default:
		err := c.withConn(ep.addr, func(cc *grpc.ClientConn) error {
			r, err := tcv1.NewMessageCheckerClient(cc).Check(ctx, req)
			if err == nil {
				resp.Committed = r.GetCommitted()
			}
			return err
		})
		if err != nil {
			return false, fmt.Errorf("msg: check %s at %s: %w", xid, ep.addr, err)
		}
	}
	return resp.GetCommitted(), nil
}

// post sends body to url and returns the answer's body; an answer other
// than 2xx is an error.
func (c *Courier) post(ctx context.Context, url string, h http.Header, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = h
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("read the answer of %s: %w", url, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s answered %s: %s", url, resp.Status, bytes.TrimSpace(out))
	}
	return out, nil
}

// withConn runs f on a connection to addr, kept for later calls while
// fewer than maxConns are.
func (c *Courier) withConn(addr string, f func(*grpc.ClientConn) error) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.New("msg: courier closed")
	}
	cc := c.conns[addr]
	if cc == nil {
		var err error
		if cc, err = grpc.NewClient(addr, c.cfg.GRPCDialOptions...); err != nil {
			c.mu.Unlock()
			return err
		}
		if len(c.conns) >= maxConns {
			c.mu.Unlock()
			defer cc.Close()
			return f(cc)
		}
		c.conns[addr] = cc
	}
	c.mu.Unlock()
	return f(cc)
}

// Close closes the courier's gRPC connections; the NATS connection and the
// HTTP client belong to the caller.
func (c *Courier) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var errs []error
	for addr, cc := range c.conns {
		errs = append(errs, cc.Close())
		delete(c.conns, addr)
	}
	return errors.Join(errs...)
}
