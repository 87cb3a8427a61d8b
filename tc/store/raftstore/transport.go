package raftstore

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The first byte of every connection to a node's port says what it
// carries: Raft's own protocol, or calls forwarded to the leader (see
// forward.go). Raft's transport never sees the byte.
const (
	connRaft    byte = 'R'
	connForward byte = 'F'
)

// handshakeTimeout bounds the wait for a new connection's first byte.
const handshakeTimeout = 5 * time.Second

// mux accepts connections on the node's one TCP port and routes each by its
// first byte: Raft's to the stream layer's Accept, forwarded calls to
// handle, on a goroutine mux owns until Close.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	handle    func(net.Conn)

	raftConns chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once

	mu    sync.Mutex
	conns map[net.Conn]struct{} // forwarded-call connections being served
	wg    sync.WaitGroup
}

func newMux(ln net.Listener, advertise net.Addr) *mux {
	return &mux{
		ln:        ln,
		advertise: advertise,
		raftConns: make(chan net.Conn),
		closed:    make(chan struct{}),
		conns:     make(map[net.Conn]struct{}),
	}
}

// serve accepts until Close; start it once handle is set.
func (m *mux) serve() {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			c, err := m.ln.Accept()
			if err != nil {
				select {
				case <-m.closed:
					return
				default:
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				return
			}
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.route(c)
			}()
		}
	}()
}

func (m *mux) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(handshakeTimeout))
	var first [1]byte
	if _, err := c.Read(first[:]); err != nil {
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	switch first[0] {
	case connRaft:
		select {
		case m.raftConns <- c:
		case <-m.closed:
			_ = c.Close()
		}
	case connForward:
		m.mu.Lock()
		select {
		case <-m.closed:
			m.mu.Unlock()
			_ = c.Close()
			return
		default:
		}
		m.conns[c] = struct{}{}
		m.mu.Unlock()
		m.handle(c)
		m.mu.Lock()
		delete(m.conns, c)
		m.mu.Unlock()
		_ = c.Close()
	default:
		_ = c.Close()
	}
}

// close stops accepting, closes every forwarded-call connection and waits
// for their goroutines.
func (m *mux) close() {
	m.closeOnce.Do(func() {
		close(m.closed)
		_ = m.ln.Close()
		m.mu.Lock()
		for c := range m.conns {
			_ = c.Close()
		}
		m.mu.Unlock()
	})
	m.wg.Wait()
}

// raftLayer is the raft.StreamLayer of a mux.
type raftLayer struct{ m *mux }

var _ raft.StreamLayer = raftLayer{}

// Accept implements net.Listener.
func (l raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.raftConns:
		return c, nil
	case <-l.m.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener; the mux closes the port itself.
func (l raftLayer) Close() error { return nil }

// Addr implements net.Listener.
func (l raftLayer) Addr() net.Addr { return l.m.advertise }

// Dial implements raft.StreamLayer.
func (l raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dialAs(string(address), connRaft, timeout)
}

// dialAs connects to a node's port for traffic of kind.
func dialAs(address string, kind byte, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", address, timeout)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{kind}); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}
