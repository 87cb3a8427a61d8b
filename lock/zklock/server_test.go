package zklock_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gtx-io/gtx/internal/poll"
)

// zkJar is where Debian's zookeeper package puts the server.
const zkJar = "/usr/share/java/zookeeper.jar"

// server is a standalone ZooKeeper server on 127.0.0.1, with its data in a
// directory of the test, so that it survives a restart.
type server struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
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

// startServer starts a server with a 50 ms tick, so that sessions may time
// out after as little as 100 ms.
func startServer(t testing.TB) *server {
	t.Helper()
	if _, err := os.Stat(zkJar); err != nil {
		t.Skipf("ZooKeeper is not installed (%v): apt-get install zookeeper, or run ./scripts/test", err)
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Skip("java is not installed: apt-get install zookeeper, or run ./scripts/test")
	}
	s := &server{t: t, port: freePort(t), dir: t.TempDir()}
	cfg := fmt.Sprintf("tickTime=50\ndataDir=%s\nclientPortAddress=127.0.0.1\nclientPort=%d\nadmin.enableServer=false\nminSessionTimeout=100\nmaxSessionTimeout=60000\n4lw.commands.whitelist=ruok\n",
		filepath.Join(s.dir, "data"), s.port)
	if err := os.WriteFile(filepath.Join(s.dir, "zoo.cfg"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop) // also when start gives up on a server it started
	s.start()
	return s
}

func (s *server) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *server) start() {
	s.t.Helper()
	s.cmd = exec.Command("java", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dzookeeper.log.dir="+s.dir, "-cp", zkJar+":/etc/zookeeper/conf",
		"org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(s.dir, "zoo.cfg"))
	log, err := os.Create(filepath.Join(s.dir, "server.log"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer log.Close()
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	poll.Until(s.t, "ZooKeeper on "+s.addr()+" to answer", 60*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", s.addr(), time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("ruok")); err != nil {
			return false
		}
		b := make([]byte, 4)
		n, _ := c.Read(b)
		return string(b[:n]) == "imok"
	})
}

func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// connect opens a session of the given timeout to the servers at addr.
func connect(t testing.TB, addr string, session time.Duration) *zk.Conn {
	t.Helper()
	conn, _, err := zk.Connect([]string{addr}, session, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	poll.Until(t, "a ZooKeeper session", 30*time.Second, func() bool { return conn.State() == zk.StateHasSession })
	return conn
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}
