package tc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// errNoResourceManager means no attached resource manager announced the
// branch's resource; phase 2 retries it later.
var errNoResourceManager = errors.New("no resource manager attached for this resource")

// errDetached means the resource manager's stream ended before it answered.
var errDetached = errors.New("resource manager detached before answering")

// rmConn is one resource manager's Attach stream.
type rmConn struct {
	application string
	clientID    string

	sendMu sync.Mutex
	stream tcv1.Coordinator_AttachServer
	// ended is set, under sendMu, before the stream's handler returns:
	// gRPC forbids Send after that.
	ended bool

	mu      sync.Mutex
	pending map[int64]chan *tcv1.BranchResult
	closed  bool
}

func (c *rmConn) send(msg *tcv1.AttachResponse) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.ended {
		return errDetached
	}
	return c.stream.Send(msg)
}

// deliver hands a result to the command waiting for it; late or unknown
// results are dropped.
func (c *rmConn) deliver(r *tcv1.BranchResult) {
	c.mu.Lock()
	ch, ok := c.pending[r.GetRequestId()]
	delete(c.pending, r.GetRequestId())
	c.mu.Unlock()
	if ok {
		ch <- r
	}
}

// close fails every command still waiting for an answer.
func (c *rmConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
}

// hub routes branch commands to attached resource managers by resource ID.
type hub struct {
	nextRequest atomic.Int64
	rr          atomic.Uint64

	mu    sync.RWMutex
	conns map[string][]*rmConn // resource ID -> streams announcing it
}

func newHub() *hub {
	return &hub{conns: make(map[string][]*rmConn)}
}

func (h *hub) add(c *rmConn, resourceID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range h.conns[resourceID] {
		if x == c {
			return
		}
	}
	h.conns[resourceID] = append(h.conns[resourceID], c)
}

func (h *hub) remove(c *rmConn) {
	h.mu.Lock()
	for id, list := range h.conns {
		kept := list[:0]
		for _, x := range list {
			if x != c {
				kept = append(kept, x)
			}
		}
		if len(kept) == 0 {
			delete(h.conns, id)
		} else {
			h.conns[id] = kept
		}
	}
	h.mu.Unlock()
	c.sendMu.Lock()
	c.ended = true
	c.sendMu.Unlock()
	c.close()
}

// pick returns one stream announcing resourceID, round robin.
func (h *hub) pick(resourceID string) *rmConn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	list := h.conns[resourceID]
	if len(list) == 0 {
		return nil
	}
	return list[h.rr.Add(1)%uint64(len(list))]
}

// command sends one phase-2 command for b and waits for the answer.
func (h *hub) command(ctx context.Context, action tcv1.BranchAction, b *BranchSession) (*tcv1.BranchResult, error) {
	c := h.pick(b.ResourceID)
	if c == nil {
		return nil, fmt.Errorf("%w: %s", errNoResourceManager, b.ResourceID)
	}
	id := h.nextRequest.Add(1)
	ch := make(chan *tcv1.BranchResult, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errDetached
	}
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	err := c.send(&tcv1.AttachResponse{Msg: &tcv1.AttachResponse_Command{Command: &tcv1.BranchCommand{
		RequestId:       id,
		Action:          action,
		Xid:             b.XID,
		BranchId:        b.BranchID,
		BranchType:      b.Type,
		ResourceId:      b.ResourceID,
		ApplicationData: b.ApplicationData,
	}}})
	if err != nil {
		forget()
		return nil, fmt.Errorf("send to resource manager %s: %w", c.clientID, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, errDetached
		}
		return r, nil
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("resource manager %s did not answer: %w", c.clientID, ctx.Err())
	}
}

// recvHello receives the first message of an Attach stream, or fails with
// DeadlineExceeded when none arrives within Limits.HelloTimeout. The
// receiving goroutine ends with the stream, which gRPC cancels once the
// handler returns.
func (s *Server) recvHello(stream tcv1.Coordinator_AttachServer) (*tcv1.AttachRequest, error) {
	type received struct {
		m   *tcv1.AttachRequest
		err error
	}
	ch := make(chan received, 1)
	go func() {
		m, err := stream.Recv()
		ch <- received{m, err}
	}()
	t := time.NewTimer(s.cfg.Limits.HelloTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-t.C:
		return nil, status.Errorf(codes.DeadlineExceeded, "tc: no hello within %v of opening Attach; send hello first", s.cfg.Limits.HelloTimeout)
	case <-s.closing:
		return nil, status.Error(codes.Unavailable, "tc: coordinator shutting down, reconnect")
	}
}
