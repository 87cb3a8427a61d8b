package tc

import (
	"context"
	"sync"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// Messenger runs, inside the coordinator, the two-phase messages: the MSG
// branches on resource tcv1.MessageResource. modes/msg's Courier implements
// it. With Config.Messages nil such branches go to a resource manager that
// announced "gtx.msg", like any other branch, and a prepared message that
// times out is rolled back without asking its producer.
type Messenger interface {
	// Deliver hands the message in data (a tcv1.MessageData) to its target
	// and returns nil once the target acknowledged it; an error is retried
	// with the coordinator's backoff and budget. Delivery is at least once,
	// always under the ID tcv1.MessageID(xid, branchID).
	Deliver(ctx context.Context, xid string, branchID int64, data []byte) error
	// Check asks the producer of xid, which data (one of its MSG branches)
	// names, whether its local transaction committed. The answer is final;
	// an error leaves the message prepared, to be asked about again.
	Check(ctx context.Context, xid string, data []byte) (committed bool, err error)
}

// isMessage reports whether b is a branch of a two-phase message.
func isMessage(b *BranchSession) bool {
	return b.Type == tcv1.BranchType_MSG && b.ResourceID == tcv1.MessageResource
}

// preparedMessage returns a branch of g that makes it a two-phase message,
// or nil. A Commit of such a transaction is its producer's submit, sent
// after its local transaction committed, so it commits even past the
// timeout.
func preparedMessage(g *GlobalSession) *BranchSession {
	for _, b := range g.Branches {
		if isMessage(b) {
			return b
		}
	}
	return nil
}

// command runs one phase-2 command: a two-phase message's branch through
// the Messenger, any other through the resource manager attached for it.
func (s *Server) command(ctx context.Context, action tcv1.BranchAction, b *BranchSession) (*tcv1.BranchResult, error) {
	if s.cfg.Messages == nil || !isMessage(b) {
		return s.hub.command(ctx, action, b)
	}
	res := &tcv1.BranchResult{Xid: b.XID, BranchId: b.BranchID}
	if action == tcv1.BranchAction_BRANCH_ROLLBACK {
		// A message rolled back is one never delivered.
		res.Status = tcv1.BranchStatus_PHASE2_ROLLBACKED
		return res, nil
	}
	if err := s.cfg.Messages.Deliver(ctx, b.XID, b.BranchID, b.ApplicationData); err != nil {
		res.Status, res.Message = tcv1.BranchStatus_PHASE2_COMMIT_FAILED_RETRYABLE, err.Error()
		return res, nil
	}
	res.Status = tcv1.BranchStatus_PHASE2_COMMITTED
	return res, nil
}

// checkMessages asks the producers of the two-phase messages among list,
// sessions in BEGIN past their timeout, whether their local transactions
// committed, Workers at a time, and commits those that did. It returns the
// sessions to roll back: the ones that are no message, and the messages
// whose local transaction did not commit. A message whose producer does not
// answer stays in BEGIN and is asked about again at the next sweep.
func (s *Server) checkMessages(ctx context.Context, list []*GlobalSession) []*GlobalSession {
	if s.cfg.Messages == nil {
		return list
	}
	var (
		mu       sync.Mutex
		rollback []*GlobalSession
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, s.cfg.Workers)
	for _, g := range list {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if !s.checkMessage(ctx, g) {
				mu.Lock()
				rollback = append(rollback, g)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return rollback
}

// checkMessage settles one timed-out session if it is a two-phase message
// and reports whether it did (or must wait for its producer); false means
// the caller rolls it back as timed out.
func (s *Server) checkMessage(ctx context.Context, seen *GlobalSession) bool {
	g, err := s.store.GetGlobal(ctx, seen.XID)
	if err != nil || g.Status != tcv1.GlobalStatus_BEGIN {
		// Gone or decided since it was listed; an error is tried again
		// at the next sweep.
		return true
	}
	b := preparedMessage(g)
	if b == nil {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.BranchTimeout)
	committed, err := s.cfg.Messages.Check(cctx, g.XID, b.ApplicationData)
	cancel()
	switch {
	case err != nil:
		s.log.Warn("ask the producer of a prepared message", "xid", g.XID, "name", g.Name, "err", err)
		return true
	case !committed:
		s.log.Info("prepared message not committed by its producer", "xid", g.XID, "name", g.Name)
		return false
	}
	to := tcv1.GlobalStatus_COMMITTING
	if canCommitAsync(g) {
		to = tcv1.GlobalStatus_ASYNC_COMMITTING
	}
	if _, err := s.startPhase2(ctx, g, to); err != nil && !raced(err) {
		s.log.Error("commit a prepared message its producer committed", "xid", g.XID, "err", err)
		return true
	}
	s.log.Info("prepared message committed by its producer", "xid", g.XID, "name", g.Name)
	return true
}
