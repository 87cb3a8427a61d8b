package msg

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// Delivery is one message as an HTTP or gRPC target receives it.
type Delivery struct {
	// ID is the message ID, the same in every delivery of the message.
	ID string
	// XID is the global transaction the message belongs to.
	XID     string
	Payload []byte
	Headers map[string]string
}

// ReceiveFunc applies one delivery inside tx, the local transaction that
// also holds its inbox row. It must not commit or roll back tx: return an
// error to roll back; the coordinator delivers the message again.
type ReceiveFunc func(ctx context.Context, tx *sql.Tx, d Delivery) error

// ReceiverHandler is an HTTP target (http(s)://...) that applies each
// message once through inbox: 204 when it applied it now or before, 400
// for a request without a message ID, 500 when apply or the database
// failed (the coordinator retries).
func ReceiverHandler(inbox *Inbox, apply ReceiveFunc, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "msg: deliveries are POSTed", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxPayload+1))
		if err != nil || len(body) > MaxPayload {
			http.Error(w, "msg: body unreadable or over the payload limit", http.StatusBadRequest)
			return
		}
		d := Delivery{ID: r.Header.Get(HeaderMessageID), XID: r.Header.Get(gtx.MetadataKey), Payload: body, Headers: map[string]string{}}
		for k := range r.Header {
			d.Headers[k] = r.Header.Get(k)
		}
		if err := receive(r.Context(), inbox, apply, d); err != nil {
			code := http.StatusInternalServerError
			if status.Code(err) == codes.InvalidArgument {
				code = http.StatusBadRequest
			}
			log.Warn("apply delivered message", "id", d.ID, "err", err)
			http.Error(w, err.Error(), code)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// ReceiverServer is a gRPC target (grpc://HOST:PORT) that applies each
// message once through inbox; register it with
// tcv1.RegisterMessageReceiverServer.
func ReceiverServer(inbox *Inbox, apply ReceiveFunc) tcv1.MessageReceiverServer {
	return receiverServer{inbox: inbox, apply: apply}
}

type receiverServer struct {
	tcv1.UnimplementedMessageReceiverServer
	inbox *Inbox
	apply ReceiveFunc
}

func (s receiverServer) Deliver(ctx context.Context, req *tcv1.DeliverMessageRequest) (*tcv1.DeliverMessageResponse, error) {
	d := Delivery{ID: req.GetId(), XID: req.GetXid(), Payload: req.GetPayload(), Headers: req.GetHeaders()}
	if err := receive(ctx, s.inbox, s.apply, d); err != nil {
		return nil, err
	}
	return &tcv1.DeliverMessageResponse{}, nil
}

// receive applies d once, with its XID in ctx when it has a valid one.
func receive(ctx context.Context, inbox *Inbox, apply ReceiveFunc, d Delivery) error {
	if d.ID == "" || len(d.ID) > MaxMessageID {
		return status.Errorf(codes.InvalidArgument, "msg: a delivery needs a message ID of 1 to %d bytes", MaxMessageID)
	}
	if gtx.ValidateXID(d.XID) == nil {
		ctx = gtx.ContextWithXID(ctx, d.XID)
	}
	if _, err := inbox.Apply(ctx, d.ID, func(ctx context.Context, tx *sql.Tx) error { return apply(ctx, tx, d) }); err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	return nil
}
