package natsgtx_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/gtx-io/gtx/interceptors/natsgtx"
	"github.com/gtx-io/gtx/internal/gtxtest"
	"github.com/gtx-io/gtx/internal/poll"
	"github.com/gtx-io/gtx/modes/msg"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// consumerDB is a database for a consumer: a SQLite file, or a fresh
// PostgreSQL database dropped when t ends.
type consumerDB struct {
	dialect msg.Dialect
	db      *sql.DB
}

func (d consumerDB) q(s string) string {
	if d.dialect != msg.Postgres {
		return s
	}
	n := 0
	var b strings.Builder
	for _, r := range s {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func consumerDBs(t *testing.T) map[string]consumerDB {
	t.Helper()
	dbs := map[string]consumerDB{}
	lite, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "c.db")+"?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lite.Close() })
	dbs["sqlite"] = consumerDB{msg.SQLite, lite}
	base := os.Getenv("GTX_TEST_POSTGRES_DSN")
	if base == "" {
		base = "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable"
	}
	name := "gtx_natsc_" + strings.ToLower(nuid.Next())
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err == nil {
			_, err = a.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
			_ = a.Close()
		}
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	pg, err := sql.Open("pgx", strings.Replace(base, "dbname=test", "dbname="+name, 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close() })
	dbs["postgres"] = consumerDB{msg.Postgres, pg}
	return dbs
}

// points is the consumer's business table: one row per application of a
// message, with no key, so applying one twice shows.
func (d consumerDB) setup(t *testing.T) *msg.Inbox {
	t.Helper()
	if _, err := d.db.Exec("CREATE TABLE points (id VARCHAR(255) NOT NULL, k VARCHAR(64) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	cfg := msg.DefaultInboxConfig()
	cfg.Dialect = d.dialect
	in, err := msg.OpenInbox(context.Background(), d.db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func (d consumerDB) count(t *testing.T, where string, args ...any) int {
	t.Helper()
	var n int
	if err := d.db.QueryRow(d.q("SELECT COUNT(*) FROM points "+where), args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConsumerExactlyOnce runs a Consumer on the machine's JetStream: every
// message is applied exactly once even when it is delivered again after an
// apply whose ack was lost (a consumer killed before it acknowledged), a
// message that always fails goes to the dead-letter subject after its
// retry budget, and with an order key the messages of one key are applied
// in order even when one of them fails first.
func TestConsumerExactlyOnce(t *testing.T) {
	url := os.Getenv("GTX_TEST_NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	nc := gtxtest.ConnectNATS(t, url)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range consumerDBs(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			inbox := d.setup(t)
			id := strings.ToLower(nuid.Next())
			stream, dead := "GTXC_"+strings.ToUpper(id), "GTXD_"+strings.ToUpper(id)
			for name, subj := range map[string]string{stream: "c." + id + ".>", dead: "dead." + id} {
				if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj}}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
			}
			cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
				Durable: "points", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			publish := func(key, msgID string) {
				t.Helper()
				m := &nats.Msg{Subject: "c." + id + "." + key, Data: []byte(msgID), Header: nats.Header{"Key": {key}}}
				if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(msgID)); err != nil {
					t.Fatal(err)
				}
			}

			// A delivery applied and committed whose ack never went out:
			// the consumer died right before acknowledging.
			publish("k0", "lost-ack")
			batch, err := cons.Fetch(1)
			if err != nil {
				t.Fatal(err)
			}
			fetched := 0
			for range batch.Messages() {
				fetched++
				if applied, err := inbox.Apply(ctx, "lost-ack", func(ctx context.Context, tx *sql.Tx) error {
					_, err := tx.ExecContext(ctx, d.q("INSERT INTO points (id, k) VALUES (?, ?)"), "lost-ack", "k0")
					return err
				}); err != nil || !applied {
					t.Fatalf("first apply: %v %v", applied, err)
				}
			}
			if fetched != 1 {
				t.Fatalf("fetched %d messages, want 1", fetched)
			}

			var (
				mu       sync.Mutex
				order    = map[string][]string{}
				failures = map[string]int{}
			)
			apply := func(ctx context.Context, tx *sql.Tx, m jetstream.Msg) error {
				msgID := string(m.Data())
				mu.Lock()
				switch {
				case msgID == "poison":
					mu.Unlock()
					return errors.New("poison message")
				case msgID == "k1-3" && failures[msgID] < 2:
					failures[msgID]++
					mu.Unlock()
					return errors.New("transient failure")
				}
				mu.Unlock()
				if _, err := tx.ExecContext(ctx, d.q("INSERT INTO points (id, k) VALUES (?, ?)"), msgID, m.Headers().Get("Key")); err != nil {
					return err
				}
				mu.Lock()
				order[m.Headers().Get("Key")] = append(order[m.Headers().Get("Key")], msgID)
				mu.Unlock()
				return nil
			}
			cfg := natsgtx.DefaultConsumerConfig()
			cfg.MaxAttempts = 3
			cfg.DeadLetter = "dead." + id
			cfg.Backoff = 10 * time.Millisecond
			cfg.OrderKey = func(m jetstream.Msg) string { return m.Headers().Get("Key") }
			cfg.Logger = quietLog
			c, err := natsgtx.NewConsumer(inbox, js, apply, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 10; i++ {
				publish("k1", fmt.Sprintf("k1-%d", i))
				publish("k2", fmt.Sprintf("k2-%d", i))
			}
			publish("k3", "poison")
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- c.Run(runCtx, cons) }()
			poll.Until(t, "every message applied", 0, func() bool { return d.count(t, "") == 21 })
			poll.Until(t, "the dead letter", 0, func() bool {
				s, err := js.Stream(ctx, dead)
				if err != nil {
					return false
				}
				info, err := s.Info(ctx)
				return err == nil && info.State.Msgs == 1
			})
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if n := d.count(t, "WHERE id = ?", "lost-ack"); n != 1 {
				t.Fatalf("the redelivered message was applied %d times", n)
			}
			if n := d.count(t, "WHERE id = ?", "poison"); n != 0 {
				t.Fatal("the poison message left effects")
			}
			s, err := js.Stream(ctx, dead)
			if err != nil {
				t.Fatal(err)
			}
			dl, err := s.GetLastMsgForSubject(ctx, "dead."+id)
			if err != nil {
				t.Fatal(err)
			}
			if string(dl.Data) != "poison" || dl.Header.Get(natsgtx.HeaderDeadAttempts) != "3" || dl.Header.Get(natsgtx.HeaderDeadError) != "poison message" {
				t.Fatalf("dead letter %q with headers %v", dl.Data, dl.Header)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, key := range []string{"k1", "k2"} {
				for i, got := range order[key] {
					if want := fmt.Sprintf("%s-%d", key, i+1); got != want {
						t.Fatalf("key %s applied in order %v", key, order[key])
					}
				}
			}
		})
	}
}

func TestConsumerConfigValidate(t *testing.T) {
	for name, tune := range map[string]func(*natsgtx.ConsumerConfig){
		"no attempts": func(c *natsgtx.ConsumerConfig) { c.MaxAttempts = 0 },
		"no workers":  func(c *natsgtx.ConsumerConfig) { c.Workers = 0 },
		"no backoff":  func(c *natsgtx.ConsumerConfig) { c.Backoff = 0 },
	} {
		cfg := natsgtx.DefaultConsumerConfig()
		tune(&cfg)
		if err := cfg.Validate(); !errors.Is(err, natsgtx.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", name, err)
		}
	}
}
