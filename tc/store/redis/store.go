package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// ErrDuplicateBranch is returned by AddBranch for a branch ID the
// transaction already has; nothing is changed.
var ErrDuplicateBranch = errors.New("redisstore: branch id already exists")

// ErrCorrupt is returned when a stored session cannot be decoded; the key
// was written by something other than this package.
var ErrCorrupt = errors.New("redisstore: stored session is corrupt")

// defaultBuckets is Config.Buckets when zero.
const defaultBuckets = 8

// defaultListLimit is ListGlobals' limit when the filter gives none.
const defaultListLimit = 100

// Index names. Each index is a sorted set of XIDs per bucket.
const (
	idxList     = "list"     // every session, by begin time
	idxDeadline = "deadline" // sessions in BEGIN, by deadline
	idxDue      = "due"      // sessions in a phase-2 status, by next attempt
	idxDone     = "done"     // finished sessions, by update time
)

// Store is a tc.Store (and tc.EmptyFinisher, tc.Decider) on Redis. See the package
// documentation for the key layout and how the indexes stay consistent with
// the sessions on a Redis Cluster.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	buckets int
	cluster bool
	log     *slog.Logger
}

var (
	_ tc.Store          = (*Store)(nil)
	_ tc.EmptyFinisher  = (*Store)(nil)
	_ tc.Decider        = (*Store)(nil)
	_ tc.BacklogCounter = (*Store)(nil)
)

// NewStore returns a Store that keeps sessions in rdb. It does not own rdb:
// closing rdb is the caller's job.
func NewStore(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil redis client", ErrInvalidArgument)
	}
	p, err := cfg.prefix()
	if err != nil {
		return nil, err
	}
	n := cfg.Buckets
	switch {
	case n < 0 || n > 1024:
		return nil, fmt.Errorf("%w: Buckets is %d, want 0 (for %d) to 1024", ErrInvalidArgument, n, defaultBuckets)
	case n == 0:
		n = defaultBuckets
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	_, cluster := rdb.(*redis.ClusterClient)
	return &Store{rdb: rdb, prefix: p, buckets: n, cluster: cluster, log: log}, nil
}

func (s *Store) sessionKey(xid string) string  { return s.prefix + "{" + xid + "}:g" }
func (s *Store) branchesKey(xid string) string { return s.prefix + "{" + xid + "}:b" }
func (s *Store) keys(xid string) []string {
	return []string{s.sessionKey(xid), s.branchesKey(xid)}
}

// bucket returns the index bucket of xid.
func (s *Store) bucket(xid string) int {
	return int(crc32.ChecksumIEEE([]byte(xid)) % uint32(s.buckets))
}

// index names one bucket of an index; the bucket number is the hash tag, so
// each bucket is one slot of its own.
func (s *Store) index(idx string, bucket int) string {
	return s.prefix + "{ix" + strconv.Itoa(bucket) + "}:" + idx
}

// category returns the index a session in status st belongs to besides the
// list, or "" for none (COMMIT_FAILED and ROLLBACK_FAILED wait for an
// operator).
func category(st tcv1.GlobalStatus) string {
	switch {
	case st == tcv1.GlobalStatus_BEGIN:
		return idxDeadline
	case st.IsPhase2():
		return idxDue
	case st.IsDone():
		return idxDone
	}
	return ""
}

// micros returns t in Unix microseconds; the zero time is 0.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromMicros inverts micros.
func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us)
}

func statusArg(st tcv1.GlobalStatus) string { return strconv.Itoa(int(st)) }

func checkXID(xid string) error {
	if err := gtx.ValidateXID(xid); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return nil
}

// runStages executes stages in order. On one Redis server they go out as
// one pipeline, which the server runs in order; on a cluster each stage's
// keys may live on another node, so each stage waits for the one before.
func runStages(ctx context.Context, rdb redis.UniversalClient, cluster bool, stages ...func(p redis.Pipeliner)) error {
	if !cluster {
		p := rdb.Pipeline()
		for _, st := range stages {
			st(p)
		}
		_, err := p.Exec(ctx)
		return err
	}
	for _, st := range stages {
		p := rdb.Pipeline()
		st(p)
		if _, err := p.Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// settle moves xid, after a change of its status, from index from to index
// to with score. A failure is logged, not returned: the change itself is
// done, and the readers of the indexes repair what settle left.
func (s *Store) settle(ctx context.Context, xid, from, to string, score int64) {
	b := s.bucket(xid)
	p := s.rdb.Pipeline()
	if to != "" {
		p.ZAdd(ctx, s.index(to, b), redis.Z{Score: float64(score), Member: xid})
	}
	if from != "" && from != to {
		p.ZRem(ctx, s.index(from, b), xid)
	}
	if _, err := p.Exec(ctx); err != nil {
		s.log.WarnContext(ctx, "redisstore: index update failed; scans will repair it", "xid", xid, "err", err)
	}
}

// CreateGlobal implements tc.Store. It stores g in status BEGIN, whatever
// g.Status is; a zero BeginTime or UpdateTime is stored as the current time.
func (s *Store) CreateGlobal(ctx context.Context, g *tc.GlobalSession) error {
	if err := checkXID(g.XID); err != nil {
		return fmt.Errorf("redisstore: create global session: %w", err)
	}
	if g.Timeout < 0 {
		return fmt.Errorf("redisstore: create global session %s: %w: negative timeout %v", g.XID, ErrInvalidArgument, g.Timeout)
	}
	now := time.Now()
	begin, updated := g.BeginTime, g.UpdateTime
	if begin.IsZero() {
		begin = now
	}
	if updated.IsZero() {
		updated = now
	}
	deadline := micros(begin) + g.Timeout.Milliseconds()*1000
	b := s.bucket(g.XID)
	var cmd *redis.Cmd
	err := runStages(ctx, s.rdb, s.cluster, func(p redis.Pipeliner) {
		p.ZAddNX(ctx, s.index(idxList, b), redis.Z{Score: float64(micros(begin)), Member: g.XID})
		p.ZAddLT(ctx, s.index(idxDeadline, b), redis.Z{Score: float64(deadline), Member: g.XID})
	}, func(p redis.Pipeliner) {
		cmd = createScript.Eval(ctx, p, s.keys(g.XID),
			g.Name, g.Application, statusArg(tcv1.GlobalStatus_BEGIN), g.Timeout.Milliseconds(), micros(begin),
			deadline, micros(updated), g.Attempts, micros(g.NextAttempt), g.LastError, g.Owner, micros(g.LeaseUntil))
	})
	if err != nil {
		return fmt.Errorf("redisstore: create global session %s: %w", g.XID, err)
	}
	if n, _ := cmd.Int64(); n == 0 {
		return fmt.Errorf("redisstore: create global session %s: %w", g.XID, tc.ErrDuplicateXID)
	}
	return nil
}

// GetGlobal implements tc.Store.
func (s *Store) GetGlobal(ctx context.Context, xid string) (*tc.GlobalSession, error) {
	res, err := getScript.Run(ctx, s.rdb, s.keys(xid)).Slice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: get global session %s: %w", xid, err)
	}
	g, err := decodeSessionReply(xid, res[0], res[1])
	if err != nil {
		return nil, fmt.Errorf("redisstore: get global session %s: %w", xid, err)
	}
	return g, nil
}

// UpdateGlobal implements tc.Store.
func (s *Store) UpdateGlobal(ctx context.Context, xid string, from []tcv1.GlobalStatus, u tc.GlobalUpdate) error {
	return s.updateGlobal(ctx, xid, from, -1, u)
}

// Decide implements tc.Decider: UpdateGlobal from BEGIN, in the same script,
// also requiring the branch count the session hash keeps.
func (s *Store) Decide(ctx context.Context, xid string, branches int, u tc.GlobalUpdate) error {
	if branches < 0 {
		return fmt.Errorf("redisstore: decide %s: %w: negative branch count %d", xid, ErrInvalidArgument, branches)
	}
	return s.updateGlobal(ctx, xid, []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN}, branches, u)
}

// updateGlobal is UpdateGlobal that, when branches is not -1, also
// requires xid to count exactly that many branches.
func (s *Store) updateGlobal(ctx context.Context, xid string, from []tcv1.GlobalStatus, branches int, u tc.GlobalUpdate) error {
	ut := micros(time.Now())
	to := category(u.Status)
	b := s.bucket(xid)
	args := []any{statusArg(u.Status), u.Attempts, micros(u.NextAttempt), u.LastError, u.Owner, micros(u.LeaseUntil), ut, branches}
	for _, st := range from {
		args = append(args, statusArg(st))
	}
	var cmd *redis.Cmd
	err := runStages(ctx, s.rdb, s.cluster, func(p redis.Pipeliner) {
		// Enter the new index first, so that a crash after the change
		// never leaves the session out of the index that finds it.
		switch to {
		case idxDue:
			p.ZAdd(ctx, s.index(idxDue, b), redis.Z{Score: float64(micros(u.NextAttempt)), Member: xid})
		case idxDone:
			p.ZAdd(ctx, s.index(idxDone, b), redis.Z{Score: float64(ut), Member: xid})
		}
	}, func(p redis.Pipeliner) {
		cmd = updateScript.Eval(ctx, p, s.keys(xid), args...)
	})
	if err != nil {
		return fmt.Errorf("redisstore: update global session %s to %v: %w", xid, u.Status, err)
	}
	res, err := cmd.Slice()
	if err != nil {
		return fmt.Errorf("redisstore: update global session %s to %v: %w", xid, u.Status, err)
	}
	switch code, _ := res[0].(int64); code {
	case -1:
		return fmt.Errorf("redisstore: update global session %s to %v: %w", xid, u.Status, tc.ErrNotFound)
	case 0:
		return &tc.StatusError{XID: xid, Status: parseStatus(res[1])}
	case 2:
		return fmt.Errorf("redisstore: update global session %s to %v: %w", xid, u.Status, tc.ErrBranchesChanged)
	}
	score := micros(u.NextAttempt)
	switch to {
	case idxDone:
		score = ut
	case idxDeadline:
		score = parseInt(res[2])
	}
	s.settle(ctx, xid, category(parseStatus(res[1])), to, score)
	return nil
}

// FinishEmpty implements tc.EmptyFinisher.
func (s *Store) FinishEmpty(ctx context.Context, xid string, status tcv1.GlobalStatus, now time.Time) (bool, error) {
	ut := micros(time.Now())
	to := category(status)
	var cmd *redis.Cmd
	err := runStages(ctx, s.rdb, s.cluster, func(p redis.Pipeliner) {
		if to == idxDone {
			p.ZAdd(ctx, s.index(idxDone, s.bucket(xid)), redis.Z{Score: float64(ut), Member: xid})
		}
	}, func(p redis.Pipeliner) {
		cmd = finishEmptyScript.Eval(ctx, p, s.keys(xid), statusArg(status), micros(now), ut, statusArg(tcv1.GlobalStatus_BEGIN))
	})
	if err != nil {
		return false, fmt.Errorf("redisstore: finish empty session %s as %v: %w", xid, status, err)
	}
	if n, _ := cmd.Int64(); n == 0 {
		return false, nil
	}
	s.settle(ctx, xid, idxDeadline, to, ut)
	return true, nil
}

// branchMeta is the immutable part of a stored branch.
type branchMeta struct {
	Type        int32  `json:"t"`
	ResourceID  string `json:"r"`
	LockKeys    string `json:"k"`
	CreateTime  int64  `json:"c"`
	AsyncCommit bool   `json:"a,omitempty"`
}

// AddBranch implements tc.Store. A zero CreateTime is stored as the current
// time.
func (s *Store) AddBranch(ctx context.Context, b *tc.BranchSession) error {
	if err := checkXID(b.XID); err != nil {
		return fmt.Errorf("redisstore: add branch: %w", err)
	}
	created := b.CreateTime
	if created.IsZero() {
		created = time.Now()
	}
	meta, err := json.Marshal(branchMeta{Type: int32(b.Type), ResourceID: b.ResourceID, LockKeys: b.LockKeys,
		CreateTime: micros(created), AsyncCommit: b.AsyncCommit})
	if err != nil {
		return fmt.Errorf("redisstore: add branch %d to %s: %w", b.BranchID, b.XID, err)
	}
	res, err := addBranchScript.Run(ctx, s.rdb, s.keys(b.XID), b.BranchID, meta, int(b.Status),
		b.ApplicationData, statusArg(tcv1.GlobalStatus_BEGIN), micros(created)).Slice()
	if err != nil {
		return fmt.Errorf("redisstore: add branch %d to %s: %w", b.BranchID, b.XID, err)
	}
	switch code, _ := res[0].(int64); code {
	case -1:
		return fmt.Errorf("redisstore: add branch %d to %s: %w", b.BranchID, b.XID, tc.ErrNotFound)
	case -2:
		return fmt.Errorf("redisstore: add branch %d to %s: %w", b.BranchID, b.XID, ErrDuplicateBranch)
	case -3:
		return fmt.Errorf("redisstore: add branch %d to %s: %w", b.BranchID, b.XID, tc.ErrTimedOut)
	case 0:
		return &tc.StatusError{XID: b.XID, Status: parseStatus(res[1])}
	}
	return nil
}

// UpdateBranch implements tc.Store.
func (s *Store) UpdateBranch(ctx context.Context, xid string, branchID int64, status tcv1.BranchStatus, data []byte) error {
	has := "0"
	if data != nil {
		has = "1"
	}
	n, err := updateBranchScript.Run(ctx, s.rdb, s.keys(xid), branchID, int(status), has, data).Int64()
	if err != nil {
		return fmt.Errorf("redisstore: update branch %d of %s: %w", branchID, xid, err)
	}
	if n == 0 {
		return fmt.Errorf("redisstore: update branch %d of %s: %w", branchID, xid, tc.ErrNotFound)
	}
	return nil
}

// Ping implements tc.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: ping: %w", err)
	}
	return nil
}

// fieldMap turns a flat field-value reply into a map.
func fieldMap(v any) map[string]string {
	list, _ := v.([]any)
	m := make(map[string]string, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		k, _ := list[i].(string)
		val, _ := list[i+1].(string)
		m[k] = val
	}
	return m
}

func parseInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

func parseStatus(v any) tcv1.GlobalStatus { return tcv1.GlobalStatus(parseInt(v)) }

// decodeSessionReply decodes a session and its branches from HGETALL
// replies; an empty session reply is tc.ErrNotFound.
func decodeSessionReply(xid string, session, branches any) (*tc.GlobalSession, error) {
	f := fieldMap(session)
	if len(f) == 0 {
		return nil, tc.ErrNotFound
	}
	g, err := decodeSession(xid, f)
	if err != nil {
		return nil, err
	}
	if g.Branches, err = decodeBranches(xid, fieldMap(branches)); err != nil {
		return nil, err
	}
	return g, nil
}

// decodeSession decodes the fields of a session hash.
func decodeSession(xid string, f map[string]string) (*tc.GlobalSession, error) {
	var bad []string
	num := func(k string) int64 {
		n, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			bad = append(bad, k)
		}
		return n
	}
	g := &tc.GlobalSession{
		XID:         xid,
		Name:        f["n"],
		Application: f["a"],
		Status:      tcv1.GlobalStatus(num("s")),
		Timeout:     time.Duration(num("t")) * time.Millisecond,
		BeginTime:   fromMicros(num("bt")),
		UpdateTime:  fromMicros(num("ut")),
		Attempts:    int(num("at")),
		NextAttempt: fromMicros(num("na")),
		LastError:   f["le"],
		Owner:       f["o"],
		LeaseUntil:  fromMicros(num("lu")),
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: %s has bad fields %s", ErrCorrupt, xid, strings.Join(bad, ", "))
	}
	return g, nil
}

// decodeBranches decodes a branches hash, oldest branch first.
func decodeBranches(xid string, f map[string]string) ([]*tc.BranchSession, error) {
	var out []*tc.BranchSession
	for k, v := range f {
		if strings.Contains(k, ":") {
			continue
		}
		id, err := strconv.ParseInt(k, 10, 64)
		var m branchMeta
		if err == nil {
			err = json.Unmarshal([]byte(v), &m)
		}
		st, serr := strconv.ParseInt(f[k+":s"], 10, 32)
		if err != nil || serr != nil {
			return nil, fmt.Errorf("%w: %s branch %s", ErrCorrupt, xid, k)
		}
		out = append(out, &tc.BranchSession{
			XID:             xid,
			BranchID:        id,
			Type:            tcv1.BranchType(m.Type),
			ResourceID:      m.ResourceID,
			LockKeys:        m.LockKeys,
			ApplicationData: []byte(f[k+":d"]),
			Status:          tcv1.BranchStatus(st),
			CreateTime:      fromMicros(m.CreateTime),
			AsyncCommit:     m.AsyncCommit,
		})
	}
	slices.SortFunc(out, func(a, b *tc.BranchSession) int {
		if c := a.CreateTime.Compare(b.CreateTime); c != 0 {
			return c
		}
		switch {
		case a.BranchID < b.BranchID:
			return -1
		case a.BranchID > b.BranchID:
			return 1
		}
		return 0
	})
	return out, nil
}
