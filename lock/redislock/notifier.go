package redislock

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// notifier shares one pub/sub connection among every waiter of a Backend and
// routes each message to the callbacks registered for its channel.
type notifier struct {
	rdb redis.UniversalClient

	mu     sync.Mutex
	ps     *redis.PubSub
	subs   map[string]map[*func()]struct{}
	done   chan struct{}
	closed bool
}

func newNotifier(rdb redis.UniversalClient) *notifier {
	return &notifier{rdb: rdb, subs: make(map[string]map[*func()]struct{})}
}

// watch calls wake, which must not block, for each message on channel until
// stop is called.
func (n *notifier) watch(ctx context.Context, channel string, wake func()) (func(), error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return func() {}, errClosed
	}
	if n.ps == nil {
		n.ps = n.rdb.Subscribe(context.WithoutCancel(ctx))
		n.done = make(chan struct{})
		go n.dispatch(n.ps.Channel(), n.done)
	}
	set := n.subs[channel]
	if set == nil {
		if err := n.ps.Subscribe(ctx, channel); err != nil {
			return func() {}, fmt.Errorf("redislock: subscribe to %s: %w", channel, err)
		}
		set = make(map[*func()]struct{})
		n.subs[channel] = set
	}
	id := &wake
	set[id] = struct{}{}
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		cur := n.subs[channel]
		if cur == nil {
			return
		}
		delete(cur, id)
		if len(cur) == 0 {
			delete(n.subs, channel)
			if n.ps != nil {
				_ = n.ps.Unsubscribe(context.Background(), channel)
			}
		}
	}, nil
}

func (n *notifier) dispatch(msgs <-chan *redis.Message, done chan struct{}) {
	defer close(done)
	for m := range msgs {
		n.mu.Lock()
		for wake := range n.subs[m.Channel] {
			(*wake)()
		}
		n.mu.Unlock()
	}
}

// close closes the pub/sub connection and waits for the dispatcher.
func (n *notifier) close() error {
	n.mu.Lock()
	ps, done := n.ps, n.done
	n.ps = nil
	n.closed = true
	n.mu.Unlock()
	if ps == nil {
		return nil
	}
	err := ps.Close()
	<-done
	return err
}
