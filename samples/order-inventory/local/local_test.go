package local_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/samples/order-inventory/load"
	"github.com/gtx-io/gtx/samples/order-inventory/local"
	"github.com/gtx-io/gtx/samples/order-inventory/order"
)

func start(t *testing.T) (*local.Stack, *load.Client) {
	t.Helper()
	st, err := local.Start(t.Context(), local.Config{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st, load.NewClient(st.OrderURL, st.InventoryURL, st.AccountURL)
}

// Every mode with every failure point: a failure rolls back, real changes
// included, and the invariants hold after each order.
func TestModesAndFailures(t *testing.T) {
	_, c := start(t)
	for _, mode := range order.Modes {
		if mode == "xa" {
			// SQLite has no two-phase commit: TestBadRequests sees it refused.
			continue
		}
		for _, fail := range order.Failures {
			t.Run(mode+"/fail="+fail, func(t *testing.T) {
				before, err := c.TakeSnapshot(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				code, res, err := c.Place(t.Context(), order.PlaceRequest{User: "u7", SKU: "C", Quantity: 3, Mode: mode, Fail: fail})
				if err != nil {
					t.Fatal(err)
				}
				want, status := http.StatusOK, "committed"
				if fail != "" {
					want, status = http.StatusConflict, "rolled_back"
				}
				if code != want || res.Status != status || res.XID == "" {
					t.Fatalf("answer %d %+v, want %d %s with an XID", code, res, want, status)
				}
				r, err := c.Check(t.Context(), before, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				wantOrders := 1
				if fail != "" {
					wantOrders = 0
				}
				if !r.OK() || r.Orders != wantOrders {
					t.Fatalf("want %d committed order and the invariants to hold:\n%s", wantOrders, r)
				}
				if fail == "" {
					o, err := c.GetOrder(t.Context(), res.OrderID)
					if err != nil || o.Amount != 300 || o.XID != res.XID {
						t.Fatalf("GET the order: %+v, %v", o, err)
					}
				}
			})
		}
	}
}

// Bad input is answered 400 and begins no global transaction.
func TestBadRequests(t *testing.T) {
	st, c := start(t)
	count := func() int {
		resp, err := st.TC.ListTransactions(t.Context(), &tcv1.ListTransactionsRequest{Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.GetTransactions())
	}
	before := count()
	for _, body := range []string{
		`{"user":"u1","sku":"A","quantity":2,"mode":"xa"}`, // SQLite: no XA
		`{"user":"u1","sku":"A","quantity":2,"mode":"2pc"}`,
		`{"user":"u1","sku":"A","quantity":0}`,
		`{"user":"u1","sku":"A","quantity":-3,"mode":"tcc"}`,
		`{"user":"u1","sku":"A","quantity":1,"fail":"bank"}`,
		`{"user":"u1","sku":"A","quantity":1,"delay_ms":-1}`,
		`{"sku":"A","quantity":1}`,
		`{"user":"u1","quantity":1}`,
		`{"user":"u1","sku":"A","quantity":"two"}`,
		`{"user":"u1",`,
		`not json`,
		``,
	} {
		code, res, err := c.PlaceRaw(t.Context(), []byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if code != http.StatusBadRequest || res.Error == "" || res.XID != "" {
			t.Errorf("%s: answer %d %+v, want 400 with an error and no XID", body, code, res)
		}
	}
	huge := strings.Repeat("é", 50_000)
	for _, tt := range []struct {
		name string
		body []byte
		code int
	}{
		{"a body over 1 MiB", []byte(`{"user":"u1","sku":"A","quantity":1,"mode":"` + strings.Repeat("x", order.MaxBody) + `"}`), http.StatusRequestEntityTooLarge},
		{"an unknown SKU", []byte(`{"user":"u1","sku":"Z9","quantity":1}`), http.StatusNotFound},
		{"an unknown user", []byte(`{"user":"nobody","sku":"A","quantity":1,"mode":"saga"}`), http.StatusNotFound},
		{"a 100 KB user name", []byte(`{"user":"` + huge + `","sku":"A","quantity":1}`), http.StatusBadRequest},
		{"a 100 KB mode", []byte(`{"user":"u1","sku":"A","quantity":1,"mode":"` + huge + `"}`), http.StatusBadRequest},
	} {
		code, res, err := c.PlaceRaw(t.Context(), tt.body)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if code != tt.code || res.Error == "" || res.XID != "" {
			t.Errorf("%s: answer %d %+v, want %d with an error and no XID", tt.name, code, res, tt.code)
		}
		if len(res.Error) > 200 {
			t.Errorf("%s: the error echoes %d bytes of input", tt.name, len(res.Error))
		}
	}
	if n := count(); n != before {
		t.Fatalf("bad requests began %d global transactions", n-before)
	}
}
