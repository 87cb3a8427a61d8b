package raftstore

import (
	"net"
	"testing"
	"time"

	"github.com/gtx-io/gtx/internal/poll"
)

// An idle forwarding connection is reused only while the other end keeps
// it open: a request written into a connection the other node had closed
// would leave its outcome unknown.
func TestIdleAlive(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := lis.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var peer net.Conn
	select {
	case peer = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
	}
	if !idleAlive(c) {
		t.Fatal("an open idle connection is reported dead")
	}
	if _, err := peer.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "an unasked byte to make the connection unusable", 0, func() bool { return !idleAlive(c) })
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil || b[0] != 1 {
		t.Fatalf("the probe consumed the byte: %v %v", b, err)
	}
	if !idleAlive(c) {
		t.Fatal("an open idle connection with nothing to read is reported dead")
	}
	peer.Close()
	poll.Until(t, "a closed connection to be reported dead", 0, func() bool { return !idleAlive(c) })
}
