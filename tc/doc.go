// Package tc is gtx's Transaction Coordinator: it keeps every global
// transaction by XID in a Store, takes global row locks in a LockStore,
// decides commit or rollback, drives phase 2 on the resource managers
// attached to it, rolls back transactions past their timeout, and resumes
// whatever is unfinished after a crash. Several replicas may share one store;
// they split phase-2 work through leases taken in the store.
//
// A coordinator is a Server registered on a *grpc.Server:
//
//	store, _ := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: "gtx-tc.db"})
//	ids, _ := idgen.New(idgen.DefaultConfig())
//	cfg := tc.DefaultConfig()
//	cfg.IDs = ids
//	srv, err := tc.NewServer(cfg, store, store)
//	if err != nil {
//		return err
//	}
//	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(srv.UnaryInterceptor()))
//	tcv1.RegisterCoordinatorServer(gs, srv)
//	if err := srv.Start(ctx); err != nil { // timeouts, retries, recovery
//		return err
//	}
//	go gs.Serve(lis)
//	...
//	srv.Close()      // ends Attach streams, stops background work
//	gs.GracefulStop()
//
// `gtx tc` (cmd/gtx) runs exactly this from flags, a YAML file and GTX_*
// variables. The status machine, the phase-2 and recovery rules and the
// lock rules are described in docs/architecture.md; the gRPC status codes
// each method answers are in the method docs.
package tc
