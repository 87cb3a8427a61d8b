package msg

import (
	"context"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gtx-io/gtx/internal/poll"
)

// BenchmarkSend compares a two-phase message (Prepare, local transaction
// with the barrier row, Submit; the coordinator delivers to JetStream) with
// the unsafe way: a local commit followed by a bare JetStream publish,
// which loses the event when the process dies in between. Both write one
// order row to PostgreSQL and one message to the machine's JetStream, 8
// callers at once, the coordinator on its SQLite store. ns/op is wall time
// per message over all callers; latency-ms is one call's mean latency as
// its caller sees it; e2e-msgs/s counts until the last message is in the
// stream.
//
//	go test -run '^$' -bench BenchmarkSend -benchtime 400x ./modes/msg
func BenchmarkSend(b *testing.B) {
	nc, js := connect(b, natsURL())
	streamName, prefix := stream(b, js)
	c := startCluster(b, nc)
	db := postgres(b)
	cfg := DefaultBarrierConfig()
	cfg.Dialect = db.dialect
	barrier, err := OpenBarrier(context.Background(), db.db, cfg)
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(CheckHandler(barrier))
	b.Cleanup(hs.Close)
	pcfg := DefaultProducerConfig()
	pcfg.Check = hs.URL
	pcfg.Logger = quiet
	p, err := NewProducer(c.client, barrier, pcfg)
	if err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	run := func(b *testing.B, kind string, send func(ctx context.Context, id, subject string) error) {
		subject := prefix + "." + kind
		s, err := js.Stream(context.Background(), streamName)
		if err != nil {
			b.Fatal(err)
		}
		before := func() uint64 {
			info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
			if err != nil {
				b.Fatal(err)
			}
			return info.State.Subjects[subject]
		}
		start0 := before()
		var spent atomic.Int64
		b.SetParallelism(4) // 8 callers on 2 cores
		started := time.Now()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				id := kind + strconv.FormatInt(seq.Add(1), 10)
				t0 := time.Now()
				if err := send(ctx, id, subject); err != nil {
					b.Error(err)
					return
				}
				spent.Add(int64(time.Since(t0)))
			}
		})
		want := start0 + uint64(b.N)
		poll.Until(b, "every message in the stream", time.Minute, func() bool { return before() >= want })
		b.StopTimer()
		b.ReportMetric(float64(b.N)/time.Since(started).Seconds(), "e2e-msgs/s")
		b.ReportMetric(float64(spent.Load())/float64(b.N)/1e6, "latency-ms")
	}
	b.Run("unsafe-publish-after-commit", func(b *testing.B) {
		run(b, "bare", func(ctx context.Context, id, subject string) error {
			tx, err := db.db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			if err := insertOrder(id, db.dialect)(ctx, tx); err != nil {
				_ = tx.Rollback()
				return err
			}
			if err := tx.Commit(); err != nil {
				return err
			}
			_, err = js.Publish(ctx, subject, []byte(id), jetstream.WithMsgID(id))
			return err
		})
	})
	b.Run("two-phase-message", func(b *testing.B) {
		run(b, "msg", func(ctx context.Context, id, subject string) error {
			_, err := p.Send(ctx, "place-order", insertOrder(id, db.dialect), Message{Target: "nats:" + subject, Payload: []byte(id)})
			return err
		})
	})
}
