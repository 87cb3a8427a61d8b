// Package service holds what the sample's three services (order, inventory,
// account) share: the link to the coordinator (a resource manager and a
// transaction manager), the service's database opened twice — once through
// gtx's AT driver for AT branches, once plainly for TCC and saga work — and
// its kratos HTTP and gRPC servers with the gtx middleware.
//
// A service opens a Base, creates its tables, registers its routes on
// Base.HTTP and Base.GRPC, and calls Start; Close stops everything:
//
//	b, err := service.Open(ctx, cfg)
//	...
//	b.HTTP.Route("/").GET("/v1/stock/{sku}", getStock)
//	samplev1.RegisterInventoryServer(b.GRPC, impl)
//	err = b.Start(ctx)
//	defer b.Close()
package service
