package raftstore

import (
	"net"
	"syscall"
)

// idleAlive reports whether an idle connection is still open: a
// non-blocking peek that finds neither the end of the stream nor an error
// (nor a byte the other node should not have sent unasked).
func idleAlive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		// EAGAIN: nothing to read, still open. A byte, the end of the
		// stream (0, nil) or an error such as ECONNRESET: not reusable.
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && alive
}
