package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"

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
	fs.StringVar(&c.AuthTokensFile, "auth-tokens-file", c.AuthTokensFile, "YAML file mapping application to token; when set, every call needs its application's token (GTX_AUTH_TOKENS_FILE)")
}

// serverSecurity returns the gRPC server options for TLS, mTLS and token
// authentication the configuration asks for. Secrets are never logged.
func serverSecurity(c tcConfig, store tc.Store, log *slog.Logger) ([]grpc.ServerOption, error) {
	var opts []grpc.ServerOption
	switch {
	case c.TLSCert != "" && c.TLSKey != "":
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("tls: load --tls-cert and --tls-key: %w", err)
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if c.TLSClientCA != "" {
			pem, err := os.ReadFile(c.TLSClientCA)
			if err != nil {
				return nil, fmt.Errorf("tls: read --tls-client-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls: --tls-client-ca %s holds no PEM certificate", c.TLSClientCA)
			}
			cfg.ClientCAs = pool
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
		log.Info("TLS on", "mtls", c.TLSClientCA != "")
	case c.TLSCert != "" || c.TLSKey != "" || c.TLSClientCA != "":
		return nil, fmt.Errorf("tls: give both --tls-cert and --tls-key (and --tls-client-ca only with them)")
	}
	if c.AuthTokensFile != "" {
		tokens, err := loadTokens(c.AuthTokensFile)
		if err != nil {
			return nil, err
		}
		auth, err := tc.NewAuthenticator(tokens, store)
		if err != nil {
			return nil, fmt.Errorf("--auth-tokens-file %s: %w", c.AuthTokensFile, err)
		}
		opts = append(opts, grpc.ChainUnaryInterceptor(auth.UnaryInterceptor()), grpc.ChainStreamInterceptor(auth.StreamInterceptor()))
		log.Info("token authentication on", "applications", len(tokens))
		if c.TLSCert == "" {
			log.Warn("token authentication without TLS: tokens cross the network in clear")
		}
	}
	return opts, nil
}

// loadTokens reads a YAML mapping of application to token.
func loadTokens(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read --auth-tokens-file: %w", err)
	}
	defer f.Close()
	var tokens map[string]string
	if err := yaml.NewDecoder(f).Decode(&tokens); err != nil {
		return nil, fmt.Errorf("--auth-tokens-file %s: want a YAML mapping of application to token: %w", path, err)
	}
	return tokens, nil
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
	fs.StringVar(&s.tokenFile, "token-file", "", "file holding the application token, for a coordinator with --auth-tokens-file")
}

// dialOptions returns the gRPC dial options for the flags given.
func (s *clientSecurity) dialOptions() ([]grpc.DialOption, error) {
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
		tok, err := os.ReadFile(s.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read --token-file: %w", err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(tc.TokenCredentials{Token: strings.TrimSpace(string(tok)), AllowInsecure: s.ca == ""}))
	}
	return opts, nil
}
