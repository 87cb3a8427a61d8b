package tc

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// ErrInvalidTokens is returned by NewAuthenticator for an empty token table,
// an empty application name or token, or a token two applications share.
var ErrInvalidTokens = errors.New("tc: invalid authentication tokens")

// healthPrefix starts the methods of the gRPC health service, which probes
// call without a token.
const healthPrefix = "/grpc.health.v1.Health/"

// authorizationKey is the gRPC metadata key carrying "Bearer <token>".
const authorizationKey = "authorization"

// Authenticator checks that every call to the coordinator carries the token
// of an application, and that a transaction manager ends only its own
// application's transactions: Begin runs under the caller's application,
// and Commit, Rollback and Report are refused with PermissionDenied for a
// transaction another application began. Resource managers may register
// and report branches of any transaction, since a branch may live in any
// service. The gRPC health service needs no token, for probes. Install it
// with its interceptors:
//
//	auth, err := tc.NewAuthenticator(map[string]string{"orders": token}, store)
//	gs := grpc.NewServer(grpc.Creds(tlsCreds),
//		grpc.ChainUnaryInterceptor(auth.UnaryInterceptor()),
//		grpc.ChainStreamInterceptor(auth.StreamInterceptor()))
//
// Tokens travel in clear inside the connection, so serve them over TLS.
type Authenticator struct {
	apps   []string
	tokens [][]byte
	store  Store
}

// NewAuthenticator returns an Authenticator for tokens, mapping each
// application to its token. Ownership is checked against store.
func NewAuthenticator(tokens map[string]string, store Store) (*Authenticator, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%w: no application has a token", ErrInvalidTokens)
	}
	if store == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalidTokens)
	}
	a := &Authenticator{store: store}
	seen := make(map[string]string, len(tokens))
	for app, tok := range tokens {
		switch {
		case app == "":
			return nil, fmt.Errorf("%w: an empty application name", ErrInvalidTokens)
		case tok == "":
			return nil, fmt.Errorf("%w: application %q has an empty token", ErrInvalidTokens, app)
		case seen[tok] != "":
			return nil, fmt.Errorf("%w: applications %q and %q share a token; give each its own", ErrInvalidTokens, seen[tok], app)
		}
		seen[tok] = app
		a.apps = append(a.apps, app)
		a.tokens = append(a.tokens, []byte(tok))
	}
	return a, nil
}

type applicationKey struct{}

// ApplicationFromContext returns the application an Authenticator
// authenticated the call in ctx as.
func ApplicationFromContext(ctx context.Context) (string, bool) {
	app, ok := ctx.Value(applicationKey{}).(string)
	return app, ok
}

// authenticate returns ctx carrying the caller's application, or an
// Unauthenticated status. Every token is compared, in constant time, so
// the time taken says nothing about which one nearly matched.
func (a *Authenticator) authenticate(ctx context.Context) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(authorizationKey)
	if len(vals) != 1 {
		return nil, status.Error(codes.Unauthenticated, "tc: missing authorization: send \"authorization: Bearer <token>\" metadata")
	}
	tok, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "tc: authorization is not a bearer token")
	}
	found := -1
	for i, t := range a.tokens {
		if subtle.ConstantTimeCompare([]byte(tok), t) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil, status.Error(codes.Unauthenticated, "tc: unknown token")
	}
	return context.WithValue(ctx, applicationKey{}, a.apps[found]), nil
}

// authorize checks what the caller's application may do with req.
func (a *Authenticator) authorize(ctx context.Context, app string, req any) error {
	var xid string
	switch r := req.(type) {
	case *tcv1.BeginRequest:
		switch r.GetApplication() {
		case "":
			r.Application = app
		case app:
		default:
			return status.Errorf(codes.PermissionDenied, "tc: authenticated as %q, cannot begin for application %q", app, r.GetApplication())
		}
		return nil
	case *tcv1.CommitRequest:
		xid = r.GetXid()
	case *tcv1.RollbackRequest:
		xid = r.GetXid()
	case *tcv1.ReportRequest:
		xid = r.GetXid()
	default:
		return nil
	}
	g, err := a.store.GetGlobal(ctx, xid)
	if err != nil {
		// The server answers for a session it cannot read.
		return nil
	}
	if g.Application != app {
		return status.Errorf(codes.PermissionDenied, "tc: authenticated as %q, cannot end transaction %s of another application", app, xid)
	}
	return nil
}

// UnaryInterceptor authenticates and authorizes unary calls.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if strings.HasPrefix(info.FullMethod, healthPrefix) {
			return handler(ctx, req)
		}
		ctx, err := a.authenticate(ctx)
		if err != nil {
			return nil, err
		}
		app, _ := ApplicationFromContext(ctx)
		if err := a.authorize(ctx, app, req); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor authenticates streams (Attach).
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if strings.HasPrefix(info.FullMethod, healthPrefix) {
			return handler(srv, ss)
		}
		ctx, err := a.authenticate(ss.Context())
		if err != nil {
			return err
		}
		return handler(srv, &authStream{ServerStream: ss, ctx: ctx})
	}
}

type authStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authStream) Context() context.Context { return s.ctx }

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
