package affinity_test

import (
	"context"
	"log"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gtx-io/gtx/lock/affinity"
)

func Example() {
	conn, err := grpc.NewClient("dns:///inventory.internal:9000",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(affinity.ServiceConfig))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	// Every call about sku-42 reaches the same backend, which can guard
	// sku-42 with a local sync.Mutex.
	ctx := affinity.WithKey(context.Background(), "sku-42")
	_, _ = client.Check(ctx, &healthpb.HealthCheckRequest{})
}
