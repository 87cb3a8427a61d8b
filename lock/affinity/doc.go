// Package affinity is the alternative to a distributed lock when every
// request about one key can be served by one process: a gRPC balancer that
// routes calls by a key with consistent hashing, so that all calls for one
// key reach the same backend and a local sync.Mutex there is enough.
//
// Importing the package registers the balancer (named Name) with gRPC.
// Select it with ServiceConfig and give each call its key with WithKey, or
// in outgoing metadata under MetadataKey:
//
//	conn, err := grpc.NewClient("dns:///inventory:9000",
//		grpc.WithTransportCredentials(creds),
//		grpc.WithDefaultServiceConfig(affinity.ServiceConfig))
//	...
//	ctx = affinity.WithKey(ctx, "sku-42")
//	_, err = client.Reserve(ctx, req) // every call for sku-42 goes to one backend
//
// The guarantee holds while the set of ready backends is stable: when a
// backend joins or leaves, the keys next to its ring points move, and for a
// moment two backends may serve one of them. Use a distributed lock (package
// lock) where that moment matters.
package affinity
