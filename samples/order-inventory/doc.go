// Package orderinventory is the root of gtx's order-inventory sample: three
// kratos services (order, inventory, account) that place orders in global
// transactions in AT, TCC and saga mode. See README.md for the services,
// the flows and how to run them; the packages are
//
//	order, inventory, account   the services (binaries in cmd/)
//	service                     what the three share: databases, gtx clients (every coordinator replica), kratos servers, saga steps over NATS JetStream
//	local                       the whole sample in one process (gtx demo)
//	load                        the HTTP contract's client, a load generator, the invariant check (gtx bench order)
//	api/samplev1                the gRPC API between the services
//
// The tests in this directory run the coordinator and the services as
// separate processes on MariaDB (and on PostgreSQL) and NATS, place orders
// under load, kill -9 each of them, and check the invariants; and attach a
// service to two coordinator replicas that require tokens.
package orderinventory
