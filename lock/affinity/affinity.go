package affinity

import (
	"context"
	"hash/fnv"
	"slices"
	"strconv"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/metadata"
)

// Name is the name under which the balancer is registered with gRPC.
const Name = "gtx_key_affinity"

// ServiceConfig is a gRPC service config that selects the balancer; pass it
// with grpc.WithDefaultServiceConfig.
const ServiceConfig = `{"loadBalancingConfig":[{"` + Name + `":{}}]}`

// MetadataKey is the outgoing metadata key the balancer reads the routing
// key from when the context has none set by WithKey.
const MetadataKey = "gtx-affinity-key"

// replicas is how many points each backend has on the ring; more points
// spread keys more evenly.
const replicas = 160

type keyCtx struct{}

// WithKey returns a context whose calls are routed by key: every call with
// the same key goes to the same backend while the set of ready backends is
// unchanged. The key stays in the process; it is not sent as metadata.
func WithKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyCtx{}, key)
}

// keyOf returns the routing key of a call: from WithKey, else from the
// outgoing metadata under MetadataKey.
func keyOf(ctx context.Context) (string, bool) {
	if k, ok := ctx.Value(keyCtx{}).(string); ok {
		return k, true
	}
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		if v := md.Get(MetadataKey); len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}

func init() {
	balancer.Register(base.NewBalancerBuilder(Name, pickerBuilder{}, base.Config{HealthCheck: true}))
}

type pickerBuilder struct{}

// point is one position of a backend on the hash ring.
type point struct {
	hash uint64
	sc   balancer.SubConn
}

// Build places every ready backend on a ring of hashes by its address, so
// that adding or removing one backend moves only the keys next to its
// points.
func (pickerBuilder) Build(info base.PickerBuildInfo) balancer.Picker {
	if len(info.ReadySCs) == 0 {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	p := &picker{}
	for sc, sci := range info.ReadySCs {
		p.all = append(p.all, sc)
		for i := range replicas {
			p.ring = append(p.ring, point{hash: hash(sci.Address.Addr + "#" + strconv.Itoa(i)), sc: sc})
		}
	}
	slices.SortFunc(p.ring, func(a, b point) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return 0
	})
	return p
}

type picker struct {
	ring []point
	all  []balancer.SubConn
	next atomic.Uint64
}

// Pick sends a call with a key to the first ring point at or after the
// key's hash, and a call without a key to the backends in turn.
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	k, ok := keyOf(info.Ctx)
	if !ok {
		return balancer.PickResult{SubConn: p.all[p.next.Add(1)%uint64(len(p.all))]}, nil
	}
	h := hash(k)
	i, _ := slices.BinarySearchFunc(p.ring, h, func(pt point, h uint64) int {
		switch {
		case pt.hash < h:
			return -1
		case pt.hash > h:
			return 1
		}
		return 0
	})
	if i == len(p.ring) {
		i = 0
	}
	return balancer.PickResult{SubConn: p.ring[i].sc}, nil
}

// hash is FNV-1a followed by a 64-bit mixer, so that similar strings land
// far apart; it is the same in every process.
func hash(s string) uint64 {
	f := fnv.New64a()
	_, _ = f.Write([]byte(s))
	x := f.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
