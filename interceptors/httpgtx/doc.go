// Package httpgtx carries the XID of a global transaction over net/http and
// runs chosen handlers inside global transactions.
//
//	mux := http.NewServeMux()
//	mux.Handle("POST /orders", httpgtx.GlobalTx(g)(placeOrder))
//	mux.Handle("GET /stock", httpgtx.GlobalLock()(stock))
//	srv := &http.Server{Handler: httpgtx.Server()(mux)}
//
//	client := &http.Client{Transport: &httpgtx.Transport{}}
//
// Server answers 400 Bad Request to a malformed XID. GlobalTx holds the
// handler's response back until the transaction ends; see its doc for how
// a handler's status decides commit or rollback.
package httpgtx
