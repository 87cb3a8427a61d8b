package tc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// Server is the transaction coordinator. It implements the gRPC service
// tcv1.CoordinatorServer; register it on a *grpc.Server with
// tcv1.RegisterCoordinatorServer, call Start to run the background work
// (timeouts, phase-2 retries, recovery, cleanup) and Close to stop it.
type Server struct {
	tcv1.UnimplementedCoordinatorServer

	cfg   Config
	store Store
	locks LockStore
	// adder is store as a LockingAdder when it is locks too, else nil.
	adder LockingAdder
	log   *slog.Logger
	hub   *hub
	obs   *observer
	// procs are the processes attached here and the transactions they
	// began, for DetachGrace.
	procs *processes
	// quota counts the lock keys registered through this replica.
	quota *lockQuota

	// driving holds the XIDs whose phase 2 this replica runs right now.
	driving sync.Map
	wakeCh  chan struct{}
	closing chan struct{}

	// committers holds a token per asynchronous commit this replica drives
	// in the background right after deciding it, at most Workers.
	committers chan struct{}

	mu      sync.Mutex
	started bool
	runCtx  context.Context // ends at Close; nil until Start
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// NewServer returns a coordinator on store and locks. Both may be the same
// value (the SQL store implements both).
func NewServer(cfg Config, store Store, locks LockStore) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil || locks == nil {
		return nil, fmt.Errorf("%w: store and lock store are required", ErrInvalidConfig)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	obs, err := newObserver(cfg, store)
	if err != nil {
		return nil, err
	}
	return &Server{
		obs:        obs,
		cfg:        cfg,
		store:      store,
		locks:      locks,
		adder:      lockingAdder(store, locks),
		log:        log.With("component", "tc", "server_id", cfg.ServerID),
		hub:        newHub(),
		procs:      newProcesses(),
		wakeCh:     make(chan struct{}, 1),
		closing:    make(chan struct{}),
		committers: make(chan struct{}, cfg.Workers),
		quota:      newLockQuota(cfg.Limits, cfg.MaxTimeout),
	}, nil
}

// lockingAdder returns store as a LockingAdder when it has the capability
// and is the same value as locks, and nil otherwise.
func lockingAdder(store Store, locks LockStore) LockingAdder {
	la, ok := store.(LockingAdder)
	if !ok || !reflect.ValueOf(store).Comparable() || any(store) != any(locks) {
		return nil
	}
	return la
}

// Begin implements tcv1.CoordinatorServer.
func (s *Server) Begin(ctx context.Context, req *tcv1.BeginRequest) (*tcv1.BeginResponse, error) {
	if err := s.cfg.Limits.checkRequest(req); err != nil {
		return nil, err
	}
	timeout, err := s.beginTimeout(req.GetTimeoutMs())
	if err != nil {
		return nil, err
	}
	id, err := s.cfg.IDs.NextID()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "tc: cannot generate an xid, try another replica: %v", err)
	}
	now := s.now()
	g := &GlobalSession{
		XID:         strconv.FormatInt(id, 10),
		Name:        req.GetName(),
		Application: req.GetApplication(),
		Status:      tcv1.GlobalStatus_BEGIN,
		Timeout:     timeout,
		BeginTime:   now,
		UpdateTime:  now,
	}
	if err := s.store.CreateGlobal(ctx, g); err != nil {
		return nil, s.toStatus(err)
	}
	s.procs.begun(req.GetClientId(), g.XID, now.Add(timeout))
	return &tcv1.BeginResponse{Xid: g.XID}, nil
}

// Commit implements tcv1.CoordinatorServer. Committing a transaction that is
// already committing or committed answers its status; committing one that is
// rolling back or rolled back fails with FailedPrecondition. A transaction
// past its timeout is rolled back instead, and the answer is
// FailedPrecondition with its rollback status; but a two-phase message
// (see Messenger) commits: its Commit is sent after its local transaction
// committed.
func (s *Server) Commit(ctx context.Context, req *tcv1.CommitRequest) (*tcv1.CommitResponse, error) {
	s.procs.ended(req.GetXid())
	if err := s.cfg.Limits.checkRequest(req); err != nil {
		return nil, err
	}
	defer s.quota.forget(req.GetXid())
	if done, err := s.finishEmpty(ctx, req.GetXid(), tcv1.GlobalStatus_COMMITTED); done || err != nil {
		return &tcv1.CommitResponse{Status: tcv1.GlobalStatus_COMMITTED}, err
	}
	g, err := s.load(ctx, req.GetXid())
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case g.Status == tcv1.GlobalStatus_BEGIN && s.expired(g) && preparedMessage(g) == nil:
			st, err := s.startPhase2(ctx, g, tcv1.GlobalStatus_TIMEOUT_ROLLBACKING)
			if err != nil && !raced(err) {
				return nil, s.toStatus(err)
			}
			if err == nil {
				return nil, s.toStatus(&StatusError{XID: g.XID, Status: st})
			}
		case g.Status == tcv1.GlobalStatus_BEGIN:
			to := tcv1.GlobalStatus_COMMITTING
			if canCommitAsync(g) {
				to = tcv1.GlobalStatus_ASYNC_COMMITTING
			}
			st, err := s.startPhase2(ctx, g, to)
			if err == nil {
				return &tcv1.CommitResponse{Status: st}, nil
			}
			if !raced(err) {
				return nil, s.toStatus(err)
			}
		case g.Status.IsCommitDecided():
			return &tcv1.CommitResponse{Status: g.Status}, nil
		default:
			return nil, s.toStatus(&StatusError{XID: g.XID, Status: g.Status})
		}
		// Another caller changed the status, or a branch registered,
		// first: look again.
		if g, err = s.load(ctx, g.XID); err != nil {
			return nil, err
		}
	}
}

// Rollback implements tcv1.CoordinatorServer. Rolling back a transaction that
// is already rolling back or rolled back answers its status; rolling back one
// that is committing or committed fails with FailedPrecondition.
func (s *Server) Rollback(ctx context.Context, req *tcv1.RollbackRequest) (*tcv1.RollbackResponse, error) {
	s.procs.ended(req.GetXid())
	if err := s.cfg.Limits.checkRequest(req); err != nil {
		return nil, err
	}
	defer s.quota.forget(req.GetXid())
	if done, err := s.finishEmpty(ctx, req.GetXid(), tcv1.GlobalStatus_ROLLBACKED); done || err != nil {
		return &tcv1.RollbackResponse{Status: tcv1.GlobalStatus_ROLLBACKED}, err
	}
	g, err := s.load(ctx, req.GetXid())
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case g.Status == tcv1.GlobalStatus_BEGIN:
			st, err := s.startPhase2(ctx, g, tcv1.GlobalStatus_ROLLBACKING)
			if err == nil {
				if req.GetReason() != "" {
					s.log.Info("rollback", "xid", g.XID, "reason", logValue(req.GetReason()), "status", st.String())
				}
				return &tcv1.RollbackResponse{Status: st}, nil
			}
			if !raced(err) {
				return nil, s.toStatus(err)
			}
		case g.Status.IsRollbackDecided():
			return &tcv1.RollbackResponse{Status: g.Status}, nil
		default:
			return nil, s.toStatus(&StatusError{XID: g.XID, Status: g.Status})
		}
		if g, err = s.load(ctx, g.XID); err != nil {
			return nil, err
		}
	}
}

// finishEmpty ends xid in status in one write when the store can and the
// transaction is in BEGIN with no branch and not past its timeout. It
// reports false, and no error, whenever that does not apply: the caller
// takes the general path, which also answers bad input.
func (s *Server) finishEmpty(ctx context.Context, xid string, status tcv1.GlobalStatus) (bool, error) {
	f, ok := s.store.(EmptyFinisher)
	if !ok || gtx.ValidateXID(xid) != nil {
		return false, nil
	}
	done, err := f.FinishEmpty(ctx, xid, status, s.now())
	if err != nil {
		return false, s.toStatus(err)
	}
	if done {
		s.obs.finishedEmpty(status)
	}
	return done, nil
}

// canCommitAsync reports whether every branch of g may commit after the
// answer: AT branches only delete undo logs in phase 2, and other branches
// may say they accept it.
func canCommitAsync(g *GlobalSession) bool {
	for _, b := range g.Branches {
		if b.Type != tcv1.BranchType_AT && !b.AsyncCommit {
			return false
		}
	}
	return true
}

func (s *Server) expired(g *GlobalSession) bool { return expired(g, s.now()) }

// GetStatus implements tcv1.CoordinatorServer.
func (s *Server) GetStatus(ctx context.Context, req *tcv1.GetStatusRequest) (*tcv1.GetStatusResponse, error) {
	if err := s.cfg.Limits.checkRequest(req); err != nil {
		return nil, err
	}
	g, err := s.load(ctx, req.GetXid())
	if err != nil {
		return nil, err
	}
	return &tcv1.GetStatusResponse{Status: g.Status}, nil
}

// Report implements tcv1.CoordinatorServer: an orchestrator that drove its
// own phase 2 (a saga) records the final status of a transaction in BEGIN.
// Reporting the status the transaction already has is accepted again.
func (s *Server) Report(ctx context.Context, req *tcv1.ReportRequest) (*tcv1.ReportResponse, error) {
	if err := s.cfg.Limits.checkRequest(req); err != nil {
		return nil, err
	}
	defer s.quota.forget(req.GetXid())
	to := req.GetStatus()
	switch to {
	case tcv1.GlobalStatus_COMMITTED, tcv1.GlobalStatus_ROLLBACKED, tcv1.GlobalStatus_COMMIT_FAILED, tcv1.GlobalStatus_ROLLBACK_FAILED:
	default:
		return nil, status.Errorf(codes.InvalidArgument, "report takes COMMITTED, ROLLBACKED, COMMIT_FAILED or ROLLBACK_FAILED, got %s", to)
	}
	g, err := s.load(ctx, req.GetXid())
	if err != nil {
		return nil, err
	}
	if g.Status == to {
		return &tcv1.ReportResponse{Status: to}, nil
	}
	if err := s.store.UpdateGlobal(ctx, g.XID, []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, GlobalUpdate{Status: to}); err != nil {
		return nil, s.toStatus(err)
	}
	s.releaseLocks(ctx, "reported", g.XID, 0)
	return &tcv1.ReportResponse{Status: to}, nil
}

// RegisterBranch implements tcv1.CoordinatorServer. It takes the branch's
// global row locks, all or none, then enlists the branch; a transaction that
// is no longer in BEGIN, or is past its timeout, refuses with
// FailedPrecondition, and a lock held by another transaction answers
// FailedPrecondition with reason LOCK_CONFLICT.
func (s *Server) RegisterBranch(ctx context.Context, req *tcv1.RegisterBranchRequest) (*tcv1.RegisterBranchResponse, error) {
	if err := s.cfg.Limits.checkRequest(req); err != nil {
		return nil, err
	}
	locks, err := s.cfg.Limits.parseLockKeys(req.GetResourceId(), req.GetLockKeys())
	if err != nil {
		return nil, err
	}
	xid := req.GetXid()
	branchID, err := s.branchID(xid, req.GetIdempotencyKey())
	if err != nil {
		return nil, err
	}
	release, err := s.takeQuota(ctx, req, len(locks))
	if err != nil {
		return nil, err
	}
	b := &BranchSession{
		XID:             xid,
		BranchID:        branchID,
		Type:            req.GetBranchType(),
		ResourceID:      req.GetResourceId(),
		LockKeys:        req.GetLockKeys(),
		ApplicationData: req.GetApplicationData(),
		Status:          tcv1.BranchStatus_REGISTERED,
		CreateTime:      s.now(),
		AsyncCommit:     req.GetAsyncCommit(),
	}
	if len(locks) > 0 && s.adder != nil {
		if err := s.adder.AddBranchLocked(ctx, b, locks); err != nil {
			if done, rerr := s.registered(ctx, req, b); done || rerr != nil {
				release()
				return &tcv1.RegisterBranchResponse{BranchId: b.BranchID}, rerr
			}
			release()
			if errors.Is(err, ErrTimedOut) {
				s.wake()
			}
			return nil, s.toStatus(s.withHolderStatus(ctx, err))
		}
		return &tcv1.RegisterBranchResponse{BranchId: b.BranchID}, nil
	}
	// Locks first, then the branch: the store refuses the branch unless the
	// transaction is still in BEGIN and within its timeout, and the locks of
	// a refused branch are given back.
	if len(locks) > 0 {
		if err := s.locks.AcquireLocks(ctx, xid, b.BranchID, locks); err != nil {
			release()
			return nil, s.toStatus(s.withHolderStatus(ctx, err))
		}
	}
	if err := s.store.AddBranch(ctx, b); err != nil {
		release()
		if done, rerr := s.registered(ctx, req, b); done || rerr != nil {
			return &tcv1.RegisterBranchResponse{BranchId: b.BranchID}, rerr
		}
		if len(locks) > 0 {
			s.releaseLocks(context.WithoutCancel(ctx), "branch refused", xid, b.BranchID)
		}
		if errors.Is(err, ErrTimedOut) {
			s.wake()
		}
		return nil, s.toStatus(err)
	}
	return &tcv1.RegisterBranchResponse{BranchId: b.BranchID}, nil
}

// withHolderStatus fills in the holder's global status of a lock conflict,
// unless the lock store did.
func (s *Server) withHolderStatus(ctx context.Context, err error) error {
	var lc *LockConflictError
	if !errors.As(err, &lc) {
		return err
	}
	if lc.HolderStatus != tcv1.GlobalStatus_GLOBAL_STATUS_UNSPECIFIED {
		return lc
	}
	if h, gerr := s.store.GetGlobal(ctx, lc.Lock.XID); gerr == nil {
		lc.HolderStatus = h.Status
	}
	return lc
}

// ReportBranch implements tcv1.CoordinatorServer: a resource manager records
// its branch's phase-1 outcome (PHASE1_DONE or PHASE1_FAILED).
func (s *Server) ReportBranch(ctx context.Context, req *tcv1.ReportBranchRequest) (*tcv1.ReportBranchResponse, error) {
	if err := s.cfg.Limits.checkRequest(req); err != nil {
		return nil, err
	}
	switch req.GetStatus() {
	case tcv1.BranchStatus_PHASE1_DONE, tcv1.BranchStatus_PHASE1_FAILED:
	default:
		return nil, status.Errorf(codes.InvalidArgument, "report_branch takes PHASE1_DONE or PHASE1_FAILED, got %s", req.GetStatus())
	}
	if err := s.store.UpdateBranch(ctx, req.GetXid(), req.GetBranchId(), req.GetStatus(), req.GetApplicationData()); err != nil {
		return nil, s.toStatus(err)
	}
	return &tcv1.ReportBranchResponse{}, nil
}

// QueryLocks implements tcv1.CoordinatorServer.
func (s *Server) QueryLocks(ctx context.Context, req *tcv1.QueryLocksRequest) (*tcv1.QueryLocksResponse, error) {
	if err := s.cfg.Limits.checkRequest(req); err != nil {
		return nil, err
	}
	locks, err := s.cfg.Limits.parseLockKeys(req.GetResourceId(), req.GetLockKeys())
	if err != nil {
		return nil, err
	}
	held, err := s.locks.QueryLocks(ctx, locks)
	if err != nil {
		return nil, s.toStatus(err)
	}
	resp := &tcv1.QueryLocksResponse{Lockable: true}
	statuses := make(map[string]tcv1.GlobalStatus)
	for _, l := range held {
		if l.XID == req.GetXid() {
			continue
		}
		st, ok := statuses[l.XID]
		if !ok {
			if h, err := s.store.GetGlobal(ctx, l.XID); err == nil {
				st = h.Status
			}
			statuses[l.XID] = st
		}
		resp.Lockable = false
		resp.Holders = append(resp.Holders, &tcv1.LockHolder{
			ResourceId: l.ResourceID, Table: l.Table, Pk: l.PK, Xid: l.XID, BranchId: l.BranchID, HolderStatus: st,
		})
	}
	return resp, nil
}

// ListTransactions implements tcv1.CoordinatorServer.
func (s *Server) ListTransactions(ctx context.Context, req *tcv1.ListTransactionsRequest) (*tcv1.ListTransactionsResponse, error) {
	if req.GetLimit() < 0 || req.GetLimit() > 10000 {
		return nil, status.Errorf(codes.InvalidArgument, "limit must be between 0 and 10000, got %d", req.GetLimit())
	}
	list, err := s.store.ListGlobals(ctx, ListFilter{Statuses: req.GetStatuses(), Limit: int(req.GetLimit())})
	if err != nil {
		return nil, s.toStatus(err)
	}
	resp := &tcv1.ListTransactionsResponse{}
	for _, g := range list {
		t := toProto(g)
		// ListGlobals leaves the branches out; read them, to count them
		// and to list for an application only what it takes part in.
		if full, err := s.store.GetGlobal(ctx, g.XID); err == nil {
			g = full
			t.BranchCount = int32(len(full.Branches))
		}
		if !visible(ctx, g) {
			continue
		}
		resp.Transactions = append(resp.Transactions, t)
	}
	return resp, nil
}

// GetTransaction implements tcv1.CoordinatorServer.
func (s *Server) GetTransaction(ctx context.Context, req *tcv1.GetTransactionRequest) (*tcv1.GetTransactionResponse, error) {
	if err := s.cfg.Limits.checkRequest(req); err != nil {
		return nil, err
	}
	g, err := s.load(ctx, req.GetXid())
	if err != nil {
		return nil, err
	}
	return &tcv1.GetTransactionResponse{Transaction: toProto(g)}, nil
}

// Retry implements tcv1.CoordinatorServer: an operator puts a transaction in
// COMMIT_FAILED or ROLLBACK_FAILED back into phase 2 with its attempt count
// reset. Config.RetryBudget still counts from Begin: once it has passed,
// each retry gets a single attempt.
func (s *Server) Retry(ctx context.Context, req *tcv1.RetryRequest) (*tcv1.RetryResponse, error) {
	if err := s.cfg.Limits.checkRequest(req); err != nil {
		return nil, err
	}
	g, err := s.load(ctx, req.GetXid())
	if err != nil {
		return nil, err
	}
	var to tcv1.GlobalStatus
	switch g.Status {
	case tcv1.GlobalStatus_COMMIT_FAILED:
		to = tcv1.GlobalStatus_COMMIT_RETRYING
	case tcv1.GlobalStatus_ROLLBACK_FAILED:
		to = tcv1.GlobalStatus_ROLLBACK_RETRYING
	default:
		return nil, status.Errorf(codes.FailedPrecondition, "tc: global transaction %s is %s; only COMMIT_FAILED and ROLLBACK_FAILED can be retried", g.XID, g.Status)
	}
	if err := s.store.UpdateGlobal(ctx, g.XID, []tcv1.GlobalStatus{g.Status}, GlobalUpdate{Status: to}); err != nil {
		return nil, s.toStatus(err)
	}
	s.wake()
	return &tcv1.RetryResponse{Status: to}, nil
}

// load validates xid and reads its session with branches, as a gRPC error.
func (s *Server) load(ctx context.Context, xid string) (*GlobalSession, error) {
	if err := gtx.ValidateXID(xid); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	g, err := s.store.GetGlobal(ctx, xid)
	if err != nil {
		return nil, s.toStatus(err)
	}
	return g, nil
}

// toStatus maps an error to the gRPC status the protocol defines for it.
func (s *Server) toStatus(err error) error {
	var (
		se *StatusError
		lc *LockConflictError
	)
	switch {
	case errors.As(err, &lc):
		return failedPrecondition(lc.Error(), tcv1.ReasonLockConflict, map[string]string{
			tcv1.MetaHolderXID:    lc.Lock.XID,
			tcv1.MetaHolderBranch: strconv.FormatInt(lc.Lock.BranchID, 10),
			tcv1.MetaHolderStatus: lc.HolderStatus.String(),
			tcv1.MetaTable:        lc.Lock.Table,
			tcv1.MetaPK:           lc.Lock.PK,
		})
	case errors.As(err, &se):
		return failedPrecondition(se.Error(), tcv1.ReasonStatusConflict, map[string]string{
			tcv1.MetaXID: se.XID, tcv1.MetaStatus: se.Status.String(),
		})
	case errors.Is(err, ErrTimedOut):
		return failedPrecondition("tc: the global transaction timed out; it is being rolled back", tcv1.ReasonTimedOut, nil)
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrInvalidLockKeys):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	default:
		s.log.Error("store", "err", err)
		return status.Errorf(codes.Unavailable, "tc: store failed, try again: %v", err)
	}
}

// failedPrecondition is a FailedPrecondition error with an ErrorInfo of
// reason and metadata md.
func failedPrecondition(msg, reason string, md map[string]string) error {
	st, err := status.New(codes.FailedPrecondition, msg).WithDetails(&errdetails.ErrorInfo{
		Reason: reason, Domain: tcv1.ErrorDomain, Metadata: md,
	})
	if err != nil {
		return status.Error(codes.FailedPrecondition, msg)
	}
	return st.Err()
}

func toProto(g *GlobalSession) *tcv1.Transaction {
	t := &tcv1.Transaction{
		Xid:           g.XID,
		Name:          g.Name,
		Application:   g.Application,
		Status:        g.Status,
		TimeoutMs:     g.Timeout.Milliseconds(),
		BeginUnixMs:   g.BeginTime.UnixMilli(),
		UpdatedUnixMs: g.UpdateTime.UnixMilli(),
		Attempts:      int32(g.Attempts),
		LastError:     g.LastError,
		BranchCount:   int32(len(g.Branches)),
	}
	for _, b := range g.Branches {
		t.Branches = append(t.Branches, &tcv1.Branch{
			BranchId:        b.BranchID,
			Xid:             b.XID,
			BranchType:      b.Type,
			ResourceId:      b.ResourceID,
			LockKeys:        b.LockKeys,
			ApplicationData: b.ApplicationData,
			Status:          branchView(g.Status, b.Status),
			CreatedUnixMs:   b.CreateTime.UnixMilli(),
			AsyncCommit:     b.AsyncCommit,
		})
	}
	return t
}

// branchView is the status a branch shows: phase 2 does not store the
// statuses of branches when it finishes the transaction in one attempt, as
// the final global status says them.
func branchView(g tcv1.GlobalStatus, b tcv1.BranchStatus) tcv1.BranchStatus {
	pending := b.IsPending()
	switch {
	case g == tcv1.GlobalStatus_COMMITTED && pending:
		return tcv1.BranchStatus_PHASE2_COMMITTED
	case (g == tcv1.GlobalStatus_ROLLBACKED || g == tcv1.GlobalStatus_TIMEOUT_ROLLBACKED) && (pending || b == tcv1.BranchStatus_PHASE1_FAILED):
		return tcv1.BranchStatus_PHASE2_ROLLBACKED
	}
	return b
}
