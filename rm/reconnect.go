package rm

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// How a connection to a coordinator reconnects. gRPC's own default backs
// off to two minutes between connection attempts, so after a long outage a
// coordinator that is back is not seen for up to that long; these keep the
// wait between attempts under a second whatever the outage's length, at
// the cost of one connection attempt a second per coordinator while it is
// down.
const (
	// ReconnectBaseDelay is the wait after the first failed connection
	// attempt.
	ReconnectBaseDelay = 100 * time.Millisecond
	// ReconnectMaxDelay caps the wait between connection attempts; with
	// gRPC's jitter of 20% no wait exceeds 960ms.
	ReconnectMaxDelay = 800 * time.Millisecond
	// ReconnectConnectTimeout is the least time one connection attempt is
	// given (TCP and TLS handshake).
	ReconnectConnectTimeout = 2 * time.Second
)

// FastReconnect returns the dial option that makes a gRPC connection to a
// coordinator try to connect again at least every ReconnectMaxDelay (plus
// jitter) while the coordinator is unreachable, so the Manager attaches
// again, and RegisterBranch and the transaction manager's calls go
// through, within a second of the coordinator being reachable again.
// GRPCDialer uses it; give it to the connections of Config.Coordinators
// and of the transaction manager, which the caller dials:
//
//	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds), rm.FastReconnect())
//
// A later grpc.WithConnectParams among the dial options overrides it.
func FastReconnect() grpc.DialOption {
	return grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: backoff.Config{
			BaseDelay:  ReconnectBaseDelay,
			Multiplier: 1.6,
			Jitter:     0.2,
			MaxDelay:   ReconnectMaxDelay,
		},
		MinConnectTimeout: ReconnectConnectTimeout,
	})
}
