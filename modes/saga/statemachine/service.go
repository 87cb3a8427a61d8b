package statemachine

import (
	"context"
	"encoding/json"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gtx-io/gtx"
)

// Task is what a service is asked to do: one attempt of one execution of a
// ServiceTask state, forward or compensating.
type Task struct {
	// XID is the instance's global transaction.
	XID string
	// InstanceID and Machine name the instance and its definition.
	InstanceID string
	Machine    string
	// State and Method are the state's name and its ServiceMethod.
	State  string
	Method string
	// Key is the execution's idempotency key: the same for every attempt,
	// and after a restart of the engine.
	Key string
	// ForwardKey, in a compensation, is the Key of the execution it undoes.
	ForwardKey string
	// Compensation tells a compensation from a forward task.
	Compensation bool
	// Attempt counts attempts from 1.
	Attempt int
	// Input is the task's input, from the state's Input mapping.
	Input json.RawMessage
	// ReplyTo, for an AsyncService, is the subject its reply must be
	// published to.
	ReplyTo string
}

// Service is a synchronous service: Call returns the result (any JSON
// value) or an error; a *TaskError gives the code Retry and Catch match.
// Calls are at least once, idempotent by Task.Key.
type Service interface {
	Call(ctx context.Context, t Task) (json.RawMessage, error)
}

// ServiceFunc adapts a Go function to Service.
type ServiceFunc func(ctx context.Context, t Task) (json.RawMessage, error)

// Call implements Service.
func (f ServiceFunc) Call(ctx context.Context, t Task) (json.RawMessage, error) { return f(ctx, t) }

// AsyncService is a service that answers later: Send hands the task over
// and returns; the result comes back to the engine as a reply (see NATS).
type AsyncService interface {
	Send(ctx context.Context, t Task) error
}

// IdempotencyKeyHeader is the gRPC metadata key and NATS header that
// carries Task.Key.
const IdempotencyKeyHeader = "x-md-global-gtx-idempotency-key"

// GRPC returns a Service that calls the methods of the gRPC service
// (fully qualified, "inventory.v1.Inventory") on cc: ServiceMethod names the
// method. A gRPC error's code name ("Unavailable") is the failure's code for
// Retry and Catch. The request and response are google.protobuf.Value messages
// holding the JSON input and result. The outgoing metadata carries the XID
// (gtx.MetadataKey) and Task.Key (IdempotencyKeyHeader).
func GRPC(cc grpc.ClientConnInterface, service string) Service {
	return &grpcService{cc: cc, service: service}
}

type grpcService struct {
	cc      grpc.ClientConnInterface
	service string
}

func (g *grpcService) Call(ctx context.Context, t Task) (json.RawMessage, error) {
	in := new(structpb.Value)
	if len(t.Input) > 0 {
		if err := protojson.Unmarshal(t.Input, in); err != nil {
			return nil, Errorf(CodeInput, "grpc %s/%s: input is not JSON: %v", g.service, t.Method, err)
		}
	} else {
		in = structpb.NewNullValue()
	}
	ctx = gtx.ContextWithXID(ctx, t.XID)
	ctx = metadata.AppendToOutgoingContext(ctx, gtx.MetadataKey, t.XID, IdempotencyKeyHeader, t.Key)
	out := new(structpb.Value)
	if err := g.cc.Invoke(ctx, "/"+g.service+"/"+t.Method, in, out); err != nil {
		if st, ok := status.FromError(err); ok && ctx.Err() == nil {
			return nil, &TaskError{Code: st.Code().String(), Message: fmt.Sprintf("grpc %s/%s: %s", g.service, t.Method, st.Message())}
		}
		return nil, fmt.Errorf("statemachine: grpc %s/%s: %w", g.service, t.Method, err)
	}
	return protojson.Marshal(out)
}
