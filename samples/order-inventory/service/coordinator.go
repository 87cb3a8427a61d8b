package service

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tc"
)

// dnsScheme starts a Config.TC that names the coordinator replicas by DNS.
const dnsScheme = "dns:///"

// Coordinators is a parsed Config.TC: the replicas of the coordinator, as a
// fixed list or a DNS name.
type Coordinators struct {
	// Addrs is the fixed list of replica addresses (host:port); empty when
	// DNSName is set.
	Addrs []string
	// DNSName and DNSPort name the replicas by DNS: every A or AAAA record
	// of DNSName is one replica, on DNSPort (a Kubernetes headless service
	// answers with one record per ready pod).
	DNSName string
	DNSPort int // see DNSName
}

// ParseCoordinators parses Config.TC: "host:port", a comma-separated list
// "host1:port,host2:port", or "dns:///name:port". Errors match
// ErrInvalidConfig.
func ParseCoordinators(s string) (Coordinators, error) {
	bad := func(format string, args ...any) (Coordinators, error) {
		return Coordinators{}, fmt.Errorf("%w: TC %q: "+format, append([]any{ErrInvalidConfig, s}, args...)...)
	}
	if rest, ok := strings.CutPrefix(s, dnsScheme); ok {
		host, port, err := net.SplitHostPort(rest)
		if err != nil || host == "" || strings.Contains(rest, ",") {
			return bad("want dns:///name:port")
		}
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p > 65535 {
			return bad("port %q is not a port number", port)
		}
		return Coordinators{DNSName: host, DNSPort: p}, nil
	}
	var c Coordinators
	seen := map[string]bool{}
	for a := range strings.SplitSeq(s, ",") {
		a = strings.TrimSpace(a)
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			return bad("%q is not host:port; give host:port, host1:port,host2:port or dns:///name:port", a)
		}
		if !seen[a] {
			seen[a] = true
			c.Addrs = append(c.Addrs, a)
		}
	}
	return c, nil
}

// resolver returns what finds the replicas for rm.Discovery.
func (c Coordinators) resolver() rm.Resolver {
	if c.DNSName != "" {
		return rm.DNSResolver{Name: c.DNSName, Port: c.DNSPort}
	}
	return rm.StaticResolver(c.Addrs)
}

// roundRobin is the gRPC service config of the transaction manager's
// connection: calls spread over every replica.
const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// dial opens the connection the transaction manager and the lock checks
// use: one address directly, several or a DNS name balanced round robin.
// It reconnects as the resource manager's connections do
// (rm.FastReconnect), so transactions begin again within a second of a
// coordinator being back.
func (c Coordinators) dial(opts []grpc.DialOption) (*grpc.ClientConn, error) {
	opts = append([]grpc.DialOption{rm.FastReconnect()}, opts...)
	switch {
	case c.DNSName != "":
		target := dnsScheme + net.JoinHostPort(c.DNSName, strconv.Itoa(c.DNSPort))
		return grpc.NewClient(target, append(opts, grpc.WithDefaultServiceConfig(roundRobin))...)
	case len(c.Addrs) == 1:
		return grpc.NewClient(c.Addrs[0], opts...)
	}
	r := manual.NewBuilderWithScheme("gtx-sample-tc")
	var state resolver.State
	for _, a := range c.Addrs {
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a})
	}
	r.InitialState(state)
	return grpc.NewClient(r.Scheme()+":///tc", append(opts, grpc.WithResolvers(r), grpc.WithDefaultServiceConfig(roundRobin))...)
}

// dialOptions are the transport credentials of every coordinator
// connection (TLS when c names a CA file) and the application token, when
// there is one. insecureToken reports a token sent without TLS.
func (c *Config) dialOptions() (opts []grpc.DialOption, insecureToken bool, err error) {
	if c.TCCA != "" {
		creds, err := credentials.NewClientTLSFromFile(c.TCCA, "")
		if err != nil {
			return nil, false, fmt.Errorf("%w: TCCA %s: %w", ErrInvalidConfig, c.TCCA, err)
		}
		opts = append(opts, grpc.WithTransportCredentials(creds))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if c.TCToken != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tc.TokenCredentials{Token: c.TCToken, AllowInsecure: c.TCCA == ""}))
	}
	return opts, c.TCToken != "" && c.TCCA == "", nil
}

// ReadToken returns the token in the file at path, without surrounding
// white space.
func ReadToken(path string) (string, error) {
	return readSecret(path, "coordinator token")
}

// readSecret reads the secret what from the file path, without the
// surrounding white space; an empty file is an error.
func readSecret(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("service: read the %s: %w", what, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%w: the %s file %s is empty", ErrInvalidConfig, what, path)
	}
	return v, nil
}
