package natsgtx_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/gtx-io/gtx/interceptors/natsgtx"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/modes/msg"
)

// Environment of the consumer process TestConsumerKilled starts.
const (
	helperConsumer = "GTX_NATSGTX_CONSUMER_HELPER"
	helperURL      = "GTX_NATSGTX_HELPER_URL"
	helperDB       = "GTX_NATSGTX_HELPER_DB"
	helperStream   = "GTX_NATSGTX_HELPER_STREAM"
	// markApplying is printed inside the apply, its local transaction open.
	markApplying = "gtx-natsgtx-helper: applying"
)

// TestConsumerKilled kills (SIGKILL) a consumer process in the middle of
// applying a message, its local transaction open and the message not
// acknowledged; a consumer started after it gets the message again and
// applies it exactly once.
func TestConsumerKilled(t *testing.T) {
	url := os.Getenv("GTX_TEST_NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	nc := gtxtest.ConnectNATS(t, url)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := strings.ToLower(nuid.Next())
	stream := "GTXK_" + strings.ToUpper(id)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"k." + id}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), stream) })
	if _, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: "points", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "c.db") + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	d := consumerDB{msg.SQLite, db}
	inbox := d.setup(t)
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "k." + id, Data: []byte("m1"), Header: nats.Header{"Key": {"k"}}}, jetstream.WithMsgID("m1")); err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestConsumerHelperProcess$")
	cmd.Env = append(os.Environ(), helperConsumer+"=1", helperURL+"="+url, helperDB+"="+path, helperStream+"="+stream)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	seen := false
	for lines.Scan() {
		if lines.Text() == markApplying {
			seen = true
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, out)
	_ = cmd.Wait()
	if !seen {
		t.Fatal("the consumer process ended before it applied the message")
	}
	if n := d.count(t, ""); n != 0 {
		t.Fatalf("%d rows committed by the killed consumer", n)
	}

	cons, err := js.Consumer(ctx, stream, "points")
	if err != nil {
		t.Fatal(err)
	}
	cfg := natsgtx.DefaultConsumerConfig()
	cfg.Logger = quietLog
	c, err := natsgtx.NewConsumer(inbox, js, func(ctx context.Context, tx *sql.Tx, m jetstream.Msg) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO points (id, k) VALUES (?, ?)", string(m.Data()), m.Headers().Get("Key"))
		return err
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx, cons) }()
	poll.Until(t, "the message applied after the kill", 0, func() bool { return d.count(t, "") == 1 })
	poll.Until(t, "the message acknowledged", 0, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := d.count(t, ""); n != 1 {
		t.Fatalf("the message was applied %d times", n)
	}
}

// TestConsumerHelperProcess is the consumer process of TestConsumerKilled;
// it does nothing in a normal run.
func TestConsumerHelperProcess(t *testing.T) {
	if os.Getenv(helperConsumer) == "" {
		t.Skip("helper process for TestConsumerKilled")
	}
	if err := runConsumerHelper(); err != nil {
		fmt.Fprintln(os.Stderr, "gtx-natsgtx-helper:", err)
		os.Exit(2)
	}
}

func runConsumerHelper() error {
	ctx := context.Background()
	nc, err := nats.Connect(os.Getenv(helperURL))
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", os.Getenv(helperDB))
	if err != nil {
		return err
	}
	cfg := msg.DefaultInboxConfig()
	cfg.Dialect = msg.SQLite
	inbox, err := msg.OpenInbox(ctx, db, cfg)
	if err != nil {
		return err
	}
	cons, err := js.Consumer(ctx, os.Getenv(helperStream), "points")
	if err != nil {
		return err
	}
	ccfg := natsgtx.DefaultConsumerConfig()
	ccfg.Logger = quietLog
	c, err := natsgtx.NewConsumer(inbox, js, func(ctx context.Context, tx *sql.Tx, m jetstream.Msg) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO points (id, k) VALUES (?, ?)", string(m.Data()), m.Headers().Get("Key")); err != nil {
			return err
		}
		fmt.Println(markApplying)
		// Wait to be killed, the local transaction open.
		select {}
	}, ccfg)
	if err != nil {
		return err
	}
	return c.Run(ctx, cons)
}
