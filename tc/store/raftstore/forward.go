package raftstore

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The forwarding protocol runs on connections whose first byte is
// connForward. The caller sends request frames and reads one reply frame
// for each, in order: a frame is a uvarint length, a kind (or reply
// status) byte and a body of length-1 bytes.
const (
	fwdApply   byte = 1 // body: an encoded command; reply: an encoded result
	fwdQuery   byte = 2 // body: an encoded query; reply: an encoded result
	fwdAdd     byte = 3 // body: id, address; reply: empty
	fwdRemove  byte = 4 // body: id; reply: empty
	fwdMembers byte = 5 // body: empty; reply: encoded members

	replyOK        byte = 0 // body as the kind says
	replyNotLeader byte = 1 // body: the address of the leader this node knows, or empty
	replyError     byte = 2 // body: what went wrong
)

// maxFrame bounds a frame, so a peer cannot make a node allocate without
// limit.
const maxFrame = 16 << 20

// dialTimeout bounds connecting to another node.
const dialTimeout = 3 * time.Second

func writeFrame(w *bufio.Writer, kind byte, body []byte) error {
	var hdr [binary.MaxVarintLen64 + 1]byte
	n := binary.PutUvarint(hdr[:], uint64(len(body)+1))
	hdr[n] = kind
	if _, err := w.Write(hdr[:n+1]); err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	return w.Flush()
}

func readFrame(r *bufio.Reader) (byte, []byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, nil, err
	}
	if n == 0 || n > maxFrame {
		return 0, nil, fmt.Errorf("%w: frame of %d bytes", errCorrupt, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return b[0], b[1:], nil
}

// errNotSent says a forwarded call failed before its request could have
// reached the other node, so it is safe to send again.
var errNotSent = errors.New("raftstore: request not sent")

// forwarder is the client side: it keeps idle connections per address.
type forwarder struct {
	mu     sync.Mutex
	idle   map[string][]*fconn
	closed bool
}

type fconn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
	// spoiled is set when the caller's context ended during a call, whose
	// watcher may have moved the deadline into the past: it is not reused.
	spoiled bool
}

// maxIdle bounds the idle connections kept per address.
const maxIdle = 32

func newForwarder() *forwarder { return &forwarder{idle: make(map[string][]*fconn)} }

func (f *forwarder) get(addr string) (*fconn, bool, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, false, ErrClosed
	}
	for list := f.idle[addr]; len(list) > 0; list = f.idle[addr] {
		c := list[len(list)-1]
		f.idle[addr] = list[:len(list)-1]
		// An idle connection the other node closed meanwhile would take the
		// request and then fail its read, leaving its outcome unknown: find
		// out before sending.
		if !idleAlive(c.c) {
			_ = c.c.Close()
			continue
		}
		f.mu.Unlock()
		return c, true, nil
	}
	f.mu.Unlock()
	c, err := dialAs(addr, connForward, dialTimeout)
	if err != nil {
		return nil, false, fmt.Errorf("%w: dial %s: %w", errNotSent, addr, err)
	}
	return &fconn{c: c, br: bufio.NewReader(c), bw: bufio.NewWriter(c)}, false, nil
}

func (f *forwarder) put(addr string, c *fconn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || len(f.idle[addr]) >= maxIdle {
		_ = c.c.Close()
		return
	}
	f.idle[addr] = append(f.idle[addr], c)
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for _, list := range f.idle {
		for _, c := range list {
			_ = c.c.Close()
		}
	}
	f.idle = nil
}

// call sends one request to addr and returns the reply. An error wrapping
// errNotSent means the request never left; any other error leaves its
// outcome unknown: the other node may have applied it.
func (f *forwarder) call(ctx context.Context, addr string, kind byte, body []byte) (byte, []byte, error) {
	c, _, err := f.get(addr)
	if err != nil {
		return 0, nil, err
	}
	st, reply, err := roundTrip(ctx, c, kind, body)
	if err != nil {
		_ = c.c.Close()
		return 0, nil, err
	}
	f.put(addr, c)
	return st, reply, nil
}

func roundTrip(ctx context.Context, c *fconn, kind byte, body []byte) (byte, []byte, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.c.SetDeadline(dl)
	} else {
		_ = c.c.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = c.c.SetDeadline(time.Unix(1, 0)) })
	defer func() { c.spoiled = !stop() }()
	if err := writeFrame(c.bw, kind, body); err != nil {
		return 0, nil, fmt.Errorf("%w: %w", errNotSent, err)
	}
	st, reply, err := readFrame(c.br)
	if err != nil {
		// The request was written: even a connection closed before a byte
		// of the answer may have carried it to a node that applied it
		// before going down, so it must not be sent again.
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		return 0, nil, fmt.Errorf("raftstore: forwarded call: outcome unknown: %w", err)
	}
	return st, reply, nil
}

// serveForward answers one connection's requests until it closes.
func (s *Store) serveForward(c net.Conn) {
	br, bw := bufio.NewReader(c), bufio.NewWriter(c)
	for {
		kind, body, err := readFrame(br)
		if err != nil {
			return
		}
		st, reply := s.handleForward(kind, body)
		if err := writeFrame(bw, st, reply); err != nil {
			return
		}
	}
}

// handleForward runs one forwarded request here, when this node leads.
func (s *Store) handleForward(kind byte, body []byte) (byte, []byte) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ApplyTimeout)
	defer cancel()
	var (
		res   *result
		retry bool
		err   error
	)
	switch kind {
	case fwdApply, fwdQuery:
		c, derr := decodeCommand(body)
		if derr != nil {
			return replyError, []byte(derr.Error())
		}
		if (kind == fwdQuery) != (c.op >= opQuery) {
			return replyError, []byte(fmt.Sprintf("%v sent as the wrong kind", c.op))
		}
		if !s.isLeader() {
			return s.notLeader()
		}
		res, retry, err = s.local(ctx, c, body)
	case fwdAdd, fwdRemove, fwdMembers:
		if !s.isLeader() {
			return s.notLeader()
		}
		var reply []byte
		reply, retry, err = s.membership(ctx, kind, body)
		if err == nil && !retry {
			return replyOK, reply
		}
	default:
		return replyError, []byte(fmt.Sprintf("unknown request kind %d", kind))
	}
	switch {
	case retry:
		return s.notLeader()
	case err != nil:
		return replyError, []byte(err.Error())
	}
	return replyOK, encodeResult(res)
}

func (s *Store) notLeader() (byte, []byte) {
	addr, _ := s.raft.LeaderWithID()
	if string(addr) == s.addr {
		addr = ""
	}
	return replyNotLeader, []byte(addr)
}
