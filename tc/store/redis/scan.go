package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// scanPage is how many members a scan reads from one bucket at a time.
const scanPage = 64

// member is one index entry met by a scan.
type member struct {
	xid   string
	score float64
}

// scan walks one index over all its buckets in score order (descending when
// rev), merging the buckets' pages. Members that others remove while it runs
// may shift a page and be skipped; the next scan finds them.
type scan struct {
	s        *Store
	idx      string
	min, max string
	rev      bool
	heads    [][]redis.Z
	offsets  []int64
	finished []bool
}

func (s *Store) newScan(idx, min, max string, rev bool) *scan {
	return &scan{s: s, idx: idx, min: min, max: max, rev: rev,
		heads: make([][]redis.Z, s.buckets), offsets: make([]int64, s.buckets), finished: make([]bool, s.buckets)}
}

// next returns up to n more members in order; none when the index is done.
func (sc *scan) next(ctx context.Context, n int) ([]member, error) {
	var out []member
	for len(out) < n {
		if err := sc.fill(ctx); err != nil {
			return nil, err
		}
		best := -1
		for i, h := range sc.heads {
			if len(h) > 0 && (best < 0 || sc.before(h[0], sc.heads[best][0])) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		z := sc.heads[best][0]
		sc.heads[best] = sc.heads[best][1:]
		xid, _ := z.Member.(string)
		out = append(out, member{xid: xid, score: z.Score})
	}
	return out, nil
}

func (sc *scan) before(a, b redis.Z) bool {
	am, _ := a.Member.(string)
	bm, _ := b.Member.(string)
	if sc.rev {
		return a.Score > b.Score || a.Score == b.Score && am > bm
	}
	return a.Score < b.Score || a.Score == b.Score && am < bm
}

// fill reads the next page of every bucket whose page is used up.
func (sc *scan) fill(ctx context.Context) error {
	p := sc.s.rdb.Pipeline()
	cmds := make(map[int]*redis.ZSliceCmd)
	for i := range sc.heads {
		if len(sc.heads[i]) > 0 || sc.finished[i] {
			continue
		}
		start, stop := sc.min, sc.max
		if sc.rev {
			start, stop = sc.max, sc.min
		}
		cmds[i] = p.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: sc.s.index(sc.idx, i), Start: start, Stop: stop,
			ByScore: true, Rev: sc.rev, Offset: sc.offsets[i], Count: scanPage})
	}
	if len(cmds) == 0 {
		return nil
	}
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("read index %s: %w", sc.idx, err)
	}
	for i, c := range cmds {
		zs := c.Val()
		sc.heads[i] = zs
		sc.offsets[i] += int64(len(zs))
		if len(zs) < scanPage {
			sc.finished[i] = true
		}
	}
	return nil
}

// maxExamined bounds how many index entries one call reads for limit
// results, so that entries it must pass over (leased elsewhere, stale) never
// make a call unbounded.
func maxExamined(limit int) int { return max(16*limit, 256) }

// repair fixes index idx for members whose session turned out not to belong
// there: it removes them first and then re-adds those whose session, read
// afterwards, does belong, so that a concurrent change of status, which
// re-adds its session after the change, is never lost. Failures are logged:
// the next scan repairs again.
func (s *Store) repair(ctx context.Context, idx string, xids []string) {
	if len(xids) == 0 {
		return
	}
	reads := make([]*redis.SliceCmd, len(xids))
	err := runStages(ctx, s.rdb, s.cluster, func(p redis.Pipeliner) {
		for _, x := range xids {
			p.ZRem(ctx, s.index(idx, s.bucket(x)), x)
		}
	}, func(p redis.Pipeliner) {
		for i, x := range xids {
			reads[i] = p.HMGet(ctx, s.sessionKey(x), "s", "dl", "na", "ut")
		}
	})
	if err != nil {
		s.log.WarnContext(ctx, "redisstore: index repair failed", "index", idx, "err", err)
		return
	}
	p := s.rdb.Pipeline()
	for i, x := range xids {
		v := reads[i].Val()
		if v[0] == nil || category(parseStatus(v[0])) != idx {
			continue
		}
		score := map[string]any{idxDeadline: v[1], idxDue: v[2], idxDone: v[3]}[idx]
		p.ZAdd(ctx, s.index(idx, s.bucket(x)), redis.Z{Score: float64(parseInt(score)), Member: x})
	}
	if _, err := p.Exec(ctx); err != nil {
		s.log.WarnContext(ctx, "redisstore: index repair failed", "index", idx, "err", err)
	}
}

// rescore sets the score of members that are in the right index under a
// stale score, when they are still there.
func (s *Store) rescore(ctx context.Context, idx string, zs []member) {
	if len(zs) == 0 {
		return
	}
	p := s.rdb.Pipeline()
	for _, z := range zs {
		p.ZAddXX(ctx, s.index(idx, s.bucket(z.xid)), redis.Z{Score: z.score, Member: z.xid})
	}
	if _, err := p.Exec(ctx); err != nil {
		s.log.WarnContext(ctx, "redisstore: index rescore failed", "index", idx, "err", err)
	}
}

// ListGlobals implements tc.Store: sessions without branches, newest first.
// With a status filter it reads sessions until it has Limit matches, so it
// may read every session; it is meant for operators.
func (s *Store) ListGlobals(ctx context.Context, f tc.ListFilter) ([]*tc.GlobalSession, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("redisstore: list global sessions: %w: negative limit %d", ErrInvalidArgument, f.Limit)
	}
	limit := f.Limit
	if limit == 0 {
		limit = defaultListLimit
	}
	sc := s.newScan(idxList, "-inf", "+inf", true)
	var out []*tc.GlobalSession
	for len(out) < limit {
		batch, err := sc.next(ctx, max(limit-len(out), scanPage))
		if err != nil {
			return nil, fmt.Errorf("redisstore: list global sessions: %w", err)
		}
		if len(batch) == 0 {
			break
		}
		p := s.rdb.Pipeline()
		reads := make([]*redis.MapStringStringCmd, len(batch))
		for i, m := range batch {
			reads[i] = p.HGetAll(ctx, s.sessionKey(m.xid))
		}
		if _, err := p.Exec(ctx); err != nil {
			return nil, fmt.Errorf("redisstore: list global sessions: %w", err)
		}
		for i, m := range batch {
			fields := reads[i].Val()
			if len(fields) == 0 {
				continue
			}
			g, err := decodeSession(m.xid, fields)
			if err != nil {
				return nil, fmt.Errorf("redisstore: list global sessions: %w", err)
			}
			if len(f.Statuses) > 0 && !containsStatus(f.Statuses, g.Status) {
				continue
			}
			out = append(out, g)
			if len(out) == limit {
				break
			}
		}
	}
	return out, nil
}

func containsStatus(sts []tcv1.GlobalStatus, st tcv1.GlobalStatus) bool {
	for _, x := range sts {
		if x == st {
			return true
		}
	}
	return false
}

// ClaimDue implements tc.Store. It finds only sessions in phase-2 statuses
// (tcv1.Phase2Statuses()), the ones the due index holds; each claim is one
// script on the session's slot, so two owners never both take a session.
func (s *Store) ClaimDue(ctx context.Context, owner string, statuses []tcv1.GlobalStatus, now time.Time, lease time.Duration, limit int) ([]*tc.GlobalSession, error) {
	switch {
	case owner == "":
		return nil, fmt.Errorf("redisstore: claim due sessions: %w: empty owner", ErrInvalidArgument)
	case lease <= 0:
		return nil, fmt.Errorf("redisstore: claim due sessions: %w: lease %v is not positive", ErrInvalidArgument, lease)
	case limit <= 0:
		return nil, fmt.Errorf("redisstore: claim due sessions: %w: limit %d is not positive", ErrInvalidArgument, limit)
	}
	nowUs := micros(now)
	args := []any{owner, nowUs, micros(now.Add(lease))}
	for _, st := range statuses {
		args = append(args, statusArg(st))
	}
	sc := s.newScan(idxDue, "-inf", strconv.FormatInt(nowUs, 10), false)
	var (
		out      []*tc.GlobalSession
		stale    []string
		rescored []member
	)
	for examined := 0; len(out) < limit && examined < maxExamined(limit); {
		batch, err := sc.next(ctx, limit-len(out))
		if err != nil {
			return nil, fmt.Errorf("redisstore: claim due sessions for %s: %w", owner, err)
		}
		if len(batch) == 0 {
			break
		}
		examined += len(batch)
		p := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(batch))
		for i, m := range batch {
			cmds[i] = claimScript.Eval(ctx, p, s.keys(m.xid), args...)
		}
		if _, err := p.Exec(ctx); err != nil {
			return nil, fmt.Errorf("redisstore: claim due sessions for %s: %w", owner, err)
		}
		for i, m := range batch {
			res, _ := cmds[i].Slice()
			switch code, _ := res[0].(int64); code {
			case 1:
				g, err := decodeSessionReply(m.xid, res[1], res[2])
				if err != nil {
					return nil, fmt.Errorf("redisstore: claim due sessions for %s: %w", owner, err)
				}
				out = append(out, g)
			case 0:
				st, next := parseStatus(res[1]), parseInt(res[2])
				switch {
				case category(st) != idxDue:
					stale = append(stale, m.xid)
				case next > nowUs:
					rescored = append(rescored, member{xid: m.xid, score: float64(next)})
				}
			case -1:
				stale = append(stale, m.xid)
			}
		}
	}
	s.repair(ctx, idxDue, stale)
	s.rescore(ctx, idxDue, rescored)
	return out, nil
}

// CountPhase2 implements tc.BacklogCounter: the size of the due index,
// which holds every session in phase 2 (and, until a scan repairs them, the
// stale entries a crash left).
func (s *Store) CountPhase2(ctx context.Context) (int, error) {
	p := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, s.buckets)
	for b := range s.buckets {
		cmds[b] = p.ZCard(ctx, s.index(idxDue, b))
	}
	if _, err := p.Exec(ctx); err != nil {
		return 0, fmt.Errorf("redisstore: count phase-2 sessions: %w", err)
	}
	n := 0
	for _, c := range cmds {
		n += int(c.Val())
	}
	return n, nil
}

// ListTimedOut implements tc.Store, earliest deadline first.
func (s *Store) ListTimedOut(ctx context.Context, now time.Time, limit int) ([]*tc.GlobalSession, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("redisstore: list timed-out sessions: %w: limit %d is not positive", ErrInvalidArgument, limit)
	}
	nowUs := micros(now)
	sc := s.newScan(idxDeadline, "-inf", "("+strconv.FormatInt(nowUs, 10), false)
	var (
		out      []*tc.GlobalSession
		stale    []string
		rescored []member
	)
	for examined := 0; len(out) < limit && examined < maxExamined(limit); {
		batch, err := sc.next(ctx, limit-len(out))
		if err != nil {
			return nil, fmt.Errorf("redisstore: list timed-out sessions: %w", err)
		}
		if len(batch) == 0 {
			break
		}
		examined += len(batch)
		p := s.rdb.Pipeline()
		reads := make([]*redis.MapStringStringCmd, len(batch))
		for i, m := range batch {
			reads[i] = p.HGetAll(ctx, s.sessionKey(m.xid))
		}
		if _, err := p.Exec(ctx); err != nil {
			return nil, fmt.Errorf("redisstore: list timed-out sessions: %w", err)
		}
		for i, m := range batch {
			fields := reads[i].Val()
			if len(fields) == 0 {
				stale = append(stale, m.xid)
				continue
			}
			g, err := decodeSession(m.xid, fields)
			if err != nil {
				return nil, fmt.Errorf("redisstore: list timed-out sessions: %w", err)
			}
			deadline, _ := strconv.ParseInt(fields["dl"], 10, 64)
			switch {
			case g.Status != tcv1.GlobalStatus_BEGIN:
				stale = append(stale, m.xid)
			case deadline >= nowUs:
				rescored = append(rescored, member{xid: m.xid, score: float64(deadline)})
			default:
				out = append(out, g)
			}
		}
	}
	s.repair(ctx, idxDeadline, stale)
	s.rescore(ctx, idxDeadline, rescored)
	return out, nil
}

// finalArgs are the statuses DeleteFinished deletes, as script arguments.
var finalArgs = func() []any {
	var args []any
	for _, st := range tcv1.DoneStatuses() {
		args = append(args, statusArg(st))
	}
	return args
}()

// DeleteFinished implements tc.Store. Each session goes in one script on its
// slot; its index entries are removed afterwards.
func (s *Store) DeleteFinished(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("redisstore: delete finished sessions: %w: limit %d is not positive", ErrInvalidArgument, limit)
	}
	beforeUs := micros(before)
	args := append([]any{beforeUs}, finalArgs...)
	sc := s.newScan(idxDone, "-inf", "("+strconv.FormatInt(beforeUs, 10), false)
	var (
		deleted  int
		stale    []string
		rescored []member
	)
	for examined := 0; deleted < limit && examined < maxExamined(limit); {
		batch, err := sc.next(ctx, limit-deleted)
		if err != nil {
			return deleted, fmt.Errorf("redisstore: delete finished sessions: %w", err)
		}
		if len(batch) == 0 {
			break
		}
		examined += len(batch)
		p := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(batch))
		for i, m := range batch {
			cmds[i] = deleteScript.Eval(ctx, p, s.keys(m.xid), args...)
		}
		if _, err := p.Exec(ctx); err != nil {
			return deleted, fmt.Errorf("redisstore: delete finished sessions: %w", err)
		}
		cleanup := s.rdb.Pipeline()
		for i, m := range batch {
			res, _ := cmds[i].Slice()
			switch code, _ := res[0].(int64); code {
			case 1:
				deleted++
				b := s.bucket(m.xid)
				for _, idx := range []string{idxList, idxDeadline, idxDue, idxDone} {
					cleanup.ZRem(ctx, s.index(idx, b), m.xid)
				}
			case 0:
				if category(parseStatus(res[1])) == idxDone {
					rescored = append(rescored, member{xid: m.xid, score: float64(parseInt(res[2]))})
				} else {
					stale = append(stale, m.xid)
				}
			case -1:
				cleanup.ZRem(ctx, s.index(idxDone, s.bucket(m.xid)), m.xid)
			}
		}
		if _, err := cleanup.Exec(ctx); err != nil {
			s.log.WarnContext(ctx, "redisstore: removing deleted sessions from the indexes failed; scans will repair it", "err", err)
		}
	}
	s.repair(ctx, idxDone, stale)
	s.rescore(ctx, idxDone, rescored)
	return deleted, nil
}
