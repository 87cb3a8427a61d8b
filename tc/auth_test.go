package tc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/idgen"
	"github.com/gtx-io/gtx/tc"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
)

func TestNewAuthenticatorRefuses(t *testing.T) {
	var store tc.Store = nilStore{}
	app := func(tok string, res ...string) tc.ApplicationCredential {
		return tc.ApplicationCredential{Token: tok, Resources: res}
	}
	tests := []struct {
		name  string
		creds tc.Credentials
		store tc.Store
	}{
		{"no credentials", tc.Credentials{}, store},
		{"empty application", tc.Credentials{Applications: map[string]tc.ApplicationCredential{"": app("t", "*")}}, store},
		{"empty token", tc.Credentials{Applications: map[string]tc.ApplicationCredential{"a": app("", "*")}}, store},
		{"no resources", tc.Credentials{Applications: map[string]tc.ApplicationCredential{"a": app("t")}}, store},
		{"empty resource", tc.Credentials{Applications: map[string]tc.ApplicationCredential{"a": app("t", "")}}, store},
		{"shared token", tc.Credentials{Applications: map[string]tc.ApplicationCredential{"a": app("t", "*"), "b": app("t", "*")}}, store},
		{"operator sharing an application's token", tc.Credentials{
			Applications: map[string]tc.ApplicationCredential{"a": app("t", "*")},
			Operators:    map[string]tc.OperatorCredential{"ops": {Token: "t"}}}, store},
		{"nil store", tc.Credentials{Applications: map[string]tc.ApplicationCredential{"a": app("t", "*")}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tc.NewAuthenticator(tt.creds, tt.store); !errors.Is(err, tc.ErrInvalidTokens) {
				t.Fatalf("NewAuthenticator = %v, want ErrInvalidTokens", err)
			}
		})
	}
}

func TestTokenCredentialsHideTheToken(t *testing.T) {
	c := tc.TokenCredentials{Token: "hunter2"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %s", c, c, c)} {
		if strings.Contains(s, "hunter2") {
			t.Fatalf("token printed: %s", s)
		}
	}
}

// nilStore is a Store that is never called.
type nilStore struct{ tc.Store }

// pki is a throwaway CA issuing certificates for 127.0.0.1.
type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &pki{cert: cert, key: key, pool: pool}
}

func (p *pki) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// authEnv is a coordinator on SQLite behind TLS (client certificates
// verified when given) and an Authenticator.
type authEnv struct {
	auth *tc.Authenticator
	addr string
	pki  *pki
}

func startAuthEnv(t *testing.T, creds tc.Credentials) *authEnv {
	t.Helper()
	ctx := context.Background()
	idCfg := idgen.DefaultConfig()
	idCfg.NodeID = 3
	ids, err := idgen.New(idCfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tc.DefaultConfig()
	cfg.ServerID = "auth-test"
	cfg.IDs = ids
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: filepath.Join(t.TempDir(), "tc.db"), Logger: cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	srv, err := tc.NewServer(cfg, store, store)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := tc.NewAuthenticator(creds, store)
	if err != nil {
		t.Fatal(err)
	}
	p := newPKI(t)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{p.issue(t, "tc", x509.ExtKeyUsageServerAuth)},
		ClientCAs: p.pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.ChainUnaryInterceptor(auth.UnaryInterceptor(), srv.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(auth.StreamInterceptor()))
	tcv1.RegisterCoordinatorServer(gs, srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(); gs.Stop(); <-done })
	return &authEnv{auth: auth, addr: lis.Addr().String(), pki: p}
}

// client dials over TLS with token (none when empty) and cert (none when
// nil).
func (e *authEnv) client(t *testing.T, token string, cert *tls.Certificate) tcv1.CoordinatorClient {
	t.Helper()
	cfg := &tls.Config{RootCAs: e.pki.pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tc.TokenCredentials{Token: token}))
	}
	conn, err := grpc.NewClient(e.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return tcv1.NewCoordinatorClient(conn)
}

// attach opens Attach, sends msgs and returns the first error (nil after
// a Welcome and no refusal).
func attach(c tcv1.CoordinatorClient, msgs ...*tcv1.AttachRequest) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.Attach(ctx)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := s.Send(m); err != nil {
			break
		}
	}
	if _, err := s.Recv(); err != nil {
		return err
	}
	if len(msgs) < 2 {
		return nil
	}
	// An add_resource after the Welcome: a refusal ends the stream; an
	// accepted one leaves it open until the half-close ends it cleanly.
	_ = s.CloseSend()
	_, err = s.Recv()
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func hello(app string, res ...string) *tcv1.AttachRequest {
	h := &tcv1.Hello{Application: app, ClientId: "test"}
	for _, r := range res {
		h.Resources = append(h.Resources, &tcv1.Resource{ResourceId: r, BranchType: tcv1.BranchType_TCC})
	}
	return &tcv1.AttachRequest{Msg: &tcv1.AttachRequest_Hello{Hello: h}}
}

func addResource(r string) *tcv1.AttachRequest {
	return &tcv1.AttachRequest{Msg: &tcv1.AttachRequest_AddResource{AddResource: &tcv1.Resource{ResourceId: r, BranchType: tcv1.BranchType_TCC}}}
}

// Every RPC, called by each role on transactions it owns, takes part in
// or neither, over TLS: the owner application ("orders"), a participant
// ("inventory", serving inventory-*), an outsider ("billing", which may
// join only inventory's transactions), an operator, no token, and a token
// bound to a client certificate.
func TestAuthorizationTable(t *testing.T) {
	creds := tc.Credentials{
		Applications: map[string]tc.ApplicationCredential{
			"orders":    {Token: "t-orders", Resources: []string{"orders-db"}},
			"inventory": {Token: "t-inventory", Resources: []string{"inventory-*"}},
			"billing":   {Token: "t-billing", Resources: []string{"billing-db"}, Join: []string{"inventory"}},
			"bound":     {Token: "t-bound", Certificate: "bound-rm", Resources: []string{"bound-db"}},
		},
		Operators: map[string]tc.OperatorCredential{"ops": {Token: "t-ops"}},
	}
	e := startAuthEnv(t, creds)
	ctx := context.Background()
	orders, inventory, billing := e.client(t, "t-orders", nil), e.client(t, "t-inventory", nil), e.client(t, "t-billing", nil)
	ops, anon, wrong := e.client(t, "t-ops", nil), e.client(t, "", nil), e.client(t, "t-nope", nil)
	boundCert, otherCert := e.pki.issue(t, "bound-rm", x509.ExtKeyUsageClientAuth), e.pki.issue(t, "intruder", x509.ExtKeyUsageClientAuth)
	bound, boundNoCert, boundWrongCert := e.client(t, "t-bound", &boundCert), e.client(t, "t-bound", nil), e.client(t, "t-bound", &otherCert)

	begin := func(t *testing.T, c tcv1.CoordinatorClient) string {
		t.Helper()
		b, err := c.Begin(ctx, &tcv1.BeginRequest{Name: "auth"})
		if err != nil {
			t.Fatal(err)
		}
		return b.GetXid()
	}
	register := func(t *testing.T, c tcv1.CoordinatorClient, xid, res string, data []byte) int64 {
		t.Helper()
		r, err := c.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: xid, BranchType: tcv1.BranchType_TCC, ResourceId: res, LockKeys: "t:" + res, ApplicationData: data})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetBranchId()
	}
	// The shared transaction: orders' branch and inventory's branch.
	xid := begin(t, orders)
	ordersBranch := register(t, orders, xid, "orders-db", []byte("orders data"))
	invBranch := register(t, inventory, xid, "inventory-stock", []byte("inventory data"))
	invXID := begin(t, inventory)

	fresh := func(c tcv1.CoordinatorClient) func(*testing.T) string {
		return func(t *testing.T) string { return begin(t, c) }
	}
	shared := func(*testing.T) string { return xid }
	type call func(t *testing.T, c tcv1.CoordinatorClient, xid string) error
	commit := func(t *testing.T, c tcv1.CoordinatorClient, xid string) error {
		_, err := c.Commit(ctx, &tcv1.CommitRequest{Xid: xid})
		return err
	}
	rollback := func(t *testing.T, c tcv1.CoordinatorClient, xid string) error {
		_, err := c.Rollback(ctx, &tcv1.RollbackRequest{Xid: xid})
		return err
	}
	report := func(t *testing.T, c tcv1.CoordinatorClient, xid string) error {
		_, err := c.Report(ctx, &tcv1.ReportRequest{Xid: xid, Status: tcv1.GlobalStatus_COMMITTED})
		return err
	}
	getStatus := func(t *testing.T, c tcv1.CoordinatorClient, xid string) error {
		_, err := c.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: xid})
		return err
	}
	getTx := func(branches int) call {
		return func(t *testing.T, c tcv1.CoordinatorClient, xid string) error {
			r, err := c.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: xid})
			if err == nil && (len(r.GetTransaction().GetBranches()) != branches || r.GetTransaction().GetBranchCount() != int32(branches)) {
				return fmt.Errorf("saw %d branches, want %d", len(r.GetTransaction().GetBranches()), branches)
			}
			return err
		}
	}
	lists := func(want bool) call {
		return func(t *testing.T, c tcv1.CoordinatorClient, xid string) error {
			r, err := c.ListTransactions(ctx, &tcv1.ListTransactionsRequest{})
			if err != nil {
				return err
			}
			found := false
			for _, x := range r.GetTransactions() {
				found = found || x.GetXid() == xid
			}
			if found != want {
				return fmt.Errorf("listed %s: %v, want %v", xid, found, want)
			}
			return nil
		}
	}
	registerOn := func(res string) call {
		return func(t *testing.T, c tcv1.CoordinatorClient, xid string) error {
			_, err := c.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: xid, BranchType: tcv1.BranchType_TCC, ResourceId: res})
			return err
		}
	}
	reportBranch := func(id int64) call {
		return func(t *testing.T, c tcv1.CoordinatorClient, xid string) error {
			_, err := c.ReportBranch(ctx, &tcv1.ReportBranchRequest{Xid: xid, BranchId: id, Status: tcv1.BranchStatus_PHASE1_DONE, ApplicationData: []byte("overwritten")})
			return err
		}
	}
	queryLocks := func(res string) call {
		return func(t *testing.T, c tcv1.CoordinatorClient, _ string) error {
			_, err := c.QueryLocks(ctx, &tcv1.QueryLocksRequest{ResourceId: res, LockKeys: "t:1"})
			return err
		}
	}
	retry := func(t *testing.T, c tcv1.CoordinatorClient, xid string) error {
		_, err := c.Retry(ctx, &tcv1.RetryRequest{Xid: xid})
		return err
	}
	beginFor := func(app string) call {
		return func(t *testing.T, c tcv1.CoordinatorClient, _ string) error {
			_, err := c.Begin(ctx, &tcv1.BeginRequest{Application: app})
			return err
		}
	}
	attachWith := func(msgs ...*tcv1.AttachRequest) call {
		return func(t *testing.T, c tcv1.CoordinatorClient, _ string) error { return attach(c, msgs...) }
	}
	const (
		ok     = codes.OK
		denied = codes.PermissionDenied
		unauth = codes.Unauthenticated
	)
	tests := []struct {
		rpc, who string
		c        tcv1.CoordinatorClient
		xid      func(*testing.T) string
		call     call
		want     codes.Code
	}{
		{"Begin", "owner", orders, shared, beginFor(""), ok},
		{"Begin", "owner naming itself", orders, shared, beginFor("orders"), ok},
		{"Begin", "application for another", orders, shared, beginFor("inventory"), denied},
		{"Begin", "operator", ops, shared, beginFor(""), denied},
		{"Begin", "no token", anon, shared, beginFor(""), unauth},
		{"Begin", "unknown token", wrong, shared, beginFor(""), unauth},
		{"Begin", "bound token with its certificate", bound, shared, beginFor(""), ok},
		{"Begin", "bound token without a certificate", boundNoCert, shared, beginFor(""), unauth},
		{"Begin", "bound token with another certificate", boundWrongCert, shared, beginFor(""), unauth},

		{"Commit", "owner", orders, fresh(orders), commit, ok},
		{"Commit", "participant", inventory, shared, commit, denied},
		{"Commit", "outsider", billing, shared, commit, denied},
		{"Commit", "operator", ops, shared, commit, denied},
		{"Rollback", "owner", orders, fresh(orders), rollback, ok},
		{"Rollback", "participant", inventory, shared, rollback, denied},
		{"Rollback", "outsider", billing, shared, rollback, denied},
		{"Rollback", "operator", ops, shared, rollback, denied},
		{"Report", "owner", orders, fresh(orders), report, ok},
		{"Report", "participant", inventory, shared, report, denied},
		{"Report", "operator", ops, shared, report, denied},

		{"GetStatus", "owner", orders, shared, getStatus, ok},
		{"GetStatus", "participant", inventory, shared, getStatus, ok},
		{"GetStatus", "outsider", billing, shared, getStatus, denied},
		{"GetStatus", "operator", ops, shared, getStatus, ok},
		{"GetTransaction", "owner sees every branch", orders, shared, getTx(2), ok},
		{"GetTransaction", "participant sees its own branch", inventory, shared, getTx(1), ok},
		{"GetTransaction", "outsider", billing, shared, getTx(0), denied},
		{"GetTransaction", "operator sees every branch", ops, shared, getTx(2), ok},
		{"ListTransactions", "owner lists it", orders, shared, lists(true), ok},
		{"ListTransactions", "participant lists it", inventory, shared, lists(true), ok},
		{"ListTransactions", "outsider does not", billing, shared, lists(false), ok},
		{"ListTransactions", "operator lists it", ops, shared, lists(true), ok},

		{"RegisterBranch", "participant on its resource", inventory, shared, registerOn("inventory-orders"), ok},
		{"RegisterBranch", "participant on another's resource", inventory, shared, registerOn("orders-db"), denied},
		{"RegisterBranch", "outsider in an application it may not join", billing, shared, registerOn("billing-db"), denied},
		{"RegisterBranch", "outsider in an application it may join", billing, func(*testing.T) string { return invXID }, registerOn("billing-db"), ok},
		{"RegisterBranch", "operator", ops, shared, registerOn("orders-db"), denied},
		{"ReportBranch", "participant on its branch", inventory, shared, reportBranch(invBranch), ok},
		{"ReportBranch", "participant on the owner's branch", inventory, shared, reportBranch(ordersBranch), denied},
		{"ReportBranch", "owner on the participant's branch", orders, shared, reportBranch(invBranch), denied},
		{"ReportBranch", "operator", ops, shared, reportBranch(ordersBranch), denied},
		{"QueryLocks", "its resource", inventory, shared, queryLocks("inventory-stock"), ok},
		{"QueryLocks", "another's resource", inventory, shared, queryLocks("orders-db"), denied},
		{"QueryLocks", "operator", ops, shared, queryLocks("orders-db"), ok},
		{"Retry", "owner", orders, shared, retry, denied},
		{"Retry", "operator, past authorization", ops, shared, retry, codes.FailedPrecondition},

		{"Attach", "its application and resources", inventory, shared, attachWith(hello("inventory", "inventory-stock")), ok},
		{"Attach", "no application named", inventory, shared, attachWith(hello("", "inventory-stock")), ok},
		{"Attach", "another application", inventory, shared, attachWith(hello("orders", "inventory-stock")), denied},
		{"Attach", "another's resource in hello", inventory, shared, attachWith(hello("inventory", "orders-db")), denied},
		{"Attach", "its add_resource", inventory, shared, attachWith(hello("inventory"), addResource("inventory-extra")), ok},
		{"Attach", "another's add_resource", inventory, shared, attachWith(hello("inventory"), addResource("orders-db")), denied},
		{"Attach", "operator", ops, shared, attachWith(hello("")), denied},
		{"Attach", "no token", anon, shared, attachWith(hello("inventory", "inventory-stock")), unauth},
	}
	for _, tt := range tests {
		t.Run(tt.rpc+"/"+tt.who, func(t *testing.T) {
			err := tt.call(t, tt.c, tt.xid(t))
			if got := status.Code(err); got != tt.want {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}

	// The refused calls changed nothing of the shared transaction; the
	// participant's accepted report changed only its own branch.
	got, err := ops.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: xid})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetTransaction().GetStatus() != tcv1.GlobalStatus_BEGIN || len(got.GetTransaction().GetBranches()) != 3 {
		t.Fatalf("shared transaction is %v with %d branches, want BEGIN with 3", got.GetTransaction().GetStatus(), len(got.GetTransaction().GetBranches()))
	}
	for _, b := range got.GetTransaction().GetBranches() {
		if b.GetBranchId() == ordersBranch && string(b.GetApplicationData()) != "orders data" {
			t.Fatalf("orders' branch data is %q", b.GetApplicationData())
		}
	}
}

// Reload replaces the credentials of a running coordinator: a rotated
// token works at once and the old one no longer does; bad credentials
// change nothing.
func TestAuthenticatorReload(t *testing.T) {
	creds := tc.Credentials{Applications: map[string]tc.ApplicationCredential{"orders": {Token: "old", Resources: []string{"orders-db"}}}}
	e := startAuthEnv(t, creds)
	ctx := context.Background()
	oldC, newC := e.client(t, "old", nil), e.client(t, "new", nil)
	if _, err := oldC.Begin(ctx, &tcv1.BeginRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := e.auth.Reload(tc.Credentials{}); !errors.Is(err, tc.ErrInvalidTokens) {
		t.Fatalf("Reload(no credentials) = %v, want ErrInvalidTokens", err)
	}
	if _, err := oldC.Begin(ctx, &tcv1.BeginRequest{}); err != nil {
		t.Fatalf("after a refused reload: %v", err)
	}
	creds.Applications["orders"] = tc.ApplicationCredential{Token: "new", Resources: []string{"orders-db"}}
	if err := e.auth.Reload(creds); err != nil {
		t.Fatal(err)
	}
	if _, err := newC.Begin(ctx, &tcv1.BeginRequest{}); err != nil {
		t.Fatalf("new token: %v", err)
	}
	if _, err := oldC.Begin(ctx, &tcv1.BeginRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("old token: %v, want Unauthenticated", err)
	}
}
