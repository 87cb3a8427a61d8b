package tc

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// ErrInvalidTokens is returned by NewAuthenticator and Reload for
// credentials that cannot be used: no credential at all, an empty name,
// token or resource pattern, a token two credentials share, or an
// application that may serve no resource.
var ErrInvalidTokens = errors.New("tc: invalid authentication tokens")

// healthPrefix starts the methods of the gRPC health service, which probes
// call without a token.
const healthPrefix = "/grpc.health.v1.Health/"

// authorizationKey is the gRPC metadata key carrying "Bearer <token>".
const authorizationKey = "authorization"

// Credentials say who may call the coordinator and what each caller may
// do. The YAML tags are those of `gtx tc --auth-tokens-file`.
type Credentials struct {
	// Applications maps an application's name to its credential.
	Applications map[string]ApplicationCredential `yaml:"applications"`
	// Operators maps an operator's name to its credential.
	Operators map[string]OperatorCredential `yaml:"operators"`
}

// ApplicationCredential is what one application (its transaction managers
// and resource managers) presents and may do.
type ApplicationCredential struct {
	// Token is the bearer token the application sends.
	Token string `yaml:"token"`
	// Certificate, when set, binds the token to a client certificate under
	// mTLS: the call's verified certificate must name it as its subject
	// common name or as a DNS, URI or email subject alternative name.
	Certificate string `yaml:"certificate,omitempty"`
	// Resources are the resource IDs the application serves: it may
	// announce them on Attach, register and report branches on them and
	// query their locks. A pattern ending in "*" matches every resource ID
	// that starts with what precedes it; "*" alone matches any.
	Resources []string `yaml:"resources"`
	// Join, when not empty, names the applications whose transactions the
	// application's resources may register branches in (its own always);
	// empty means any application's.
	Join []string `yaml:"join,omitempty"`
}

// OperatorCredential is what an operator (gtx tx, a console) presents.
// Operators read every transaction and its locks and call Retry; they
// cannot begin, end or take part in transactions.
type OperatorCredential struct {
	// Token is the bearer token the operator sends.
	Token string `yaml:"token"`
	// Certificate binds the token to a client certificate, as in
	// ApplicationCredential.
	Certificate string `yaml:"certificate,omitempty"`
}

// principal is an authenticated caller.
type principal struct {
	name        string
	operator    bool
	certificate string
	resources   []string
	join        []string
}

// serves reports whether p may serve resourceID.
func (p *principal) serves(resourceID string) bool {
	for _, r := range p.resources {
		if prefix, ok := strings.CutSuffix(r, "*"); ok {
			if strings.HasPrefix(resourceID, prefix) {
				return true
			}
		} else if r == resourceID {
			return true
		}
	}
	return false
}

// takesPart reports whether p owns g or serves one of its branches.
func (p *principal) takesPart(g *GlobalSession) bool {
	if g.Application == p.name {
		return true
	}
	for _, b := range g.Branches {
		if p.serves(b.ResourceID) {
			return true
		}
	}
	return false
}

// table is compiled Credentials.
type table struct {
	tokens     [][]byte
	principals []*principal
}

func compile(c Credentials) (*table, error) {
	t := &table{}
	seen := make(map[string]string)
	add := func(kind, name, tok string, p *principal) error {
		switch {
		case name == "":
			return fmt.Errorf("%w: an %s with an empty name", ErrInvalidTokens, kind)
		case tok == "":
			return fmt.Errorf("%w: %s %q has an empty token", ErrInvalidTokens, kind, name)
		case seen[tok] != "":
			return fmt.Errorf("%w: %s and %s %q share a token; give each its own", ErrInvalidTokens, seen[tok], kind, name)
		}
		seen[tok] = fmt.Sprintf("%s %q", kind, name)
		t.tokens = append(t.tokens, []byte(tok))
		t.principals = append(t.principals, p)
		return nil
	}
	for name, a := range c.Applications {
		if len(a.Resources) == 0 {
			return nil, fmt.Errorf("%w: application %q lists no resources; list the resource IDs it serves (\"*\" for any)", ErrInvalidTokens, name)
		}
		if slices.Contains(a.Resources, "") || slices.Contains(a.Join, "") {
			return nil, fmt.Errorf("%w: application %q has an empty resource or join entry", ErrInvalidTokens, name)
		}
		p := &principal{name: name, certificate: a.Certificate, resources: slices.Clone(a.Resources), join: slices.Clone(a.Join)}
		if err := add("application", name, a.Token, p); err != nil {
			return nil, err
		}
	}
	for name, o := range c.Operators {
		if err := add("operator", name, o.Token, &principal{name: name, operator: true, certificate: o.Certificate}); err != nil {
			return nil, err
		}
	}
	if len(t.tokens) == 0 {
		return nil, fmt.Errorf("%w: no application or operator has a token", ErrInvalidTokens)
	}
	return t, nil
}

// Authenticator authenticates every call to the coordinator by its bearer
// token (and, for a credential bound to one, its client certificate) and
// authorizes it against the caller's credential:
//
//   - Begin runs under the caller's application; Commit, Rollback and
//     Report take only the caller's own transactions.
//   - Attach's Hello names the caller's application (or none) and only
//     resources it serves, as does every add_resource.
//   - RegisterBranch takes a resource the caller serves, in a transaction
//     of an application it may join; ReportBranch takes only a branch on
//     a resource the caller serves. Knowing the XID admits a participant:
//     it adds and reports its own branches and sees no other's.
//   - GetStatus and GetTransaction take a transaction the caller owns or
//     has a branch in (a participant sees only its own branches);
//     ListTransactions lists only those; QueryLocks takes a resource the
//     caller serves.
//   - Retry is for operators, who may also read everything, and nothing
//     else.
//
// Anything else is PermissionDenied, also methods added to the service
// later. The gRPC health service needs no token, for probes. Install it
// with its interceptors:
//
//	auth, err := tc.NewAuthenticator(creds, store)
//	gs := grpc.NewServer(grpc.Creds(tlsCreds),
//		grpc.ChainUnaryInterceptor(auth.UnaryInterceptor()),
//		grpc.ChainStreamInterceptor(auth.StreamInterceptor()))
//
// Tokens travel in clear inside the connection, so serve them over TLS.
// Reload replaces the credentials while the coordinator runs.
type Authenticator struct {
	table atomic.Pointer[table]
	store Store
}

// NewAuthenticator returns an Authenticator for creds. Ownership is
// checked against store.
func NewAuthenticator(creds Credentials, store Store) (*Authenticator, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalidTokens)
	}
	a := &Authenticator{store: store}
	if err := a.Reload(creds); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload replaces the credentials; calls already authenticated finish
// under the old ones. Invalid credentials change nothing.
func (a *Authenticator) Reload(creds Credentials) error {
	t, err := compile(creds)
	if err != nil {
		return err
	}
	a.table.Store(t)
	return nil
}

type principalKey struct{}

// ApplicationFromContext returns the application an Authenticator
// authenticated the call in ctx as; false for an operator or when no
// Authenticator is installed.
func ApplicationFromContext(ctx context.Context) (string, bool) {
	p, ok := ctx.Value(principalKey{}).(*principal)
	if !ok || p.operator {
		return "", false
	}
	return p.name, true
}

// visible reports whether the caller in ctx may see g: always without an
// Authenticator, and for operators.
func visible(ctx context.Context, g *GlobalSession) bool {
	p, ok := ctx.Value(principalKey{}).(*principal)
	return !ok || p.operator || p.takesPart(g)
}

// authenticate returns the caller's principal, or an Unauthenticated
// status. Every token is compared, in constant time, so the time taken
// says nothing about which one nearly matched.
func (a *Authenticator) authenticate(ctx context.Context) (*principal, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(authorizationKey)
	if len(vals) != 1 {
		return nil, status.Error(codes.Unauthenticated, "tc: missing authorization: send \"authorization: Bearer <token>\" metadata")
	}
	tok, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "tc: authorization is not a bearer token")
	}
	t := a.table.Load()
	found := -1
	for i, x := range t.tokens {
		if subtle.ConstantTimeCompare([]byte(tok), x) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil, status.Error(codes.Unauthenticated, "tc: unknown token")
	}
	p := t.principals[found]
	if p.certificate != "" && !certificateNames(ctx, p.certificate) {
		return nil, status.Errorf(codes.Unauthenticated, "tc: the token of %q is bound to client certificate %q, which the connection did not present", p.name, p.certificate)
	}
	return p, nil
}

// certificateNames reports whether the verified client certificate of the
// call in ctx names name.
func certificateNames(ctx context.Context, name string) bool {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	info, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return false
	}
	return certNames(info.State.VerifiedChains[0][0], name)
}

func certNames(c *x509.Certificate, name string) bool {
	if c.Subject.CommonName == name || slices.Contains(c.DNSNames, name) || slices.Contains(c.EmailAddresses, name) {
		return true
	}
	for _, u := range c.URIs {
		if u.String() == name {
			return true
		}
	}
	return false
}

func denied(p *principal, format string, args ...any) error {
	kind := "application"
	if p.operator {
		kind = "operator"
	}
	return status.Errorf(codes.PermissionDenied, "tc: authenticated as %s %q: "+format, append([]any{kind, logValue(p.name)}, args...)...)
}

// authorize checks what p may do with req. It may fill in Begin's
// application. A transaction it cannot read is let through: the handler
// answers for it.
func (a *Authenticator) authorize(ctx context.Context, p *principal, req any) error {
	if p.operator {
		switch req.(type) {
		case *tcv1.GetStatusRequest, *tcv1.GetTransactionRequest, *tcv1.ListTransactionsRequest, *tcv1.QueryLocksRequest, *tcv1.RetryRequest:
			return nil
		}
		return denied(p, "operators read transactions and retry them, and cannot call %T", req)
	}
	switch r := req.(type) {
	case *tcv1.BeginRequest:
		switch r.GetApplication() {
		case "":
			r.Application = p.name
		case p.name:
		default:
			return denied(p, "cannot begin for application %q", logValue(r.GetApplication()))
		}
		return nil
	case *tcv1.CommitRequest:
		return a.owner(ctx, p, r.GetXid())
	case *tcv1.RollbackRequest:
		return a.owner(ctx, p, r.GetXid())
	case *tcv1.ReportRequest:
		return a.owner(ctx, p, r.GetXid())
	case *tcv1.GetStatusRequest:
		return a.participant(ctx, p, r.GetXid())
	case *tcv1.GetTransactionRequest:
		return a.participant(ctx, p, r.GetXid())
	case *tcv1.ListTransactionsRequest:
		return nil
	case *tcv1.QueryLocksRequest:
		if !p.serves(r.GetResourceId()) {
			return denied(p, "cannot query the locks of resource %q, which it does not serve", logValue(r.GetResourceId()))
		}
		return nil
	case *tcv1.RegisterBranchRequest:
		if !p.serves(r.GetResourceId()) {
			return denied(p, "cannot register a branch on resource %q, which it does not serve", logValue(r.GetResourceId()))
		}
		if len(p.join) == 0 {
			return nil
		}
		g, ok := a.read(ctx, r.GetXid())
		if ok && g.Application != p.name && !slices.Contains(p.join, g.Application) {
			return denied(p, "cannot join transactions of application %q", logValue(g.Application))
		}
		return nil
	case *tcv1.ReportBranchRequest:
		g, ok := a.read(ctx, r.GetXid())
		if !ok {
			return nil
		}
		for _, b := range g.Branches {
			if b.BranchID == r.GetBranchId() && !p.serves(b.ResourceID) {
				return denied(p, "cannot report branch %d of resource %q, which it does not serve", b.BranchID, logValue(b.ResourceID))
			}
		}
		return nil
	case *tcv1.RetryRequest:
		return denied(p, "Retry is for operators")
	}
	return denied(p, "%T is not authorized for applications", req)
}

// read returns xid's session when the store has it.
func (a *Authenticator) read(ctx context.Context, xid string) (*GlobalSession, bool) {
	if checkXID(xid) != nil {
		return nil, false
	}
	g, err := a.store.GetGlobal(ctx, xid)
	return g, err == nil
}

func (a *Authenticator) owner(ctx context.Context, p *principal, xid string) error {
	if g, ok := a.read(ctx, xid); ok && g.Application != p.name {
		return denied(p, "cannot end transaction %s of another application", xid)
	}
	return nil
}

func (a *Authenticator) participant(ctx context.Context, p *principal, xid string) error {
	if g, ok := a.read(ctx, xid); ok && !p.takesPart(g) {
		return denied(p, "cannot read transaction %s, which it neither began nor has a branch in", xid)
	}
	return nil
}

// filter keeps of a participant's answer only its own branches.
func filter(p *principal, resp any) {
	r, ok := resp.(*tcv1.GetTransactionResponse)
	if !ok || p.operator || r.GetTransaction().GetApplication() == p.name {
		return
	}
	t := r.GetTransaction()
	t.Branches = slices.DeleteFunc(t.Branches, func(b *tcv1.Branch) bool { return !p.serves(b.GetResourceId()) })
	t.BranchCount = int32(len(t.Branches))
}

// UnaryInterceptor authenticates and authorizes unary calls.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if strings.HasPrefix(info.FullMethod, healthPrefix) {
			return handler(ctx, req)
		}
		p, err := a.authenticate(ctx)
		if err != nil {
			return nil, err
		}
		ctx = context.WithValue(ctx, principalKey{}, p)
		if err := a.authorize(ctx, p, req); err != nil {
			return nil, err
		}
		resp, err := handler(ctx, req)
		if err == nil {
			filter(p, resp)
		}
		return resp, err
	}
}

// StreamInterceptor authenticates streams and authorizes every message of
// Attach: Hello's application and resources, and each add_resource.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if strings.HasPrefix(info.FullMethod, healthPrefix) {
			return handler(srv, ss)
		}
		p, err := a.authenticate(ss.Context())
		if err != nil {
			return err
		}
		if p.operator {
			return denied(p, "operators cannot attach as a resource manager")
		}
		if info.FullMethod != tcv1.Coordinator_Attach_FullMethodName {
			return denied(p, "stream %s is not authorized for applications", info.FullMethod)
		}
		return handler(srv, &authStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), principalKey{}, p), p: p})
	}
}

// authStream checks each message of an Attach stream as it is received.
type authStream struct {
	grpc.ServerStream
	ctx context.Context
	p   *principal
}

func (s *authStream) Context() context.Context { return s.ctx }

func (s *authStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	req, ok := m.(*tcv1.AttachRequest)
	if !ok {
		return nil
	}
	if h := req.GetHello(); h != nil {
		switch h.GetApplication() {
		case "":
			h.Application = s.p.name
		case s.p.name:
		default:
			return denied(s.p, "cannot attach for application %q", logValue(h.GetApplication()))
		}
		for _, r := range h.GetResources() {
			if !s.p.serves(r.GetResourceId()) {
				return denied(s.p, "cannot serve resource %q", logValue(r.GetResourceId()))
			}
		}
	}
	if r := req.GetAddResource(); r != nil && !s.p.serves(r.GetResourceId()) {
		return denied(s.p, "cannot serve resource %q", logValue(r.GetResourceId()))
	}
	return nil
}

var _ credentials.PerRPCCredentials = TokenCredentials{}

// TokenCredentials are the gRPC per-call credentials of a client of the
// coordinator: pass them to grpc.NewClient with grpc.WithPerRPCCredentials
// for the connection a tm.Manager or rm.Manager uses.
type TokenCredentials struct {
	// Token is the application's token.
	Token string
	// AllowInsecure sends the token over connections without TLS too; only
	// for tests and loopback.
	AllowInsecure bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c TokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{authorizationKey: "Bearer " + c.Token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: gRPC
// refuses to send the token over a connection without TLS unless
// AllowInsecure.
func (c TokenCredentials) RequireTransportSecurity() bool { return !c.AllowInsecure }

// String hides the token from logs and %v.
func (c TokenCredentials) String() string { return "tc.TokenCredentials{Token: <redacted>}" }
