package etcdlock_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/gtx-io/gtx/internal/poll"
)

// server is a one-member etcd cluster on 127.0.0.1, with its data in a
// directory of the test, so that it survives a restart.
type server struct {
	t                testing.TB
	clientPort, peer int
	dir              string
	cmd              *exec.Cmd
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startServer(t testing.TB) *server {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("etcd is not installed: apt-get install etcd-server, or run ./scripts/test")
	}
	s := &server{t: t, clientPort: freePort(t), peer: freePort(t), dir: t.TempDir()}
	t.Cleanup(s.stop) // also when start gives up on a server it started
	s.start()
	return s
}

func (s *server) addr() string { return "127.0.0.1:" + strconv.Itoa(s.clientPort) }

func (s *server) start() {
	s.t.Helper()
	client := "http://" + s.addr()
	peer := "http://127.0.0.1:" + strconv.Itoa(s.peer)
	// A short heartbeat and election make the server ready fast and allow
	// leases of one second.
	s.cmd = exec.Command("etcd", "--name", "gtx", "--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "gtx="+peer, "--heartbeat-interval", "20", "--election-timeout", "200",
		"--log-level", "error", "--logger", "zap")
	log, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer log.Close()
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	cli := connect(s.t, s.addr())
	poll.Until(s.t, "etcd on "+s.addr()+" to answer", 60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Get(ctx, "health")
		return err == nil
	})
	_ = cli.Close()
}

func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

func connect(t testing.TB, addr string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}
