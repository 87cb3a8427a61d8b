package tc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// ErrServerClosed is returned by Start after Close.
var ErrServerClosed = errors.New("tc: server closed")

// Start runs the background work: timeout rollbacks, phase-2 retries and
// resumption of every unfinished session (at once, so a restarted
// coordinator finishes what it left), and cleanup of old finished sessions.
// It returns at once; Close stops the work and waits for it.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closing:
		return ErrServerClosed
	default:
	}
	if s.started {
		return errors.New("tc: server already started")
	}
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("tc: store unreachable, check its DSN: %w", err)
	}
	s.started = true
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.runCtx = ctx
	// On every replica, leader or not: only this replica knows which
	// transactions it began for which process.
	s.wg.Add(1)
	go s.loop(ctx, s.cfg.TimeoutCheckInterval, nil, s.rollbackDetached)
	if l, ok := s.store.(Leader); ok {
		s.wg.Add(1)
		go s.whileLeading(ctx, l)
		return nil
	}
	s.startLoops(ctx, false)
	return nil
}

// startLoops starts the background work, which runs until ctx is done.
// every is takeOver's: true only where this replica alone drives phase 2.
func (s *Server) startLoops(ctx context.Context, every bool) {
	s.wg.Add(4)
	go func() {
		// Taking over before the first round of the recovery loop makes
		// that round drive what a crash or the previous leader left, at
		// once.
		s.takeOver(ctx, every)
		s.loop(ctx, s.cfg.RecoveryInterval, s.wakeCh, s.resume)
	}()
	go s.loop(ctx, s.cfg.TimeoutCheckInterval, nil, s.rollbackTimedOut)
	go s.loop(ctx, time.Minute, nil, s.cleanup)
	go s.loop(ctx, s.cfg.Lease/4, nil, s.releaseOrphanLocks)
	s.wake()
}

// whileLeading runs the background work only while l says this node
// leads, starting it at once on each new leadership: it takes over from
// every owner (the previous leader's leases included), so the recovery
// loop's first claim resumes every transaction in flight.
func (s *Server) whileLeading(ctx context.Context, l Leader) {
	defer s.wg.Done()
	for {
		leading, changed := l.Leading()
		lctx, stop := context.WithCancel(ctx)
		if leading {
			s.log.Info("leading: background work starts")
			s.startLoops(lctx, true)
		}
		select {
		case <-ctx.Done():
			stop()
			return
		case <-changed:
			stop()
		}
	}
}

// Close ends every Attach stream, stops the background work and waits for
// it. Phase-2 work cut short is durable and resumes when a coordinator on the
// same store starts again. Close does not stop the gRPC server it is
// registered on; call the server's GracefulStop after Close.
func (s *Server) Close() error {
	s.mu.Lock()
	select {
	case <-s.closing:
	default:
		close(s.closing)
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// wake asks the recovery loop to look for due work now.
func (s *Server) wake() {
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
}

// loop runs work now, then every interval and whenever wake (which may be
// nil) fires, until ctx is done.
func (s *Server) loop(ctx context.Context, every time.Duration, wake <-chan struct{}, work func(context.Context)) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		work(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
	}
}

// takeOverLimit bounds the sessions one takeOver makes due; more are
// resumed at their next attempt as usual.
const takeOverLimit = 10000

// takeOver makes due now the phase 2 of the sessions that no other replica
// may be driving, and wakes the recovery loop to drive them: those this
// ServerID owns (left by an earlier run of this replica that crashed, due
// only Lease/2 after their decision, see startPhase2, or at their
// back-off), and, when every is true, those of every owner.
//
// It is the one code path of "this replica has just become the one to
// drive phase 2", run by startLoops: with every false on a store shared by
// replicas, which may be driving their own sessions; with every true on a
// Leader store each time this node becomes leader, since only the leader
// drives phase 2, so it resumes what the previous leader left at once
// instead of when that leader's leases run out.
//
// Only the next attempt's time changes; should another replica move a
// session between the read and the write, the write fails on its status
// or, the status being the same, at worst both drive it once more, which
// phase 2, delivered at least once, allows.
func (s *Server) takeOver(ctx context.Context, every bool) {
	list, err := s.store.ListGlobals(ctx, ListFilter{Statuses: tcv1.Phase2Statuses(), Limit: takeOverLimit})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("list unfinished phase 2 to resume", "err", err)
		}
		return
	}
	now := s.now()
	n := 0
	for _, g := range list {
		if ctx.Err() != nil {
			return
		}
		if !g.NextAttempt.After(now) || !every && g.Owner != s.cfg.ServerID {
			continue
		}
		u := GlobalUpdate{Status: g.Status, Attempts: g.Attempts, LastError: g.LastError, Owner: g.Owner, LeaseUntil: g.LeaseUntil}
		if every {
			u.Owner, u.LeaseUntil = "", time.Time{}
		}
		switch err := s.store.UpdateGlobal(ctx, g.XID, []tcv1.GlobalStatus{g.Status}, u); {
		case errors.Is(err, ErrStatusConflict), errors.Is(err, ErrNotFound):
			// Moved on since the read.
		case err != nil:
			s.log.Warn("resume phase 2", "xid", g.XID, "err", err)
		default:
			n++
		}
	}
	if n > 0 {
		s.log.Info("resuming phase 2 left unfinished", "sessions", n)
	}
	if len(list) == takeOverLimit {
		s.log.Warn("more unfinished phase 2 than resumed at once; the rest resume at their next attempt", "resumed", takeOverLimit)
	}
	s.wake()
}

// resume drives every due phase-2 session this replica can lease, Workers
// at a time, until none is due.
func (s *Server) resume(ctx context.Context) {
	for ctx.Err() == nil {
		// No more than the workers can start at once, so no claim waits
		// in line while its lease runs out.
		due, err := s.store.ClaimDue(ctx, s.cfg.ServerID, tcv1.Phase2Statuses(), s.now(), s.cfg.Lease, s.cfg.Workers)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("claim due phase-2 work", "err", err)
			}
			return
		}
		// Sessions this replica drives already (a synchronous first
		// attempt) are claimed again because they are ours; skip them, and
		// stop when nothing else is due.
		var todo []*GlobalSession
		for _, g := range due {
			if _, busy := s.driving.Load(g.XID); !busy {
				todo = append(todo, g)
			}
		}
		if len(todo) == 0 {
			return
		}
		var wg sync.WaitGroup
		for _, g := range todo {
			wg.Go(func() {
				if err := s.driveClaimed(ctx, g.XID); err != nil && ctx.Err() == nil {
					s.log.Error("phase 2", "xid", g.XID, "err", err)
				}
			})
		}
		wg.Wait()
	}
}

// rollbackTimedOut decides rollback for every transaction past its timeout
// (a two-phase message only once its producer says its local transaction
// did not commit) and leaves the phase 2 to the recovery loop's workers, so one hung
// resource manager does not hold back the other decisions.
func (s *Server) rollbackTimedOut(ctx context.Context) {
	list, err := s.store.ListTimedOut(ctx, s.now(), 1000)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("list timed-out transactions", "err", err)
		}
		return
	}
	for _, g := range s.checkMessages(ctx, list) {
		if ctx.Err() != nil {
			return
		}
		err := s.store.UpdateGlobal(ctx, g.XID, []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN},
			GlobalUpdate{Status: tcv1.GlobalStatus_TIMEOUT_ROLLBACKING})
		switch {
		case errors.Is(err, ErrStatusConflict):
			// Committed or rolled back by its TM first.
		case err != nil:
			s.log.Error("timeout rollback", "xid", g.XID, "err", err)
		default:
			s.log.Info("timed out", "xid", g.XID, "name", g.Name, "timeout", g.Timeout)
			s.wake()
		}
	}
}

// rollbackDetached decides rollback for the transactions in BEGIN whose
// process is taken for dead (see processes and Config.DetachGrace), and
// leaves the phase 2 to the recovery loop, as rollbackTimedOut does.
func (s *Server) rollbackDetached(ctx context.Context) {
	if s.cfg.DetachGrace == 0 {
		return
	}
	for _, o := range s.procs.orphans(s.now(), s.cfg.DetachGrace) {
		if ctx.Err() != nil {
			return
		}
		reason := fmt.Sprintf("the process that began it (%s) detached and did not attach again within %v", o.clientID, s.cfg.DetachGrace)
		err := s.store.UpdateGlobal(ctx, o.xid, []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN},
			GlobalUpdate{Status: tcv1.GlobalStatus_ROLLBACKING, LastError: reason})
		switch {
		case errors.Is(err, ErrStatusConflict), errors.Is(err, ErrNotFound):
			// Ended meanwhile, through another replica or by its timeout.
		case err != nil:
			s.log.Error("roll back the transaction of a process gone", "xid", o.xid, "err", err)
		default:
			s.log.Info("rolled back: its process is gone", "xid", o.xid, "client_id", o.clientID)
			s.wake()
		}
	}
}

// releaseOrphanLocks releases the global row locks of transactions that no
// longer need them: finished (but for ROLLBACK_FAILED, whose rows stay
// guarded until an operator acts), committing (their locks go at the
// decision), or unknown. Locks of transactions in BEGIN or rolling back stay.
func (s *Server) releaseOrphanLocks(ctx context.Context) {
	lister, ok := s.locks.(LockHolderLister)
	if !ok {
		return
	}
	after := ""
	for ctx.Err() == nil {
		xids, err := lister.LockHolders(ctx, after, 500)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("list lock holders", "err", err)
			}
			return
		}
		for _, xid := range xids {
			g, err := s.store.GetGlobal(ctx, xid)
			switch {
			case errors.Is(err, ErrNotFound):
				g = nil
			case err != nil:
				s.log.Error("read lock holder", "xid", xid, "err", err)
				continue
			}
			if g != nil && !locksOrphaned(g.Status) {
				continue
			}
			if s.releaseLocks(ctx, "orphaned", xid, 0) {
				s.log.Info("released locks that outlived their transaction", "xid", xid)
			}
		}
		if len(xids) < 500 {
			return
		}
		after = xids[len(xids)-1]
	}
}

// cleanup deletes finished sessions older than the retention.
func (s *Server) cleanup(ctx context.Context) {
	if s.cfg.Retention == 0 {
		return
	}
	for ctx.Err() == nil {
		n, err := s.store.DeleteFinished(ctx, s.now().Add(-s.cfg.Retention), 1000)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("delete finished sessions", "err", err)
			}
			return
		}
		if n < 1000 {
			return
		}
	}
}

// Attach implements tcv1.CoordinatorServer: the stream of one resource
// manager. Its first message must be Hello.
func (s *Server) Attach(stream tcv1.Coordinator_AttachServer) error {
	first, err := s.recvHello(stream)
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if err := s.cfg.Limits.checkHello(hello); err != nil {
		return err
	}
	c := &rmConn{
		application: hello.GetApplication(),
		clientID:    hello.GetClientId(),
		stream:      stream,
		pending:     make(map[int64]chan *tcv1.BranchResult),
	}
	if err := c.send(&tcv1.AttachResponse{Msg: &tcv1.AttachResponse_Welcome{Welcome: &tcv1.Welcome{ServerId: s.cfg.ServerID}}}); err != nil {
		return err
	}
	for _, r := range hello.GetResources() {
		s.hub.add(c, r.GetResourceId())
	}
	defer s.hub.remove(c)
	s.procs.attached(c.clientID)
	defer func() { s.procs.detached(c.clientID, s.now()) }()
	s.log.Info("resource manager attached", "application", c.application, "client_id", c.clientID, "resources", len(hello.GetResources()))
	s.wake()

	msgs := make(chan *tcv1.AttachRequest)
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-stream.Context().Done():
				errc <- stream.Context().Err()
				return
			}
		}
	}()
	for {
		select {
		case <-s.closing:
			return status.Error(codes.Unavailable, "tc: coordinator shutting down, reconnect")
		case err := <-errc:
			s.log.Info("resource manager detached", "client_id", c.clientID, "reason", err)
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case m := <-msgs:
			switch {
			case m.GetResult() != nil:
				c.deliver(m.GetResult())
			case m.GetAddResource() != nil:
				if err := s.cfg.Limits.checkResource(m.GetAddResource()); err != nil {
					return err
				}
				s.hub.add(c, m.GetAddResource().GetResourceId())
				s.wake()
			default:
				return status.Error(codes.InvalidArgument, "tc: attach expects result or add_resource after hello")
			}
		}
	}
}
