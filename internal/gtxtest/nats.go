package gtxtest

import (
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// StartNATS starts an embedded NATS server with JetStream on a random
// loopback port, stopped when t ends, and returns its URL.
func StartNATS(t testing.TB) string {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("gtxtest: embedded NATS server did not start within 10s")
	}
	return ns.ClientURL()
}

// NATSServers returns the URLs the NATS tests run against: an embedded
// server, which runs anywhere, and the machine's server at GTX_TEST_NATS_URL
// (default nats://127.0.0.1:4222) when it answers.
func NATSServers(t testing.TB) map[string]string {
	t.Helper()
	urls := map[string]string{"embedded": StartNATS(t)}
	machine := os.Getenv("GTX_TEST_NATS_URL")
	if machine == "" {
		machine = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(machine, nats.Timeout(2*time.Second))
	if err != nil {
		t.Logf("gtxtest: the machine's NATS at %s does not answer (%v); running against the embedded server only", machine, err)
		return urls
	}
	nc.Close()
	urls["machine"] = machine
	return urls
}

// ConnectNATS connects to url, closed when t ends.
func ConnectNATS(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
