package interceptors_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	kerrors "github.com/go-kratos/kratos/v2/errors"
	mmd "github.com/go-kratos/kratos/v2/middleware/metadata"
	kgrpc "github.com/go-kratos/kratos/v2/transport/grpc"
	khttp "github.com/go-kratos/kratos/v2/transport/http"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/gtx-io/gtx"
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/interceptors"
	"github.com/gtx-io/gtx/interceptors/httpgtx"
	"github.com/gtx-io/gtx/interceptors/kratosgtx"
	"github.com/gtx-io/gtx/interceptors/natsgtx"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/rm"
	"github.com/gtx-io/gtx/tm"
)

// Resources the hops register their branches on.
const (
	resGRPC = "chain-grpc"
	resHTTP = "chain-http"
	resNATS = "chain-nats"
)

// Commands a chain request carries as "tag|cmd".
const (
	cmdFailLast   = "fail-last"
	cmdPanicFirst = "panic-first"
)

// hopLog records, per request tag, the XID each hop saw.
type hopLog struct {
	mu   sync.Mutex
	seen map[string][]string
}

func (h *hopLog) add(tag, hop string, ctx context.Context) {
	xid, _ := gtx.XIDFromContext(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen[tag] = append(h.seen[tag], hop+"="+xid)
}

func (h *hopLog) get(tag string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.seen[tag]...)
}

// phase2 records the phase-2 commands the coordinator sends, per XID.
type phase2 struct {
	mu   sync.Mutex
	cmds map[string][]string
}

func (p *phase2) add(op string, b rm.Branch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cmds[b.XID] = append(p.cmds[b.XID], op+" "+b.ResourceID)
}

func (p *phase2) Commit(_ context.Context, b rm.Branch) error   { p.add("commit", b); return nil }
func (p *phase2) Rollback(_ context.Context, b rm.Branch) error { p.add("rollback", b); return nil }

// wait waits until xid got want phase-2 commands, in any order. Delivery
// is at least once, so a command may come more than once.
func (p *phase2) wait(t *testing.T, xid string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		p.mu.Lock()
		got := append([]string(nil), p.cmds[xid]...)
		p.mu.Unlock()
		if sameSet(distinct(got), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s got phase-2 commands %q, want %q", xid, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func distinct(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	count := map[string]int{}
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		count[s]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}

// chain is HTTP (net/http, annotated with GlobalTx) → kratos gRPC →
// kratos HTTP → NATS request/reply, each hop registering a TCC branch.
type chain struct {
	entry string
	tc    tcv1.CoordinatorClient
	hops  *hopLog
	p2    *phase2
}

func split(s string) (tag, cmd string) {
	tag, cmd, _ = strings.Cut(s, "|")
	return tag, cmd
}

func startChain(t *testing.T) *chain {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &chain{tc: gtxtest.StartTC(t), hops: &hopLog{seen: map[string][]string{}}, p2: &phase2{cmds: map[string][]string{}}}

	rmCfg := rm.DefaultConfig()
	rmCfg.Application = "chain"
	rmCfg.Coordinators = []tcv1.CoordinatorClient{c.tc}
	rmCfg.Logger = quiet
	res, err := rm.New(rmCfg)
	if err != nil {
		t.Fatal(err)
	}
	res.Handle(tcv1.BranchType_TCC, c.p2)
	for _, id := range []string{resGRPC, resHTTP, resNATS} {
		if err := res.AddResource(id, tcv1.BranchType_TCC); err != nil {
			t.Fatal(err)
		}
	}
	if err := res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = res.Close() })
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := res.WaitAttached(wctx); err != nil {
		t.Fatal(err)
	}
	register := func(ctx context.Context, resource string) error {
		xid, ok := gtx.XIDFromContext(ctx)
		if !ok {
			return errors.New("no global transaction in the context")
		}
		_, err := res.RegisterBranch(ctx, xid, tcv1.BranchType_TCC, resource, "", nil)
		return err
	}

	// Hop 4: a NATS subscriber.
	nc := gtxtest.ConnectNATS(t, gtxtest.StartNATS(t))
	subject := "chain.last"
	sub, err := nc.Subscribe(subject, natsgtx.Handler(ctx, func(ctx context.Context, msg *nats.Msg) error {
		tag, cmd := split(string(msg.Data))
		c.hops.add(tag, "nats", ctx)
		if err := register(ctx, resNATS); err != nil {
			return errors.Join(err, msg.Respond([]byte("error: "+err.Error())))
		}
		if cmd == cmdFailLast {
			return msg.RespondMsg(&nats.Msg{Header: nats.Header{micro.ErrorHeader: {"out of stock"}, micro.ErrorCodeHeader: {"409"}}})
		}
		return msg.Respond([]byte("ok"))
	}, natsgtx.WithLogger(quiet)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	// Hop 3: a kratos HTTP server, hand-written route.
	hs := khttp.NewServer(khttp.Address("127.0.0.1:0"), khttp.Timeout(30*time.Second),
		khttp.Middleware(kratosgtx.Server(kratosgtx.WithLogger(quiet)), mmd.Server()))
	hs.Route("/").POST("/v1/stock", func(kc khttp.Context) error {
		khttp.SetOperation(kc, "/chain.Stock/Reserve")
		var in struct{ Cmd string }
		if err := kc.Bind(&in); err != nil {
			return err
		}
		h := kc.Middleware(func(ctx context.Context, _ any) (any, error) {
			tag, _ := split(in.Cmd)
			c.hops.add(tag, "kratos-http", ctx)
			if err := register(ctx, resHTTP); err != nil {
				return nil, err
			}
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			reply, err := natsgtx.Request(rctx, nc, subject, []byte(in.Cmd))
			if err != nil {
				return nil, err
			}
			if reply.Header.Get(micro.ErrorCodeHeader) != "" {
				return nil, kerrors.Conflict("OUT_OF_STOCK", reply.Header.Get(micro.ErrorHeader))
			}
			return map[string]string{"reply": string(reply.Data)}, nil
		})
		out, err := h(kc, &in)
		if err != nil {
			return err
		}
		return kc.Result(200, out)
	})
	httpAddr := startKratos(t, hs.Endpoint, hs.Start, hs.Stop)
	// Hop 2 calls hop 3 with kratos's metadata middleware only: the XID
	// crosses by the x-md-global- convention.
	toHTTP, err := khttp.NewClient(ctx, khttp.WithEndpoint(httpAddr), khttp.WithTimeout(30*time.Second), khttp.WithMiddleware(mmd.Client()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = toHTTP.Close() })

	// Hop 2: a kratos gRPC server.
	echo := &gtxtest.Echo{Next: func(ctx context.Context, in string) error {
		tag, _ := split(in)
		c.hops.add(tag, "kratos-grpc", ctx)
		if err := register(ctx, resGRPC); err != nil {
			return err
		}
		var out map[string]string
		return toHTTP.Invoke(ctx, "POST", "/v1/stock", map[string]string{"Cmd": in}, &out, khttp.Operation("/chain.Stock/Reserve"))
	}}
	gs := kgrpc.NewServer(kgrpc.Address("127.0.0.1:0"), kgrpc.Timeout(30*time.Second),
		kgrpc.Middleware(kratosgtx.Server(kratosgtx.WithLogger(quiet)), mmd.Server()))
	gs.RegisterService(&gtxtest.ServiceDesc, echo)
	grpcAddr := startKratos(t, gs.Endpoint, gs.Start, gs.Stop)
	toGRPC, err := kgrpc.DialInsecure(ctx, kgrpc.WithEndpoint(grpcAddr), kgrpc.WithTimeout(30*time.Second),
		kgrpc.WithMiddleware(kratosgtx.Client(), mmd.Client()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = toGRPC.Close() })

	// Hop 1: a net/http server whose handler is annotated with GlobalTx.
	mgr, err := tm.New(c.tc, tm.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	g, err := interceptors.NewGlobalTx(mgr, interceptors.Name("place-order"), interceptors.Timeout(time.Minute), interceptors.Logger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /orders", httpgtx.GlobalTx(g, httpgtx.WithLogger(quiet))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tag, cmd := r.URL.Query().Get("tag"), r.URL.Query().Get("cmd")
		c.hops.add(tag, "http", r.Context())
		if _, err := gtxtest.Call(r.Context(), toGRPC, gtxtest.MethodUnary, tag+"|"+cmd); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		if cmd == cmdPanicFirst {
			panic(http.ErrAbortHandler)
		}
		xid, _ := gtx.XIDFromContext(r.Context())
		_, _ = io.WriteString(w, xid)
	})))
	entry := httptest.NewUnstartedServer(httpgtx.Server(httpgtx.WithLogger(quiet))(mux))
	entry.Config.ErrorLog = log.New(io.Discard, "", 0)
	entry.Start()
	t.Cleanup(entry.Close)
	c.entry = entry.URL
	return c
}

func startKratos(t *testing.T, endpoint func() (*url.URL, error), run, stop func(context.Context) error) string {
	t.Helper()
	u, err := endpoint()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run(context.Background()) }()
	t.Cleanup(func() {
		_ = stop(context.Background())
		<-done
	})
	return u.Host
}

// order posts one order through the chain and returns the status and body.
func (c *chain) order(tag, cmd string) (int, string, error) {
	resp, err := http.Post(fmt.Sprintf("%s/orders?tag=%s&cmd=%s", c.entry, tag, cmd), "text/plain", nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// checkHops checks that every hop of tag saw xid.
func (c *chain) checkHops(t *testing.T, tag, xid string) {
	t.Helper()
	want := []string{"http=" + xid, "kratos-grpc=" + xid, "kratos-http=" + xid, "nats=" + xid}
	if got := c.hops.get(tag); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("hops of %s saw %q, want %q", tag, got, want)
	}
}

// waitStatus waits until the coordinator reports xid in want.
func (c *chain) waitStatus(t *testing.T, xid string, want tcv1.GlobalStatus) *tcv1.Transaction {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.tc.GetTransaction(context.Background(), &tcv1.GetTransactionRequest{Xid: xid})
		if err == nil && resp.GetTransaction().GetStatus() == want {
			return resp.GetTransaction()
		}
		if time.Now().After(deadline) {
			t.Fatalf("coordinator has %s as %v (%v), want %v", xid, resp.GetTransaction().GetStatus(), err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestChain(t *testing.T) {
	c := startChain(t)
	all := func(op string) []string {
		return []string{op + " " + resGRPC, op + " " + resHTTP, op + " " + resNATS}
	}

	t.Run("commit", func(t *testing.T) {
		code, xid, err := c.order("commit", "")
		if err != nil || code != 200 {
			t.Fatalf("order answered %d %q, %v; want 200", code, xid, err)
		}
		c.checkHops(t, "commit", xid)
		tx := c.waitStatus(t, xid, tcv1.GlobalStatus_COMMITTED)
		if tx.GetName() != "place-order" {
			t.Fatalf("coordinator names the transaction %q, want place-order", tx.GetName())
		}
		var resources []string
		for _, b := range tx.GetBranches() {
			if b.GetXid() != xid {
				t.Fatalf("branch %d of %s has XID %s", b.GetBranchId(), xid, b.GetXid())
			}
			resources = append(resources, b.GetResourceId())
		}
		if !sameSet(resources, []string{resGRPC, resHTTP, resNATS}) {
			t.Fatalf("coordinator has branches on %q under %s, want one per hop", resources, xid)
		}
		c.p2.wait(t, xid, all("commit")...)
	})

	t.Run("rollback on error", func(t *testing.T) {
		code, body, err := c.order("fail", cmdFailLast)
		if err != nil || code != http.StatusConflict || !strings.Contains(body, "out of stock") {
			t.Fatalf("order answered %d %q, %v; want 409 out of stock", code, body, err)
		}
		hops := c.hops.get("fail")
		if len(hops) != 4 {
			t.Fatalf("hops saw %q, want four", hops)
		}
		xid := strings.TrimPrefix(hops[0], "http=")
		c.checkHops(t, "fail", xid)
		c.waitStatus(t, xid, tcv1.GlobalStatus_ROLLBACKED)
		c.p2.wait(t, xid, all("rollback")...)
	})

	t.Run("rollback on panic", func(t *testing.T) {
		if _, _, err := c.order("panic", cmdPanicFirst); err == nil {
			t.Fatal("a panicking handler's request got an answer")
		}
		hops := c.hops.get("panic")
		if len(hops) != 4 {
			t.Fatalf("hops saw %q, want four", hops)
		}
		xid := strings.TrimPrefix(hops[0], "http=")
		c.checkHops(t, "panic", xid)
		c.waitStatus(t, xid, tcv1.GlobalStatus_ROLLBACKED)
		c.p2.wait(t, xid, all("rollback")...)
	})

	// Every order here is a real transaction on the coordinator's SQLite
	// store with three branches, so the chain runs 50 at once; the transport
	// tests run 200 concurrent calls each.
	t.Run("concurrent", func(t *testing.T) {
		const n = 50
		var wg sync.WaitGroup
		xids := make([]string, n)
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, xid, err := c.order(fmt.Sprintf("c%d", i), "")
				if err != nil || code != 200 {
					errs <- fmt.Errorf("order %d answered %d %q, %v", i, code, xid, err)
					return
				}
				xids[i] = xid
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		distinct := map[string]bool{}
		for i, xid := range xids {
			c.checkHops(t, fmt.Sprintf("c%d", i), xid)
			distinct[xid] = true
		}
		if len(distinct) != n {
			t.Fatalf("%d orders ran in %d transactions, want %d", n, len(distinct), n)
		}
		for _, xid := range xids {
			c.p2.wait(t, xid, all("commit")...)
		}
	})
}
