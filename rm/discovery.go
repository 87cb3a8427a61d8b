package rm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// Resolver finds the addresses (host:port) of the coordinator replicas.
type Resolver interface {
	Resolve(ctx context.Context) ([]string, error)
}

// StaticResolver is a fixed list of coordinator addresses.
type StaticResolver []string

// Resolve implements Resolver.
func (r StaticResolver) Resolve(context.Context) ([]string, error) { return slices.Clone(r), nil }

// DNSResolver finds coordinators in DNS: the A and AAAA records of Name
// with Port, or, when Service is set, the SRV records of
// _Service._Proto.Name, each with its own port. A Kubernetes headless
// service answers both with one record per ready pod.
type DNSResolver struct {
	Name string
	Port int
	// Service and Proto select SRV records ("grpc", "tcp" for
	// _grpc._tcp.Name); Port is then ignored.
	Service, Proto string
	// Resolver is the DNS client; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

// Resolve implements Resolver. Addresses come back sorted, without
// duplicates.
func (r DNSResolver) Resolve(ctx context.Context) ([]string, error) {
	res := r.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	var out []string
	if r.Service != "" {
		_, srvs, err := res.LookupSRV(ctx, r.Service, r.Proto, r.Name)
		if err != nil {
			return nil, fmt.Errorf("rm: resolve SRV _%s._%s.%s: %w", r.Service, r.Proto, r.Name, err)
		}
		for _, s := range srvs {
			out = append(out, net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port))))
		}
	} else {
		hosts, err := res.LookupHost(ctx, r.Name)
		if err != nil {
			return nil, fmt.Errorf("rm: resolve %s: %w", r.Name, err)
		}
		for _, h := range hosts {
			out = append(out, net.JoinHostPort(h, strconv.Itoa(r.Port)))
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Discovery makes a Manager follow a changing set of coordinators.
type Discovery struct {
	// Resolver finds the coordinators' addresses.
	Resolver Resolver
	// Dial returns a client of the coordinator at addr and what closes it
	// when the coordinator goes away; GRPCDialer makes one.
	Dial func(addr string) (tcv1.CoordinatorClient, io.Closer, error)
	// Interval is how often Resolver is asked again; 0 means 10s.
	Interval time.Duration
}

func (d *Discovery) validate() error {
	switch {
	case d.Resolver == nil:
		return errors.New("Discovery.Resolver is nil")
	case d.Dial == nil:
		return errors.New("Discovery.Dial is nil: use GRPCDialer")
	case d.Interval < 0:
		return fmt.Errorf("Discovery.Interval must not be negative, got %v", d.Interval)
	}
	return nil
}

func (d *Discovery) interval() time.Duration {
	if d.Interval == 0 {
		return 10 * time.Second
	}
	return d.Interval
}

// GRPCDialer returns a Discovery.Dial that opens a gRPC client connection
// with FastReconnect and then opts (transport credentials among them).
func GRPCDialer(opts ...grpc.DialOption) func(addr string) (tcv1.CoordinatorClient, io.Closer, error) {
	opts = append([]grpc.DialOption{FastReconnect()}, opts...)
	return func(addr string) (tcv1.CoordinatorClient, io.Closer, error) {
		conn, err := grpc.NewClient(addr, opts...)
		if err != nil {
			return nil, nil, fmt.Errorf("rm: dial coordinator %s: %w", addr, err)
		}
		return tcv1.NewCoordinatorClient(conn), conn, nil
	}
}

// release stops a discovered coordinator's attach loop, waits for it, and
// closes its connection.
func (c *coordinator) release(log *slog.Logger) {
	if c.stop != nil {
		c.stop()
		<-c.done
	}
	if c.closer != nil {
		if err := c.closer.Close(); err != nil {
			log.Debug("closing a coordinator connection failed", "addr", c.addr, "err", err)
		}
	}
}

// discover follows Config.Discovery until ctx is done.
func (m *Manager) discover(ctx context.Context) {
	defer m.wg.Done()
	d := m.cfg.Discovery
	t := time.NewTicker(d.interval())
	defer t.Stop()
	for {
		m.refresh(ctx, d)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refresh resolves the coordinators once, attaches to the new ones and
// detaches from those gone. An error or an empty answer keeps the current
// set: losing every coordinator to a DNS hiccup would stop phase 2.
func (m *Manager) refresh(ctx context.Context, d *Discovery) {
	rctx, cancel := context.WithTimeout(ctx, d.interval())
	addrs, err := d.Resolver.Resolve(rctx)
	cancel()
	if err != nil || len(addrs) == 0 {
		if ctx.Err() == nil {
			m.log.Warn("coordinator discovery found nothing; keeping the coordinators known", "err", err)
		}
		return
	}
	want := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		want[a] = true
	}
	m.mu.Lock()
	if m.state != stateStarted {
		m.mu.Unlock()
		return
	}
	var keep, gone []*coordinator
	have := make(map[string]bool)
	for _, c := range m.conns {
		if c.addr == "" || want[c.addr] {
			keep = append(keep, c)
			have[c.addr] = true
		} else {
			gone = append(gone, c)
		}
	}
	m.mu.Unlock()
	var added []*coordinator
	for _, a := range addrs {
		if have[a] {
			continue
		}
		client, closer, err := d.Dial(a)
		if err != nil {
			m.log.Warn("dialing a discovered coordinator failed", "addr", a, "err", err)
			continue
		}
		added = append(added, &coordinator{addr: a, client: client, closer: closer, done: make(chan struct{})})
	}
	if len(added) == 0 && len(gone) == 0 {
		return
	}
	m.mu.Lock()
	if m.state != stateStarted {
		m.mu.Unlock()
		for _, c := range added {
			c.release(m.log)
		}
		return
	}
	for _, c := range added {
		c.index = m.nextIndex
		m.nextIndex++
		var cctx context.Context
		cctx, c.stop = context.WithCancel(m.ctx)
		m.wg.Add(1)
		go func() {
			defer close(c.done)
			m.attachLoop(cctx, c)
		}()
		m.log.Info("coordinator discovered", "addr", c.addr, "coordinator", c.index)
	}
	// conns is replaced, never changed in place: unary reads a snapshot.
	m.conns = append(slices.Clone(keep), added...)
	m.notifyLocked()
	m.mu.Unlock()
	for _, c := range gone {
		m.log.Info("coordinator gone from discovery, detaching", "addr", c.addr, "coordinator", c.index)
		c.release(m.log)
	}
}
