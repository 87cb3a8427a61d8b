package httpgtx_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/interceptors/httpgtx"
	"github.com/gtx-io/gtx/internal/gtxtest"
)

// echoHandler answers what its context carries, and fails (500) or panics
// when the query asks.
func echoHandler(echo *gtxtest.Echo) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, err := echo.Handle(r.Context(), r.URL.Query().Get("cmd"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("X-Seen", seen)
		_, _ = io.WriteString(w, seen)
	})
}

// client sends requests through httpgtx.Transport.
var client = &http.Client{Transport: &httpgtx.Transport{}}

func get(t *testing.T, ctx context.Context, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestPropagation(t *testing.T) {
	echo := &gtxtest.Echo{}
	srv := httptest.NewServer(httpgtx.Server()(echoHandler(echo)))
	defer srv.Close()
	for _, tt := range []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"no xid", context.Background(), "|false"},
		{"xid", gtx.ContextWithXID(context.Background(), "tc-1:7"), "tc-1:7|false"},
		{"left the transaction", gtx.ContextWithoutXID(gtx.ContextWithXID(context.Background(), "tc-1:7")), "|false"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(t, tt.ctx, srv.URL)
			if code != 200 || body != tt.want {
				t.Fatalf("got %d %q, want 200 %q", code, body, tt.want)
			}
		})
	}
}

func TestTransportLeavesRequestAlone(t *testing.T) {
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Values(gtx.MetadataKey)
	}))
	defer srv.Close()
	for _, tt := range []struct {
		name  string
		ctx   context.Context
		stale []string
		want  []string
	}{
		{"stale replaced", gtx.ContextWithXID(context.Background(), "new"), []string{"old"}, []string{"new"}},
		{"stale removed", context.Background(), []string{"old"}, nil},
		{"no header", gtx.ContextWithXID(context.Background(), "x"), nil, []string{"x"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(tt.ctx, "GET", srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range tt.stale {
				req.Header.Add(gtx.MetadataKey, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if fmt.Sprint(seen) != fmt.Sprint(tt.want) {
				t.Fatalf("server saw %q, want %q", seen, tt.want)
			}
			if got := req.Header.Values(gtx.MetadataKey); fmt.Sprint(got) != fmt.Sprint(tt.stale) {
				t.Fatalf("the caller's request now holds %q, want it untouched (%q)", got, tt.stale)
			}
		})
	}
}

func TestMalformedRejected(t *testing.T) {
	echo := &gtxtest.Echo{}
	runner := &gtxtest.Runner{}
	g, err := interceptors.NewGlobalTx(runner)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /plain", httpgtx.Server()(echoHandler(echo)))
	mux.Handle("GET /tx", httpgtx.GlobalTx(g)(echoHandler(echo)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tt := range []struct {
		name   string
		values []string
	}{
		{"space", []string{"tc 1"}},
		{"oversized", []string{strings.Repeat("x", gtx.MaxXIDLen+1)}},
		{"two different", []string{"a", "b"}},
	} {
		for _, path := range []string{"/plain", "/tx"} {
			t.Run(tt.name+path, func(t *testing.T) {
				req, err := http.NewRequest("GET", srv.URL+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range tt.values {
					req.Header.Add(gtx.MetadataKey, v)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest {
					t.Fatalf("status %d, want 400", resp.StatusCode)
				}
			})
		}
	}
	if n := echo.Calls.Load(); n != 0 {
		t.Fatalf("handlers ran %d times for malformed XIDs, want 0", n)
	}
	if txs := runner.Txs(); len(txs) != 0 {
		t.Fatalf("malformed XIDs started transactions: %+v", txs)
	}
}

func TestGlobalTx(t *testing.T) {
	tests := []struct {
		name      string
		ctx       context.Context
		path      string
		commitErr error
		wantCode  int
		wantBody  string
		wantTx    gtxtest.Outcome
	}{
		{name: "commit", path: "/orders", wantCode: 200, wantBody: "gtxtest:1|false", wantTx: gtxtest.Committed},
		{name: "rollback on error status", path: "/orders?cmd=fail", wantCode: 500, wantBody: gtxtest.ErrHandler.Error() + "\n", wantTx: gtxtest.RolledBack},
		{name: "join", ctx: gtx.ContextWithXID(context.Background(), "outer:1"), path: "/orders", wantCode: 200, wantBody: "outer:1|false", wantTx: gtxtest.Joined},
		{name: "commit failed", path: "/orders", commitErr: errors.New("lost the race"), wantCode: 409, wantTx: gtxtest.RolledBack},
		{name: "other route", path: "/stock", wantCode: 200, wantBody: "|false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runner := &gtxtest.Runner{CommitErr: tt.commitErr}
			g, err := interceptors.NewGlobalTx(runner, interceptors.Operations("GET /orders"))
			if err != nil {
				t.Fatal(err)
			}
			echo := &gtxtest.Echo{}
			annotated := httpgtx.GlobalTx(g)(echoHandler(echo))
			mux := http.NewServeMux()
			mux.Handle("GET /orders", annotated)
			mux.Handle("GET /stock", annotated)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			code, body := get(t, ctx, srv.URL+tt.path)
			if code != tt.wantCode || tt.wantBody != "" && body != tt.wantBody {
				t.Fatalf("got %d %q, want %d %q", code, body, tt.wantCode, tt.wantBody)
			}
			if tt.commitErr != nil && strings.Contains(body, "|") {
				t.Fatalf("the client saw the handler's answer %q of a transaction that did not commit", body)
			}
			txs := runner.Txs()
			if tt.wantTx == "" {
				if len(txs) != 0 {
					t.Fatalf("unannotated route ran transactions %+v", txs)
				}
				return
			}
			if len(txs) != 1 || txs[0].Outcome != tt.wantTx || txs[0].Name != "GET /orders" {
				t.Fatalf("transactions %+v, want one %q named GET /orders", txs, tt.wantTx)
			}
		})
	}
}

func TestGlobalTxRollsBackOnPanic(t *testing.T) {
	runner := &gtxtest.Runner{}
	g, err := interceptors.NewGlobalTx(runner)
	if err != nil {
		t.Fatal(err)
	}
	echo := &gtxtest.Echo{}
	h := httpgtx.GlobalTx(g)(echoHandler(echo))
	req := httptest.NewRequest("GET", "/orders?cmd=panic", nil)
	rec := httptest.NewRecorder()
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Error("the handler's panic did not go on after the rollback")
			}
		}()
		h.ServeHTTP(rec, req)
	}()
	if rec.Code != 200 || rec.Body.Len() != 0 || len(rec.Header()) != 0 {
		t.Fatalf("a panicking handler wrote %d %q %v, want nothing written", rec.Code, rec.Body, rec.Header())
	}
	if txs := runner.Txs(); len(txs) != 1 || txs[0].Outcome != gtxtest.RolledBack {
		t.Fatalf("transactions %+v, want one rolled back", txs)
	}
}

func TestGlobalLock(t *testing.T) {
	echo := &gtxtest.Echo{}
	srv := httptest.NewServer(httpgtx.GlobalLock()(echoHandler(echo)))
	defer srv.Close()
	if code, body := get(t, context.Background(), srv.URL); code != 200 || body != "|true" {
		t.Fatalf("got %d %q, want 200 |true", code, body)
	}
}

func TestConcurrentRequestsKeepTheirXIDs(t *testing.T) {
	echo := &gtxtest.Echo{}
	srv := httptest.NewServer(httpgtx.Server()(echoHandler(echo)))
	defer srv.Close()
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			xid := fmt.Sprintf("tc:%d", i)
			req, err := http.NewRequestWithContext(gtx.ContextWithXID(context.Background(), xid), "GET", srv.URL, nil)
			if err != nil {
				errs <- err
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				errs <- err
				return
			}
			if want := xid + "|false"; string(body) != want {
				errs <- fmt.Errorf("request %d saw %q, want %q", i, body, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
