package msg

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// maxCheckBody bounds the body of a check request.
const maxCheckBody = 4096

// The three ways a producer serves the coordinator's check. Each answers
// from the barrier, so the answer is final (see Barrier.Check).

// CheckHandler serves the check over HTTP: a POST whose body is a
// tcv1.CheckMessageRequest in protobuf JSON ({"xid":"..."}), answered 200
// with a tcv1.CheckMessageResponse ({"committed":true}). Bad input answers
// 400, a database failure 503.
func CheckHandler(b *Barrier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "msg: the check takes a POST", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxCheckBody+1))
		if err != nil || len(body) > maxCheckBody {
			http.Error(w, "msg: check request unreadable or larger than 4 KiB", http.StatusBadRequest)
			return
		}
		var req tcv1.CheckMessageRequest
		if err := protojson.Unmarshal(body, &req); err != nil {
			http.Error(w, "msg: check request is no CheckMessageRequest in JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := gtx.ValidateXID(req.GetXid()); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		committed, err := b.Check(r.Context(), req.GetXid())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		out, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(&tcv1.CheckMessageResponse{Committed: committed})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
}

// CheckServer serves the check over gRPC: register it with
// tcv1.RegisterMessageCheckerServer. Bad input answers InvalidArgument, a
// database failure Unavailable.
func CheckServer(b *Barrier) tcv1.MessageCheckerServer {
	return checkServer{b: b}
}

type checkServer struct {
	tcv1.UnimplementedMessageCheckerServer
	b *Barrier
}

func (s checkServer) Check(ctx context.Context, req *tcv1.CheckMessageRequest) (*tcv1.CheckMessageResponse, error) {
	if err := gtx.ValidateXID(req.GetXid()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	committed, err := s.b.Check(ctx, req.GetXid())
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &tcv1.CheckMessageResponse{Committed: committed}, nil
}

// ServeCheck serves the check over NATS on subject: a request whose data
// is a tcv1.CheckMessageRequest in protobuf, answered with a
// tcv1.CheckMessageResponse, or an error in the nats micro convention
// (header Nats-Service-Error-Code 400 for bad input, 503 for a database
// failure). Requests are answered one at a time, in the subscription's
// goroutine; unsubscribe to stop. No JetStream stream may capture subject:
// its publish acknowledgement would answer the request first.
func ServeCheck(nc *nats.Conn, subject string, b *Barrier, log *slog.Logger) (*nats.Subscription, error) {
	if log == nil {
		log = slog.Default()
	}
	if _, err := parseEndpoint("nats:" + subject); err != nil {
		return nil, err
	}
	return nc.Subscribe(subject, func(m *nats.Msg) {
		fail := func(code, desc string) {
			reply := &nats.Msg{Header: nats.Header{micro.ErrorCodeHeader: {code}, micro.ErrorHeader: {desc}}}
			if err := m.RespondMsg(reply); err != nil {
				log.Warn("answer a message check", "subject", subject, "err", err)
			}
		}
		var req tcv1.CheckMessageRequest
		if err := proto.Unmarshal(m.Data, &req); err != nil {
			fail("400", "msg: check request is no CheckMessageRequest: "+err.Error())
			return
		}
		if err := gtx.ValidateXID(req.GetXid()); err != nil {
			fail("400", err.Error())
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		defer cancel()
		committed, err := b.Check(ctx, req.GetXid())
		if err != nil {
			fail("503", err.Error())
			return
		}
		out, err := proto.Marshal(&tcv1.CheckMessageResponse{Committed: committed})
		if err != nil {
			fail("500", err.Error())
			return
		}
		if err := m.Respond(out); err != nil {
			log.Warn("answer a message check", "subject", subject, "err", fmt.Errorf("xid %s: %w", req.GetXid(), err))
		}
	})
}
