package affinity_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/gtx-io/gtx/lock/affinity"
)

// startServers starts n gRPC servers on loopback and returns their
// addresses.
func startServers(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		healthpb.RegisterHealthServer(s, health.NewServer())
		go func() { _ = s.Serve(l) }()
		t.Cleanup(s.Stop)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}

func state(addrs []string) resolver.State {
	var s resolver.State
	for _, a := range addrs {
		s.Addresses = append(s.Addresses, resolver.Address{Addr: a})
	}
	return s
}

func dial(t *testing.T, addrs []string) (healthpb.HealthClient, *manual.Resolver) {
	t.Helper()
	r := manual.NewBuilderWithScheme("affinitytest")
	r.InitialState(state(addrs))
	conn, err := grpc.NewClient(r.Scheme()+":///backends",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(affinity.ServiceConfig))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return healthpb.NewHealthClient(conn), r
}

// served returns the backend that served a call made with ctx.
func served(t *testing.T, c healthpb.HealthClient, ctx context.Context) string {
	t.Helper()
	var p peer.Peer
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	return p.Addr.String()
}

func TestEveryCallForAKeyReachesOneBackend(t *testing.T) {
	addrs := startServers(t, 3)
	c, r := dial(t, addrs)
	ctx := context.Background()

	settle(t, c, addrs)

	keyed := []struct {
		name string
		ctx  func(key string) context.Context
	}{
		{"WithKey", func(k string) context.Context { return affinity.WithKey(ctx, k) }},
		{"metadata", func(k string) context.Context { return metadata.AppendToOutgoingContext(ctx, affinity.MetadataKey, k) }},
	}
	home := map[string]string{}
	used := map[string]int{}
	for _, kc := range keyed {
		for i := range 60 {
			k := fmt.Sprintf("sku-%d", i)
			for range 3 {
				got := served(t, c, kc.ctx(k))
				if want, ok := home[k]; ok && got != want {
					t.Fatalf("%s: key %s served by %s and by %s", kc.name, k, want, got)
				}
				home[k] = got
			}
		}
	}
	for _, b := range home {
		used[b]++
	}
	if len(used) != 3 {
		t.Fatalf("60 keys used %d of 3 backends: %v", len(used), used)
	}

	// Remove one backend: its keys move, every other key stays.
	gone := addrs[0]
	r.UpdateState(state(addrs[1:]))
	settle(t, c, addrs[1:])
	for k, b := range home {
		got := served(t, c, affinity.WithKey(ctx, k))
		switch {
		case got == gone:
			t.Fatalf("key %s still served by the removed backend", k)
		case b != gone && got != b:
			t.Fatalf("key %s moved from %s to %s when another backend left", k, b, got)
		}
	}
}

// settle waits until the client's picker spans exactly addrs: calls
// without a key, sent to the backends in turn, reach all of them and no
// other for a full round of several calls each.
func settle(t *testing.T, c healthpb.HealthClient, addrs []string) {
	t.Helper()
	want := map[string]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	for range 500 {
		seen := map[string]bool{}
		ok := true
		for range 4 * len(addrs) {
			a := served(t, c, context.Background())
			seen[a] = true
			ok = ok && want[a]
		}
		if ok && len(seen) == len(addrs) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("client never balanced over %v", addrs)
}

func TestCallsWithoutKeySpread(t *testing.T) {
	addrs := startServers(t, 3)
	c, _ := dial(t, addrs)
	settle(t, c, addrs)
}
