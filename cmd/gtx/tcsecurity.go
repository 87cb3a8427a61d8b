package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
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
