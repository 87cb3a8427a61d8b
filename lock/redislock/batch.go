package redislock

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// batchWorkers is how many pipelines a Backend keeps in flight at once, and
// batchMax the most script calls one of them carries.
const (
	batchWorkers = 4
	batchMax     = 128
)

// batcher sends the script calls of concurrent callers to Redis together:
// a call waits until one of batchWorkers workers is free, and a free worker
// takes every call queued by then (up to batchMax) and sends them in one
// pipeline, one write and one round trip. A call alone is sent as it is, so
// a single caller pays only the hand-over to the worker. It implements
// redis.Scripter for the scripts' EVALSHA and EVAL (their NOSCRIPT retry);
// the rest goes straight to the client.
type batcher struct {
	rdb   redis.UniversalClient
	calls chan *call
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// call is one script call waiting for its batch.
type call struct {
	ctx  context.Context
	send func(ctx context.Context, c redis.Scripter) *redis.Cmd
	res  *redis.Cmd
	done chan struct{}
}

func newBatcher(rdb redis.UniversalClient) *batcher {
	b := &batcher{rdb: rdb, calls: make(chan *call), stop: make(chan struct{})}
	for range batchWorkers {
		b.wg.Go(b.work)
	}
	return b
}

// close stops the workers; calls waiting for one fail with errClosed.
func (b *batcher) close() {
	b.once.Do(func() { close(b.stop) })
	b.wg.Wait()
}

func (b *batcher) work() {
	batch := make([]*call, 0, batchMax)
	for {
		select {
		case c := <-b.calls:
			batch = append(batch[:0], c)
		case <-b.stop:
			return
		}
	more:
		for len(batch) < batchMax {
			select {
			case c := <-b.calls:
				batch = append(batch, c)
			default:
				break more
			}
		}
		b.send(batch)
	}
}

// send runs one batch: alone on the client, or as one pipeline.
func (b *batcher) send(batch []*call) {
	if len(batch) == 1 {
		c := batch[0]
		c.res = c.send(c.ctx, b.rdb)
		close(c.done)
		return
	}
	p := b.rdb.Pipeline()
	for _, c := range batch {
		c.res = c.send(c.ctx, p)
	}
	// Each command carries its own answer or error; Exec's error is only
	// the first of them.
	_, _ = p.Exec(context.Background())
	for _, c := range batch {
		close(c.done)
	}
}

// do queues a call and waits for its answer, or for ctx.
func (b *batcher) do(ctx context.Context, send func(ctx context.Context, c redis.Scripter) *redis.Cmd) *redis.Cmd {
	c := &call{ctx: ctx, send: send, done: make(chan struct{})}
	select {
	case b.calls <- c:
	case <-ctx.Done():
		return failed(ctx, ctx.Err())
	case <-b.stop:
		return failed(ctx, errClosed)
	}
	select {
	case <-c.done:
		return c.res
	case <-ctx.Done():
		// The call still runs; Client.abandon frees a lock acquired by a
		// call given up on.
		return failed(ctx, ctx.Err())
	}
}

func failed(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(err)
	return cmd
}

func (b *batcher) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	return b.do(ctx, func(ctx context.Context, c redis.Scripter) *redis.Cmd { return c.EvalSha(ctx, sha, keys, args...) })
}

func (b *batcher) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return b.do(ctx, func(ctx context.Context, c redis.Scripter) *redis.Cmd { return c.Eval(ctx, script, keys, args...) })
}

func (b *batcher) EvalShaRO(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	return b.rdb.EvalShaRO(ctx, sha, keys, args...)
}

func (b *batcher) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return b.rdb.EvalRO(ctx, script, keys, args...)
}

func (b *batcher) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return b.rdb.ScriptExists(ctx, hashes...)
}

func (b *batcher) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return b.rdb.ScriptLoad(ctx, script)
}

var _ redis.Scripter = (*batcher)(nil)
