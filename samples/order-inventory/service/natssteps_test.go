package service

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	kerrors "github.com/go-kratos/kratos/v2/errors"
	"github.com/nats-io/nuid"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/modes/saga"
	"github.com/gtx-io/gtx/modes/saga/statemachine"
)

// natsBase is a Base with only its NATS side open, on a stream of its own
// that is deleted when t ends.
func natsBase(t *testing.T, url, name string) *Base {
	t.Helper()
	cfg := DefaultConfig(name)
	cfg.NATSURL = url
	cfg.NATSStream = "GTXTEST_" + nuid.Next()
	cfg.NATSSubject = "gtxtest." + nuid.Next()
	b := &Base{Cfg: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := b.openNATS(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.JS.DeleteStream(context.Background(), cfg.NATSStream)
		b.Close()
	})
	return b
}

// seenCmd is what a step function saw.
type seenCmd struct {
	xid, key, forward string
	compensation      bool
}

// Steps go out with the XID and the key, come back with the result or the
// participant's reason and message; a compensation names the step it
// undoes; an unknown method is answered, not left waiting.
func TestSteps(t *testing.T) {
	for name, url := range gtxtest.NATSServers(t) {
		t.Run(name, func(t *testing.T) {
			b := natsBase(t, url, "inventory")
			ctx := t.Context()
			var (
				mu   sync.Mutex
				seen []seenCmd
			)
			record := func(ctx context.Context, cmd *statemachine.Command) {
				xid, _ := gtx.XIDFromContext(ctx)
				mu.Lock()
				seen = append(seen, seenCmd{xid, cmd.Key, cmd.ForwardKey, cmd.Compensation})
				mu.Unlock()
			}
			err := b.ServeSteps(ctx, map[string]StepFunc{
				"inventory.reserve": func(ctx context.Context, cmd *statemachine.Command) (any, error) {
					record(ctx, cmd)
					var in struct{ Quantity int64 }
					if err := json.Unmarshal(cmd.Input, &in); err != nil {
						return nil, err
					}
					if in.Quantity > 10 {
						return nil, kerrors.Conflict("OUT_OF_STOCK", fmt.Sprintf("fewer than %d left", in.Quantity))
					}
					return map[string]int64{"price": 100}, nil
				},
				"inventory.release": func(ctx context.Context, cmd *statemachine.Command) (any, error) {
					record(ctx, cmd)
					return struct{}{}, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			sc, err := b.StepClient(ctx)
			if err != nil {
				t.Fatal(err)
			}
			call := saga.Call{XID: "tc:42", Step: "reserve-stock", Key: "tc:42/reserve-stock", Attempt: 1}

			var out struct{ Price int64 }
			if err := sc.Do(ctx, "inventory.reserve", call, map[string]int64{"quantity": 2}, &out); err != nil || out.Price != 100 {
				t.Fatalf("reserve: %+v, %v; want price 100", out, err)
			}
			call.Attempt = 2
			err = sc.Do(ctx, "inventory.reserve", call, map[string]int64{"quantity": 11}, nil)
			if kerrors.Reason(err) != "OUT_OF_STOCK" || kerrors.FromError(err).Message != "fewer than 11 left" {
				t.Fatalf("reserve of too many: %v; want reason OUT_OF_STOCK and the participant's message", err)
			}
			for range 2 {
				if err := sc.Undo(ctx, "inventory.release", call); err != nil {
					t.Fatalf("release: %v", err)
				}
			}
			other := saga.Call{XID: "tc:42", Step: "nothing", Key: "tc:42/nothing", Attempt: 1}
			err = sc.Do(ctx, "inventory.nothing", other, struct{}{}, nil)
			if kerrors.Reason(err) != ReasonUnknownStep {
				t.Fatalf("unknown method: %v; want reason %s", err, ReasonUnknownStep)
			}
			mu.Lock()
			defer mu.Unlock()
			want := []seenCmd{
				{"tc:42", call.Key, "", false},
				{"tc:42", call.Key, "", false},
				{"tc:42", call.Key + "/undo", call.Key, true},
				{"tc:42", call.Key + "/undo", call.Key, true},
			}
			if fmt.Sprint(seen) != fmt.Sprint(want) {
				t.Fatalf("steps saw %v, want %v", seen, want)
			}
		})
	}
}

// A command that is not a step command is terminated, not redelivered, and
// the well-formed one after it still runs.
func TestMalformedStepCommand(t *testing.T) {
	b := natsBase(t, gtxtest.StartNATS(t), "account")
	ctx := t.Context()
	ran := make(chan string, 1)
	err := b.ServeSteps(ctx, map[string]StepFunc{"account.debit": func(_ context.Context, cmd *statemachine.Command) (any, error) {
		ran <- cmd.Key
		return struct{}{}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	subject := b.Cfg.NATSSubject + ".cmd.account.debit"
	if _, err := b.JS.Publish(ctx, subject, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	sc, err := b.StepClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Do(ctx, "account.debit", saga.Call{XID: "tc:7", Key: "tc:7/charge", Attempt: 1}, struct{}{}, nil); err != nil {
		t.Fatal(err)
	}
	if key := <-ran; key != "tc:7/charge" {
		t.Fatalf("step ran for %q, want tc:7/charge", key)
	}
	cons, err := b.JS.Consumer(ctx, b.Cfg.NATSStream, "steps-account")
	if err != nil {
		t.Fatal(err)
	}
	// The good command is acknowledged after its reply: wait for that.
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumRedelivered != 0 {
			t.Fatalf("consumer %+v: a command was delivered again", info)
		}
		if info.NumAckPending == 0 && info.AckFloor.Stream >= 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %+v: commands not settled after 10s", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
