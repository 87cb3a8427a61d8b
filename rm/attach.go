package rm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// attachment is one Attach stream. Sends are serialized: a gRPC stream
// allows one sender at a time.
type attachment struct {
	index  int
	stream tcv1.Coordinator_AttachClient
	mu     sync.Mutex
}

func (a *attachment) send(msg *tcv1.AttachRequest) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stream.Send(msg)
}

func addResource(r resource) *tcv1.AttachRequest {
	return &tcv1.AttachRequest{Msg: &tcv1.AttachRequest_AddResource{
		AddResource: &tcv1.Resource{ResourceId: r.id, BranchType: r.typ},
	}}
}

// attachLoop keeps c attached until ctx is done, waiting between attempts
// with exponential backoff and jitter; the backoff starts over after a
// stream that got as far as Welcome. While the coordinator is unreachable
// an attempt waits for the connection to be ready (see attach), so the
// backoff only spaces out attempts that reached a coordinator which
// refused or ended the stream.
func (m *Manager) attachLoop(ctx context.Context, c *coordinator) {
	defer m.wg.Done()
	wait := m.cfg.ReconnectInitial
	for {
		welcomed, err := m.attach(ctx, c)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNotReady) {
			// Nothing refused the stream: the coordinator is still
			// unreachable. Wait for it again at once, or a coordinator
			// coming back during a backoff would be seen late.
			m.log.Warn("coordinator unreachable, still waiting for it", "coordinator", c.index, "err", err)
			continue
		}
		if welcomed {
			wait = m.cfg.ReconnectInitial
		}
		d := wait/2 + rand.N(wait/2+1)
		m.log.Warn("attach stream ended, reconnecting", "coordinator", c.index, "err", err, "in", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, m.cfg.ReconnectMax)
	}
}

// welcomeWait bounds how long one attach attempt waits for the connection
// to be ready and the coordinator's Welcome, so that an unreachable
// coordinator is logged every so often with the connection's last error.
const welcomeWait = 10 * time.Second

// errNotReady is how attach reports that welcomeWait ran out.
var errNotReady = errors.New("rm: no welcome from the coordinator yet")

// attach runs one Attach stream: Hello, Welcome, then branch commands until
// the stream ends. It reports whether the coordinator welcomed it.
//
// The stream waits for the connection to be ready instead of failing while
// the coordinator is unreachable: it opens the moment the connection's own
// reconnect attempts (FastReconnect) get through, rather than at the next
// turn of attachLoop's backoff.
func (m *Manager) attach(ctx context.Context, c *coordinator) (welcomed bool, err error) {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(welcomeWait, func() { cancel(errNotReady) })
	defer func() {
		if timer.Stop() || context.Cause(sctx) != errNotReady {
			return
		}
		err = fmt.Errorf("%w after %v: %w", errNotReady, welcomeWait, err)
	}()
	stream, err := c.client.Attach(sctx, grpc.WaitForReady(true))
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	announced := len(m.resources)
	hello := &tcv1.Hello{Application: m.cfg.Application, ClientId: m.cfg.ClientID}
	for _, r := range m.resources {
		hello.Resources = append(hello.Resources, &tcv1.Resource{ResourceId: r.id, BranchType: r.typ})
	}
	m.mu.Unlock()
	a := &attachment{index: c.index, stream: stream}
	if err := a.send(&tcv1.AttachRequest{Msg: &tcv1.AttachRequest_Hello{Hello: hello}}); err != nil {
		return false, fmt.Errorf("rm: send hello: %w", err)
	}
	first, err := stream.Recv()
	if err != nil {
		return false, fmt.Errorf("rm: wait for welcome: %w", err)
	}
	welcome := first.GetWelcome()
	if welcome == nil {
		return false, fmt.Errorf("rm: the coordinator answered hello with %T, want a welcome", first.GetMsg())
	}
	if !timer.Stop() {
		// The wait ran out as the Welcome came, and cancelled the stream.
		return false, errors.New("the welcome came as the wait for it ran out")
	}
	m.publish(c, a, announced)
	defer m.unpublish(c, a)
	m.log.Info("attached", "coordinator", c.index, "server_id", welcome.GetServerId(), "resources", len(hello.Resources))
	for {
		msg, err := stream.Recv()
		if err != nil {
			return true, err
		}
		cmd := msg.GetCommand()
		if cmd == nil {
			m.log.Warn("unexpected message on the attach stream, ignored", "coordinator", c.index, "type", fmt.Sprintf("%T", msg.GetMsg()))
			continue
		}
		select {
		case m.workers <- struct{}{}:
		case <-ctx.Done():
			return true, ctx.Err()
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer func() { <-m.workers }()
			res := m.execute(ctx, cmd)
			if err := a.send(&tcv1.AttachRequest{Msg: &tcv1.AttachRequest_Result{Result: res}}); err != nil && ctx.Err() == nil {
				m.log.Warn("branch result not delivered; the coordinator will send the command again",
					"xid", cmd.GetXid(), "branch_id", cmd.GetBranchId(), "err", err)
			}
		}()
	}
}

// publish makes a the live attachment of c and announces the resources added
// since its Hello was built.
func (m *Manager) publish(c *coordinator, a *attachment, announced int) {
	m.mu.Lock()
	c.att = a
	missed := append([]resource(nil), m.resources[announced:]...)
	m.notifyLocked()
	m.mu.Unlock()
	for _, r := range missed {
		if err := a.send(addResource(r)); err != nil {
			m.log.Debug("announcing a resource failed", "resource_id", r.id, "coordinator", c.index, "err", err)
		}
	}
}

func (m *Manager) unpublish(c *coordinator, a *attachment) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.att == a {
		c.att = nil
		m.notifyLocked()
	}
}

// maxMessageLen caps the message of a branch result.
const maxMessageLen = 1024

// execute runs one branch command and returns its result.
func (m *Manager) execute(ctx context.Context, cmd *tcv1.BranchCommand) *tcv1.BranchResult {
	res := &tcv1.BranchResult{RequestId: cmd.GetRequestId(), Xid: cmd.GetXid(), BranchId: cmd.GetBranchId()}
	ok, retry, unretry := cmd.GetAction().Phase2Outcomes()
	if ok == tcv1.BranchStatus_BRANCH_STATUS_UNSPECIFIED {
		res.Message = fmt.Sprintf("rm: unknown branch action %v: this resource manager may be older than the coordinator", cmd.GetAction())
		m.log.Error("unknown branch action", "xid", cmd.GetXid(), "branch_id", cmd.GetBranchId(), "action", cmd.GetAction())
		return res
	}
	b := Branch{
		XID:             cmd.GetXid(),
		BranchID:        cmd.GetBranchId(),
		Type:            cmd.GetBranchType(),
		ResourceID:      cmd.GetResourceId(),
		ApplicationData: cmd.GetApplicationData(),
	}
	if err := gtx.ValidateXID(b.XID); err != nil {
		res.Status, res.Message = unretry, resultMessage(fmt.Errorf("rm: branch command with a malformed xid: %w", err))
		return res
	}
	h := m.handler(b.Type)
	switch {
	case h == nil:
		res.Status = retry
		res.Message = fmt.Sprintf("rm: no handler for branch type %v in %s (%s); another instance may handle it", b.Type, m.cfg.Application, m.cfg.ClientID)
		return res
	case !m.hasResource(b.ResourceID, b.Type):
		res.Status = retry
		res.Message = fmt.Sprintf("rm: resource %q (%v) is not registered in %s (%s); another instance may handle it", b.ResourceID, b.Type, m.cfg.Application, m.cfg.ClientID)
		return res
	}
	err := m.call(ctx, h, cmd.GetAction(), b)
	switch {
	case err == nil:
		res.Status = ok
	case errors.Is(err, ErrUnretryable):
		res.Status, res.Message = unretry, resultMessage(err)
	default:
		res.Status, res.Message = retry, resultMessage(err)
	}
	if err != nil {
		m.log.Warn("branch phase 2 failed", "xid", b.XID, "branch_id", b.BranchID, "action", cmd.GetAction(), "status", res.Status, "err", err)
	}
	return res
}

// call runs the handler with the branch timeout, turning a panic into a
// retryable failure.
func (m *Manager) call(ctx context.Context, h Handler, action tcv1.BranchAction, b Branch) (err error) {
	hctx, cancel := context.WithTimeout(gtx.ContextWithXID(ctx, b.XID), m.cfg.BranchTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("branch handler panicked", "xid", b.XID, "branch_id", b.BranchID, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("rm: %v handler panicked: %v", b.Type, r)
		}
	}()
	if action == tcv1.BranchAction_BRANCH_COMMIT {
		return h.Commit(hctx, b)
	}
	return h.Rollback(hctx, b)
}

// resultMessage fits an error into a branch result: valid UTF-8, at most
// maxMessageLen bytes.
func resultMessage(err error) string {
	s := err.Error()
	if len(s) > maxMessageLen {
		s = s[:maxMessageLen]
	}
	return strings.ToValidUTF8(s, "")
}
