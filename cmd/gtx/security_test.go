package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate for 127.0.0.1 signed by ca, with its key,
// in PEM.
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The coordinator with mTLS and per-application tokens refuses a client
// without a certificate, one whose certificate another CA signed, a client
// that does not trust the server's CA, a missing or unknown token, and a TM
// ending another application's transaction; a resource manager of another
// application may still register a branch.
func TestSecurity(t *testing.T) {
	dir := t.TempDir()
	ca, wrong := newTestCA(t, "gtx test CA"), newTestCA(t, "wrong CA")
	srvCert, srvKey := ca.issue(t, "tc", x509.ExtKeyUsageServerAuth)
	cliCertPEM, cliKeyPEM := ca.issue(t, "client", x509.ExtKeyUsageClientAuth)
	badCertPEM, badKeyPEM := wrong.issue(t, "intruder", x509.ExtKeyUsageClientAuth)
	cliCert, err := tls.X509KeyPair(cliCertPEM, cliKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	badCert, err := tls.X509KeyPair(badCertPEM, badKeyPEM)
	if err != nil {
		t.Fatal(err)
	}

	c := defaultTCConfig()
	c.Listen = freeAddr(t)
	c.DataDir, c.RaftAddr = filepath.Join(dir, "tc"), freeAddr(t)
	c.NodeID = 7
	c.LogLevel = "error"
	c.TLSCert = writeFile(t, dir, "tc.crt", srvCert)
	c.TLSKey = writeFile(t, dir, "tc.key", srvKey)
	c.TLSClientCA = writeFile(t, dir, "ca.crt", ca.pem)
	c.AuthTokensFile = writeFile(t, dir, "tokens.yaml", []byte("orders: orders-secret\nbilling: billing-secret\n"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runTC(ctx, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runTC: %v", err)
		}
	})

	dial := func(roots *x509.CertPool, cert *tls.Certificate, token string) tcv1.CoordinatorClient {
		cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}
		if token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(tc.TokenCredentials{Token: token}))
		}
		conn, err := grpc.NewClient(c.Listen, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return tcv1.NewCoordinatorClient(conn)
	}
	orders := dial(ca.pool, &cliCert, "orders-secret")
	billing := dial(ca.pool, &cliCert, "billing-secret")

	var begun *tcv1.BeginResponse
	for deadline := time.Now().Add(20 * time.Second); ; {
		begun, err = orders.Begin(ctx, &tcv1.BeginRequest{Name: "order"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the coordinator never served an authorized client: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	xid := begun.GetXid()

	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"no client certificate", func() error {
			_, err := dial(ca.pool, nil, "orders-secret").Begin(ctx, &tcv1.BeginRequest{})
			return err
		}, codes.Unavailable},
		{"client certificate of another CA", func() error {
			_, err := dial(ca.pool, &badCert, "orders-secret").Begin(ctx, &tcv1.BeginRequest{})
			return err
		}, codes.Unavailable},
		{"server certificate of an untrusted CA", func() error {
			_, err := dial(wrong.pool, &cliCert, "orders-secret").Begin(ctx, &tcv1.BeginRequest{})
			return err
		}, codes.Unavailable},
		{"no token", func() error {
			_, err := dial(ca.pool, &cliCert, "").Begin(ctx, &tcv1.BeginRequest{})
			return err
		}, codes.Unauthenticated},
		{"unknown token", func() error {
			_, err := dial(ca.pool, &cliCert, "orders-secreT").Begin(ctx, &tcv1.BeginRequest{})
			return err
		}, codes.Unauthenticated},
		{"unknown token on the attach stream", func() error {
			s, err := dial(ca.pool, &cliCert, "nope").Attach(ctx)
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.Unauthenticated},
		{"begin for another application", func() error {
			_, err := billing.Begin(ctx, &tcv1.BeginRequest{Application: "orders"})
			return err
		}, codes.PermissionDenied},
		{"commit another application's transaction", func() error {
			_, err := billing.Commit(ctx, &tcv1.CommitRequest{Xid: xid})
			return err
		}, codes.PermissionDenied},
		{"roll back another application's transaction", func() error {
			_, err := billing.Rollback(ctx, &tcv1.RollbackRequest{Xid: xid})
			return err
		}, codes.PermissionDenied},
		{"report another application's transaction", func() error {
			_, err := billing.Report(ctx, &tcv1.ReportRequest{Xid: xid, Status: tcv1.GlobalStatus_COMMITTED})
			return err
		}, codes.PermissionDenied},
		{"health probe without a token", func() error {
			conn, err := grpc.NewClient(c.Listen, grpc.WithTransportCredentials(credentials.NewTLS(
				&tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{cliCert}, MinVersion: tls.VersionTLS12})))
			if err != nil {
				return err
			}
			defer conn.Close()
			_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		}, codes.OK},
		{"register a branch of another application's transaction", func() error {
			_, err := billing.RegisterBranch(ctx, &tcv1.RegisterBranchRequest{Xid: xid, BranchType: tcv1.BranchType_TCC, ResourceId: "invoices"})
			return err
		}, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := status.Code(tt.call()); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	st, err := orders.GetStatus(ctx, &tcv1.GetStatusRequest{Xid: xid})
	if err != nil || st.GetStatus() != tcv1.GlobalStatus_BEGIN {
		t.Fatalf("after the refused calls: %v, %v; want BEGIN", st.GetStatus(), err)
	}
	tx, err := orders.GetTransaction(ctx, &tcv1.GetTransactionRequest{Xid: xid})
	if err != nil || tx.GetTransaction().GetApplication() != "orders" {
		t.Fatalf("transaction application %q, %v; want orders (from the token)", tx.GetTransaction().GetApplication(), err)
	}
	if _, err := orders.Rollback(ctx, &tcv1.RollbackRequest{Xid: xid}); err != nil {
		t.Fatalf("the owner's rollback: %v", err)
	}

	// gtx tx reaches the coordinator with a CA, a client certificate and a
	// token file, and not without the token.
	certFile := writeFile(t, dir, "client.crt", cliCertPEM)
	keyFile := writeFile(t, dir, "client.key", cliKeyPEM)
	tokenFile := writeFile(t, dir, "token", []byte("orders-secret\n"))
	txCmd := func(extra ...string) (string, error) {
		cmd := newTxCmd()
		var out strings.Builder
		cmd.SetOut(&out)
		cmd.SetErr(io.Discard)
		cmd.SetArgs(append([]string{"show", xid, "--tc", c.Listen, "--tls-ca", c.TLSClientCA, "--tls-cert", certFile, "--tls-key", keyFile}, extra...))
		err := cmd.Execute()
		return out.String(), err
	}
	if out, err := txCmd("--token-file", tokenFile); err != nil {
		t.Fatalf("gtx tx show with a token: %v\n%s", err, out)
	}
	if _, err := txCmd(); status.Code(errors.Unwrap(err)) != codes.Unauthenticated && !strings.Contains(fmt.Sprint(err), "Unauthenticated") {
		t.Fatalf("gtx tx show without a token: %v, want Unauthenticated", err)
	}
}
