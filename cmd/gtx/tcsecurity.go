package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"gopkg.in/yaml.v3"

	"github.com/gtx-io/gtx/tc"
)

func (c *tcConfig) bindSecurity(fs *pflag.FlagSet) {
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate of the gRPC endpoint; with --tls-key turns TLS on (GTX_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key of --tls-cert (GTX_TLS_KEY)")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", c.TLSClientCA, "PEM CA bundle; when set, clients must present a certificate it signed (mTLS) (GTX_TLS_CLIENT_CA)")
	fs.StringVar(&c.AuthTokensFile, "auth-tokens-file", c.AuthTokensFile, "YAML credentials file (applications: token, resources, join; operators: token); when set, every call needs a token and is authorized against it; reread when it changes (GTX_AUTH_TOKENS_FILE)")
	fs.DurationVar(&c.AuthReloadInterval, "auth-reload-interval", c.AuthReloadInterval, "how often --auth-tokens-file is checked for changes (GTX_AUTH_RELOAD_INTERVAL)")
}

// serverSecurity returns the gRPC server options for TLS, mTLS and token
// authentication the configuration asks for, and the Authenticator when
// there is one. Secrets are never logged.
func serverSecurity(c tcConfig, store tc.Store, log *slog.Logger) ([]grpc.ServerOption, *tc.Authenticator, error) {
	var opts []grpc.ServerOption
	switch {
	case c.TLSCert != "" && c.TLSKey != "":
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, nil, fmt.Errorf("tls: load --tls-cert and --tls-key: %w", err)
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if c.TLSClientCA != "" {
			pem, err := os.ReadFile(c.TLSClientCA)
			if err != nil {
				return nil, nil, fmt.Errorf("tls: read --tls-client-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("tls: --tls-client-ca %s holds no PEM certificate", c.TLSClientCA)
			}
			cfg.ClientCAs = pool
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
		log.Info("TLS on", "mtls", c.TLSClientCA != "")
	case c.TLSCert != "" || c.TLSKey != "" || c.TLSClientCA != "":
		return nil, nil, fmt.Errorf("tls: give both --tls-cert and --tls-key (and --tls-client-ca only with them)")
	}
	if c.AuthTokensFile == "" {
		return opts, nil, nil
	}
	raw, err := os.ReadFile(c.AuthTokensFile)
	if err != nil {
		return nil, nil, fmt.Errorf("read --auth-tokens-file: %w", err)
	}
	creds, err := parseCredentials(raw, c.AuthTokensFile, log)
	if err != nil {
		return nil, nil, err
	}
	auth, err := tc.NewAuthenticator(creds, store)
	if err != nil {
		return nil, nil, fmt.Errorf("--auth-tokens-file %s: %w", c.AuthTokensFile, err)
	}
	opts = append(opts, grpc.ChainUnaryInterceptor(auth.UnaryInterceptor()), grpc.ChainStreamInterceptor(auth.StreamInterceptor()))
	log.Info("token authentication on", "applications", len(creds.Applications), "operators", len(creds.Operators))
	return opts, auth, nil
}

// parseCredentials reads a credentials file: a mapping with applications
// and operators, or the older mapping of application to token, whose
// applications may serve any resource.
func parseCredentials(raw []byte, path string, log *slog.Logger) (tc.Credentials, error) {
	var creds tc.Credentials
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	err := dec.Decode(&creds)
	if err == nil {
		return creds, nil
	}
	var legacy map[string]string
	if yaml.Unmarshal(raw, &legacy) != nil || len(legacy) == 0 {
		return tc.Credentials{}, fmt.Errorf("--auth-tokens-file %s: want applications (name: {token, resources, join}) and operators (name: {token}): %w", path, err)
	}
	log.Warn("--auth-tokens-file maps applications to tokens only: every application may serve any resource; list each one's resources (docs/operations.md, Authorization)", "file", path)
	creds.Applications = make(map[string]tc.ApplicationCredential, len(legacy))
	for app, tok := range legacy {
		creds.Applications[app] = tc.ApplicationCredential{Token: tok, Resources: []string{"*"}}
	}
	return creds, nil
}

// watchCredentials rereads path every interval and reloads auth when its
// content changed, until ctx ends; a file that does not parse keeps the
// credentials in use. stop waits for the watcher to end.
func watchCredentials(ctx context.Context, path string, interval time.Duration, auth *tc.Authenticator, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	last, _ := os.ReadFile(path)
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			raw, err := os.ReadFile(path)
			if err != nil || bytes.Equal(raw, last) {
				continue
			}
			last = raw
			creds, err := parseCredentials(raw, path, log)
			if err == nil {
				err = auth.Reload(creds)
			}
			if err != nil {
				log.Error("credentials not reloaded; the ones in use stay", "file", path, "err", err)
				continue
			}
			log.Info("credentials reloaded", "file", path, "applications", len(creds.Applications), "operators", len(creds.Operators))
		}
	}()
	return func() { cancel(); <-done }
}

// isLoopback reports whether addr (host:port) listens or dials only on a
// loopback interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// warnExposure warns when the coordinator listens beyond loopback without
// TLS or without tokens.
func warnExposure(c tcConfig, log *slog.Logger) {
	if isLoopback(c.Listen) {
		return
	}
	if c.TLSCert == "" {
		log.Warn("listening beyond loopback without TLS: calls, application data and any tokens cross the network in clear; set --tls-cert and --tls-key", "listen", c.Listen)
	}
	if c.AuthTokensFile == "" {
		log.Warn("listening beyond loopback without --auth-tokens-file: anyone who reaches the port may begin, end, read and retry any transaction", "listen", c.Listen)
	}
}

// clientSecurity is how `gtx tx` reaches a coordinator that requires TLS,
// client certificates or a token.
type clientSecurity struct {
	ca, cert, key, tokenFile string
}

func (s *clientSecurity) bind(fs *pflag.FlagSet) {
	fs.StringVar(&s.ca, "tls-ca", "", "PEM CA bundle that signed the coordinator's certificate; turns TLS on")
	fs.StringVar(&s.cert, "tls-cert", "", "PEM client certificate, for a coordinator that requires mTLS")
	fs.StringVar(&s.key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&s.tokenFile, "token-file", "", "file holding the operator's (or an application's) token, for a coordinator with --auth-tokens-file; sent only over TLS (--tls-ca) or to a loopback address")
}

// dialOptions returns the gRPC dial options for the flags given, to reach
// addr. A token is sent only over TLS, or to a loopback address.
func (s *clientSecurity) dialOptions(addr string) ([]grpc.DialOption, error) {
	creds := insecure.NewCredentials()
	if s.ca != "" {
		pem, err := os.ReadFile(s.ca)
		if err != nil {
			return nil, fmt.Errorf("read --tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s holds no PEM certificate", s.ca)
		}
		cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if s.cert != "" || s.key != "" {
			cert, err := tls.LoadX509KeyPair(s.cert, s.key)
			if err != nil {
				return nil, fmt.Errorf("load --tls-cert and --tls-key: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		creds = credentials.NewTLS(cfg)
	} else if s.cert != "" || s.key != "" {
		return nil, fmt.Errorf("--tls-cert and --tls-key need --tls-ca")
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if s.tokenFile != "" {
		if s.ca == "" && !isLoopback(addr) {
			return nil, fmt.Errorf("--token-file without --tls-ca: refusing to send the token in clear to %s; give the CA of the coordinator's certificate", addr)
		}
		tok, err := os.ReadFile(s.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read --token-file: %w", err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(tc.TokenCredentials{Token: strings.TrimSpace(string(tok)), AllowInsecure: s.ca == ""}))
	}
	return opts, nil
}
