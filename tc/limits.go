package tc

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// Bounds on the strings of the protocol, the same whatever the store: every
// store keeps at least this much, so a store never answers bad input
// differently from another.
const (
	// MaxNameLen bounds transaction names, applications, resource IDs and
	// client IDs, in bytes.
	MaxNameLen = maxNameLen
	// MaxTableLen bounds the table of a lock key, in bytes.
	MaxTableLen = 128
	// MaxPKLen bounds the primary key of a lock key, in bytes.
	MaxPKLen = 255
	// MaxIdempotencyKeyLen bounds RegisterBranchRequest.idempotency_key.
	MaxIdempotencyKeyLen = 128
	// MaxMessageLen bounds a rollback reason, in bytes. A phase-2 result's
	// message is not refused for its length: it is cut to this length,
	// UTF-8-safely, before it is logged or kept in LastError.
	MaxMessageLen = 4096
	// maxLogValue bounds a client's string in a log line.
	maxLogValue = 256
)

// Limits bounds what callers may ask of the coordinator. A call that
// exceeds one is refused with InvalidArgument (what one call carries) or
// ResourceExhausted (what a transaction or application holds), changing
// nothing. Start from DefaultLimits.
type Limits struct {
	// BranchTypes are the branch types RegisterBranch and Attach accept:
	// the modes this deployment runs. A branch of any other type is
	// refused, since no resource manager could run its phase 2.
	BranchTypes []tcv1.BranchType
	// MaxLockKeysPerBranch caps the distinct lock keys of one
	// RegisterBranch.
	MaxLockKeysPerBranch int
	// MaxLockKeysLen caps the length in bytes of one RegisterBranch's
	// lock_keys string, checked before it is parsed.
	MaxLockKeysLen int
	// MaxLockKeysPerTransaction caps the lock keys the branches of one
	// transaction take through this replica.
	MaxLockKeysPerTransaction int
	// MaxLockKeysPerApplication caps the lock keys one authenticated
	// application (all unauthenticated callers count as one) takes through
	// this replica in transactions that may still be in BEGIN: a key
	// counts from its registration until its transaction ends on this
	// replica, or MaxTimeout after the registration at the latest.
	MaxLockKeysPerApplication int
	// MaxApplicationData caps a branch's application data, in bytes.
	MaxApplicationData int
	// MaxHelloResources caps the resources one Attach stream announces.
	MaxHelloResources int
	// HelloTimeout is how long an Attach stream may take to send its Hello
	// before the coordinator closes it.
	HelloTimeout time.Duration
}

// DefaultLimits returns the limits of DefaultConfig: generous for real
// workloads, small enough that one caller cannot exhaust a coordinator.
func DefaultLimits() Limits {
	return Limits{
		// Every mode gtx has (rm/at, modes/tcc, modes/saga, rm/xa,
		// modes/msg); a new mode adds its type here.
		BranchTypes:               []tcv1.BranchType{tcv1.BranchType_AT, tcv1.BranchType_TCC, tcv1.BranchType_SAGA, tcv1.BranchType_XA, tcv1.BranchType_MSG},
		MaxLockKeysPerBranch:      10_000,
		MaxLockKeysLen:            1 << 20,
		MaxLockKeysPerTransaction: 100_000,
		MaxLockKeysPerApplication: 1_000_000,
		MaxApplicationData:        1 << 20,
		MaxHelloResources:         1024,
		HelloTimeout:              10 * time.Second,
	}
}

// validate checks l, for Config.Validate; a value out of range is a
// *FieldError naming the Limits field.
func (l *Limits) validate() error {
	bad := func(field string, value any, rule string) error {
		return &FieldError{Field: "Limits." + field, Value: value, Rule: rule}
	}
	cmp := func(field string, value any, other string, otherValue any) error {
		return &FieldError{Field: "Limits." + field, Value: value, Rule: "must not be below", Other: "Limits." + other, OtherValue: otherValue}
	}
	for _, t := range l.BranchTypes {
		if t == tcv1.BranchType_BRANCH_TYPE_UNSPECIFIED || tcv1.BranchType_name[int32(t)] == "" {
			return bad("BranchTypes", l.BranchTypes, fmt.Sprintf("holds %d, which is not a branch type of the protocol", t))
		}
	}
	switch {
	case len(l.BranchTypes) == 0:
		return bad("BranchTypes", "[]", "is empty; list the modes you run, as DefaultLimits does")
	case l.MaxLockKeysPerBranch <= 0:
		return bad("MaxLockKeysPerBranch", l.MaxLockKeysPerBranch, "must be positive")
	case l.MaxLockKeysLen <= 0:
		return bad("MaxLockKeysLen", l.MaxLockKeysLen, "must be positive")
	case l.MaxLockKeysPerTransaction < l.MaxLockKeysPerBranch:
		return cmp("MaxLockKeysPerTransaction", l.MaxLockKeysPerTransaction, "MaxLockKeysPerBranch", l.MaxLockKeysPerBranch)
	case l.MaxLockKeysPerApplication < l.MaxLockKeysPerTransaction:
		return cmp("MaxLockKeysPerApplication", l.MaxLockKeysPerApplication, "MaxLockKeysPerTransaction", l.MaxLockKeysPerTransaction)
	case l.MaxApplicationData <= 0:
		return bad("MaxApplicationData", l.MaxApplicationData, "must be positive")
	case l.MaxHelloResources <= 0:
		return bad("MaxHelloResources", l.MaxHelloResources, "must be positive")
	case l.HelloTimeout <= 0:
		return bad("HelloTimeout", l.HelloTimeout, "must be positive")
	}
	return nil
}

// invalid is an InvalidArgument status.
func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "tc: "+format, args...)
}

// checkName refuses a name, application, resource or client ID longer than
// MaxNameLen, or holding a control character (NUL and newlines included)
// or invalid UTF-8. field names the request field; empty values pass
// unless required.
func checkName(field, v string, required bool) error {
	switch {
	case v == "" && required:
		return invalid("%s is empty", field)
	case len(v) > MaxNameLen:
		return invalid("%s is %d bytes long, at most %d allowed", field, len(v), MaxNameLen)
	}
	return checkPrintable(field, v)
}

// checkPrintable refuses invalid UTF-8 and control characters.
func checkPrintable(field, v string) error {
	for i, r := range v {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return invalid("%s holds %q at byte %d; control characters and invalid UTF-8 are not allowed", field, r, i)
		}
	}
	return nil
}

// checkXID refuses a malformed XID.
func checkXID(xid string) error {
	if err := gtx.ValidateXID(xid); err != nil {
		return invalid("%v", err)
	}
	return nil
}

// checkBranchType refuses types outside l.BranchTypes.
func (l *Limits) checkBranchType(field string, t tcv1.BranchType) error {
	if slices.Contains(l.BranchTypes, t) {
		return nil
	}
	return invalid("%s %v is not served by this coordinator; it accepts %v", field, t, l.BranchTypes)
}

// parseLockKeys parses and bounds a registration's lock keys.
func (l *Limits) parseLockKeys(resourceID, keys string) ([]RowLock, error) {
	if len(keys) > l.MaxLockKeysLen {
		return nil, invalid("lock_keys is %d bytes long, at most %d allowed; register the rows in several branches or raise Limits.MaxLockKeysLen", len(keys), l.MaxLockKeysLen)
	}
	locks, err := ParseLockKeys(resourceID, keys)
	if err != nil {
		return nil, invalid("%v", err)
	}
	if len(locks) > l.MaxLockKeysPerBranch {
		return nil, invalid("lock_keys holds %d keys, at most %d allowed in one branch (Limits.MaxLockKeysPerBranch)", len(locks), l.MaxLockKeysPerBranch)
	}
	for _, k := range locks {
		if len(k.Table) > MaxTableLen || len(k.PK) > MaxPKLen {
			return nil, invalid("lock key %.40q:%.40q is too long: a table may have %d bytes, a primary key %d", k.Table, k.PK, MaxTableLen, MaxPKLen)
		}
		if err := checkPrintable("lock key table", k.Table); err != nil {
			return nil, err
		}
		if err := checkPrintable("lock key primary key", k.PK); err != nil {
			return nil, err
		}
	}
	return locks, nil
}

// checkRequest bounds the fields of a unary request before its handler
// looks at it.
func (l *Limits) checkRequest(req any) error {
	switch r := req.(type) {
	case *tcv1.BeginRequest:
		return firstErr(checkName("name", r.GetName(), false), checkName("application", r.GetApplication(), false), checkName("client_id", r.GetClientId(), false))
	case *tcv1.CommitRequest:
		return checkXID(r.GetXid())
	case *tcv1.RollbackRequest:
		if len(r.GetReason()) > MaxMessageLen {
			return invalid("reason is %d bytes long, at most %d allowed", len(r.GetReason()), MaxMessageLen)
		}
		return checkXID(r.GetXid())
	case *tcv1.GetStatusRequest:
		return checkXID(r.GetXid())
	case *tcv1.ReportRequest:
		return checkXID(r.GetXid())
	case *tcv1.RegisterBranchRequest:
		return firstErr(checkXID(r.GetXid()), l.checkBranchType("branch_type", r.GetBranchType()),
			checkName("resource_id", r.GetResourceId(), true), l.checkData(r.GetApplicationData()),
			checkIdempotencyKey(r.GetIdempotencyKey()))
	case *tcv1.ReportBranchRequest:
		if r.GetBranchId() <= 0 {
			return invalid("branch_id %d is not positive", r.GetBranchId())
		}
		return firstErr(checkXID(r.GetXid()), l.checkData(r.GetApplicationData()))
	case *tcv1.QueryLocksRequest:
		if r.GetXid() != "" {
			if err := checkXID(r.GetXid()); err != nil {
				return err
			}
		}
		return checkName("resource_id", r.GetResourceId(), true)
	case *tcv1.GetTransactionRequest:
		return checkXID(r.GetXid())
	case *tcv1.RetryRequest:
		return checkXID(r.GetXid())
	}
	return nil
}

func (l *Limits) checkData(d []byte) error {
	if len(d) > l.MaxApplicationData {
		return invalid("application_data is %d bytes long, at most %d allowed (Limits.MaxApplicationData)", len(d), l.MaxApplicationData)
	}
	return nil
}

func checkIdempotencyKey(k string) error {
	if len(k) > MaxIdempotencyKeyLen {
		return invalid("idempotency_key is %d bytes long, at most %d allowed", len(k), MaxIdempotencyKeyLen)
	}
	return checkPrintable("idempotency_key", k)
}

// checkHello bounds an Attach stream's Hello.
func (l *Limits) checkHello(h *tcv1.Hello) error {
	if h == nil {
		return invalid("the first message of Attach must be hello")
	}
	if len(h.GetResources()) > l.MaxHelloResources {
		return invalid("hello announces %d resources, at most %d allowed (Limits.MaxHelloResources)", len(h.GetResources()), l.MaxHelloResources)
	}
	if err := firstErr(checkName("hello application", h.GetApplication(), false), checkName("hello client_id", h.GetClientId(), false)); err != nil {
		return err
	}
	for _, r := range h.GetResources() {
		if err := l.checkResource(r); err != nil {
			return err
		}
	}
	return nil
}

// checkResource bounds a resource an Attach stream announces.
func (l *Limits) checkResource(r *tcv1.Resource) error {
	if err := checkName("resource_id", r.GetResourceId(), true); err != nil {
		return err
	}
	if r.GetBranchType() == tcv1.BranchType_BRANCH_TYPE_UNSPECIFIED {
		return nil
	}
	return l.checkBranchType("resource branch_type", r.GetBranchType())
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// truncate cuts s to at most n bytes, on a UTF-8 character boundary, and
// marks the cut. Invalid UTF-8 in s is replaced, so the result is always
// valid UTF-8 and can be marshalled and stored.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	const mark = " …(truncated)"
	cut := max(n-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// logValue bounds a client's string for a log line.
func logValue(s string) string { return truncate(s, maxLogValue) }

// lockQuota counts the lock keys registered through this replica, per
// transaction and per application, against MaxLockKeysPerTransaction and
// MaxLockKeysPerApplication. A transaction's count is forgotten when it
// ends on this replica, or window (MaxTimeout) after its first
// registration here, when it can no longer be in BEGIN. It is safe for
// concurrent use; time comes in as arguments.
type lockQuota struct {
	perTx, perApp int
	window        time.Duration

	mu        sync.Mutex
	txs       map[string]*quotaTx
	apps      map[string]int
	nextSweep time.Time
}

type quotaTx struct {
	keys  int
	until time.Time
	apps  map[string]int
	// regs holds the idempotency keys of registrations counted, so that a
	// retry is not counted twice.
	regs map[string]bool
}

func newLockQuota(l Limits, window time.Duration) *lockQuota {
	return &lockQuota{perTx: l.MaxLockKeysPerTransaction, perApp: l.MaxLockKeysPerApplication, window: window,
		txs: make(map[string]*quotaTx), apps: make(map[string]int)}
}

// take counts n keys of xid for app, or refuses with ResourceExhausted
// when that would exceed a cap, and reports whether it counted them: a
// registration with an idempotency key reg already counted is not counted
// again. Give counted keys back with giveBack when the registration fails.
func (q *lockQuota) take(xid, app, reg string, n int, now time.Time) (bool, error) {
	if n == 0 {
		return false, nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sweep(now)
	t := q.txs[xid]
	held := 0
	if t != nil {
		if reg != "" && t.regs[reg] {
			return false, nil
		}
		held = t.keys
	}
	if held+n > q.perTx {
		return false, status.Errorf(codes.ResourceExhausted, "tc: transaction %s would hold %d lock keys, at most %d allowed (Limits.MaxLockKeysPerTransaction)", xid, held+n, q.perTx)
	}
	if q.apps[app]+n > q.perApp {
		return false, status.Errorf(codes.ResourceExhausted, "tc: application %q would hold %d lock keys in open transactions, at most %d allowed (Limits.MaxLockKeysPerApplication)", logValue(app), q.apps[app]+n, q.perApp)
	}
	if t == nil {
		t = &quotaTx{until: now.Add(q.window), apps: make(map[string]int), regs: make(map[string]bool)}
		q.txs[xid] = t
	}
	t.keys += n
	t.apps[app] += n
	q.apps[app] += n
	if reg != "" {
		t.regs[reg] = true
	}
	return true, nil
}

// giveBack undoes a take that counted.
func (q *lockQuota) giveBack(xid, app, reg string, n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.txs[xid]
	if t == nil {
		return
	}
	delete(t.regs, reg)
	n = min(n, t.apps[app])
	t.keys -= n
	t.apps[app] -= n
	q.sub(app, n)
	if t.keys == 0 {
		delete(q.txs, xid)
	}
}

// forget drops xid's keys: the transaction ended.
func (q *lockQuota) forget(xid string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.drop(xid)
}

func (q *lockQuota) drop(xid string) {
	t := q.txs[xid]
	if t == nil {
		return
	}
	for app, n := range t.apps {
		q.sub(app, n)
	}
	delete(q.txs, xid)
}

func (q *lockQuota) sub(app string, n int) {
	if q.apps[app] -= n; q.apps[app] <= 0 {
		delete(q.apps, app)
	}
}

// sweep drops the transactions past their window, at most once a second.
func (q *lockQuota) sweep(now time.Time) {
	if now.Before(q.nextSweep) {
		return
	}
	q.nextSweep = now.Add(time.Second)
	for xid, t := range q.txs {
		if now.After(t.until) {
			q.drop(xid)
		}
	}
}

// held returns the keys counted for xid and app, for tests.
func (q *lockQuota) held(xid, app string) (tx, ap int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t := q.txs[xid]; t != nil {
		tx = t.keys
	}
	return tx, q.apps[app]
}

// beginTimeout is the timeout of a Begin asking for ms milliseconds.
func (s *Server) beginTimeout(ms int64) (time.Duration, error) {
	switch {
	case ms < 0:
		return 0, invalid("timeout_ms must not be negative, got %d", ms)
	case ms == 0:
		return s.cfg.DefaultTimeout, nil
	case ms > s.cfg.MaxTimeout.Milliseconds():
		// Compared in milliseconds: a Duration of ms could overflow.
		return 0, invalid("timeout_ms %d exceeds the coordinator's maximum %v", ms, s.cfg.MaxTimeout)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// takeQuota counts n lock keys of xid for the caller's application and
// returns how to give them back if the registration fails.
func (s *Server) takeQuota(ctx context.Context, req *tcv1.RegisterBranchRequest, n int) (func(), error) {
	app, _ := ApplicationFromContext(ctx)
	xid, reg := req.GetXid(), req.GetIdempotencyKey()
	counted, err := s.quota.take(xid, app, reg, n, s.now())
	if err != nil || !counted {
		return func() {}, err
	}
	return sync.OnceFunc(func() { s.quota.giveBack(xid, app, reg, n) }), nil
}
