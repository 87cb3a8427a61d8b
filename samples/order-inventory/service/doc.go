// Package service holds what the sample's three services (order, inventory,
// account) share: the link to the coordinator (a resource manager attached
// to every replica Config.TC names, with the application's token, and a
// transaction manager), the service's database (MySQL/MariaDB, PostgreSQL
// or SQLite) opened twice — once through gtx's AT driver for AT branches,
// once plainly for the TCC fence and reads — its kratos HTTP and gRPC servers with the gtx middleware, and the saga
// steps over NATS JetStream (ServeSteps on the participants, StepClient on
// the order service).
//
// A service opens a Base, creates its tables, registers its routes on
// Base.HTTP and Base.GRPC (and its saga steps), and calls Start; Close stops
// everything:
//
//	b, err := service.Open(ctx, cfg)
//	...
//	err = b.ServeSteps(ctx, map[string]service.StepFunc{"inventory.reserve": reserve})
//	b.HTTP.Route("/").GET("/v1/stock/{sku}", getStock)
//	samplev1.RegisterInventoryServer(b.GRPC, impl)
//	err = b.Start(ctx)
//	defer b.Close()
package service
