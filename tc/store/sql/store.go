package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gtx-io/gtx/tc"
)

// Store is a tc.Store and a tc.LockStore kept in a SQL database through
// gorm. It is safe for concurrent use, and several Stores (in several
// coordinator replicas) may share one MySQL or PostgreSQL database.
type Store struct {
	db      *gorm.DB
	dialect string
	log     *slog.Logger
	// writes batches the hot-path writes (group commit).
	writes *groupWriter
	// owned is true when Open created the connection pool, so Close closes
	// it.
	owned bool
}

var (
	_ tc.Store         = (*Store)(nil)
	_ tc.LockStore     = (*Store)(nil)
	_ tc.EmptyFinisher = (*Store)(nil)
	_ tc.Decider       = (*Store)(nil)
	_ tc.LockingAdder  = (*Store)(nil)
)

// Open connects to the database cfg names, creates or updates the schema,
// and returns a Store that Close shuts down. Zero fields of cfg other than
// Driver and DSN take their DefaultConfig values.
//
// For SQLite, Open turns on WAL journaling, sets synchronous to
// cfg.SQLiteSynchronous and the busy timeout to cfg.SQLiteBusyTimeout on
// every connection, and uses a single connection: concurrent callers queue
// for it inside the process instead of failing with SQLITE_BUSY.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var dialector gorm.Dialector
	switch cfg.Driver {
	case DriverSQLite:
		dialector = sqlite.Open(sqliteDSN(cfg))
	case DriverMySQL:
		dialector = mysql.Open(cfg.DSN)
	case DriverPostgres:
		dialector = postgres.Open(cfg.DSN)
	}
	gormCfg := &gorm.Config{
		SkipDefaultTransaction: true,
		Logger: quietLogger{Interface: logger.NewSlogLogger(cfg.Logger, logger.Config{
			SlowThreshold:             cfg.SlowQuery,
			LogLevel:                  logger.Warn,
			IgnoreRecordNotFoundError: true,
			ParameterizedQueries:      true,
		}), level: logger.Warn, slow: cfg.SlowQuery},
	}
	// Switching a new SQLite file to WAL can fail with SQLITE_BUSY without
	// waiting, when another process opens it at the same moment.
	var db *gorm.DB
	err := retry(ctx, cfg.Logger, func() error {
		var err error
		db, err = gorm.Open(dialector, gormCfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s database: %w", cfg.Driver, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s database: %w", cfg.Driver, err)
	}
	if cfg.Driver == DriverSQLite {
		sqlDB.SetMaxOpenConns(1)
		sqlDB.SetMaxIdleConns(1)
		sqlDB.SetConnMaxLifetime(0)
		sqlDB.SetConnMaxIdleTime(0)
	} else {
		sqlDB.SetMaxOpenConns(cfg.MaxOpenConns)
		sqlDB.SetMaxIdleConns(cfg.MaxIdleConns)
		sqlDB.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	}
	lanes := cfg.WriteLanes
	if cfg.Driver == DriverSQLite {
		lanes = 1
	}
	s := newStore(db, cfg.Logger, lanes, cfg.MaxBatch)
	s.owned = true
	if err := s.Ping(ctx); err != nil {
		sqlDB.Close()
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		sqlDB.Close()
		return nil, err
	}
	return s, nil
}

// New returns a Store that uses db, which the caller keeps owning: Close
// does not close it, and New does not create the schema (call Migrate).
//
// A SQLite db must allow at most one open connection (or use
// "_txlock=immediate"), since SQLite fails rather than waits when two
// connections both try to turn a read transaction into a write. WAL
// journaling, as Open's uses, is best: in rollback-journal mode a COMMIT
// fails with SQLITE_BUSY when another connection or process reads for
// longer than the busy timeout. SQLite then keeps the transaction open, so
// the store sends ROLLBACK on that connection (or closes it, when the
// ROLLBACK fails too) before it goes back to the pool; the writes of the
// transaction run again, as on any contention, and fail with the
// SQLITE_BUSY error when the file stays busy.
//
// Its writes are batched as Open's are with DefaultConfig: one batch at a
// time on SQLite, DefaultConfig().WriteLanes at a time otherwise.
func New(db *gorm.DB) *Store {
	d := DefaultConfig()
	lanes := d.WriteLanes
	if db.Dialector.Name() == DriverSQLite {
		lanes = 1
	}
	return newStore(db, d.Logger, lanes, d.MaxBatch)
}

// newStore returns a Store on db whose writes run in up to lanes batches
// of up to maxBatch writes at a time.
func newStore(db *gorm.DB, log *slog.Logger, lanes, maxBatch int) *Store {
	db = db.Session(&gorm.Session{SkipDefaultTransaction: true, NewDB: true})
	return &Store{
		db:      db,
		dialect: db.Dialector.Name(),
		log:     log,
		writes:  newGroupWriter(db, log, lanes, maxBatch),
	}
}

// Migration serialization: replicas starting together on an empty database
// take turns, so that none fails on a table or index another just created.
const (
	// migrateLockName names the MySQL GET_LOCK lock.
	migrateLockName = "gtx_sqlstore_migrate"
	// migrateLockKey is the PostgreSQL advisory lock ("gtx_migr" in ASCII).
	migrateLockKey int64 = 0x6774785f6d696772
	// migrateLockWait is how long a replica waits for another's migration.
	migrateLockWait = 60 * time.Second
)

// Migrate creates the tables and indexes the store needs, and adds what an
// older version of them lacks. It is idempotent, and replicas may run it at
// the same time: on PostgreSQL it runs in a transaction holding an advisory
// lock, on MySQL under GET_LOCK, on SQLite in a write transaction. Open
// calls it.
func (s *Store) Migrate(ctx context.Context) error {
	db := s.db.WithContext(ctx)
	var err error
	switch s.dialect {
	case DriverPostgres:
		err = db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", migrateLockKey).Error; err != nil {
				return fmt.Errorf("take the migration lock: %w", err)
			}
			return s.autoMigrate(tx)
		})
	case DriverMySQL:
		// MySQL commits DDL implicitly, so the lock is the connection's,
		// not a transaction's.
		err = db.Connection(func(conn *gorm.DB) error {
			// Every statement starts afresh on the connection.
			conn = conn.Session(&gorm.Session{NewDB: true})
			var got sql.NullInt64
			if err := conn.Raw("SELECT GET_LOCK(?, ?)", migrateLockName, int(migrateLockWait.Seconds())).Scan(&got).Error; err != nil {
				return fmt.Errorf("take the migration lock: %w", err)
			}
			if got.Int64 != 1 {
				return fmt.Errorf("another replica held the migration lock %q for over %v", migrateLockName, migrateLockWait)
			}
			defer conn.Exec("SELECT RELEASE_LOCK(?)", migrateLockName)
			return s.autoMigrate(conn)
		})
	case DriverSQLite:
		err = transaction(db, s.log, nil, s.autoMigrate)
	default:
		err = s.autoMigrate(db)
	}
	if err != nil {
		return fmt.Errorf("sqlstore: create schema: %w", err)
	}
	return nil
}

// autoMigrate creates or updates the tables through db.
func (s *Store) autoMigrate(db *gorm.DB) error {
	if s.dialect == DriverMySQL {
		// Binary collation: XIDs and locked keys compare byte for byte, as
		// they do in Go, never case- or accent-insensitively.
		db = db.Set("gorm:table_options", "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
	}
	return db.AutoMigrate(&globalRow{}, &branchRow{}, &lockRow{})
}

// Ping checks that the database is reachable.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping %s database: %w", s.dialect, err)
	}
	return nil
}

// Close closes the connection pool when Open created it; for a Store from
// New it does nothing.
func (s *Store) Close() error {
	if !s.owned {
		return nil
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("sqlstore: close: %w", err)
	}
	if err := sqlDB.Close(); err != nil {
		return fmt.Errorf("sqlstore: close: %w", err)
	}
	return nil
}

// sqliteDSN adds the pragmas the store relies on to cfg.DSN. They run on
// every new connection, before the caller's own "_pragma" parameters, which
// may override them.
func sqliteDSN(cfg Config) string {
	path, query, _ := strings.Cut(cfg.DSN, "?")
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", cfg.SQLiteBusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+strings.ToUpper(cfg.SQLiteSynchronous)+")")
	q.Set("_txlock", "immediate")
	dsn := path + "?" + q.Encode()
	if query != "" {
		dsn += "&" + query
	}
	return dsn
}

// quietLogger passes gorm's logs on, except errors the store expects and
// handles itself: duplicate keys (a taken XID or lock) and transactions the
// database aborted for contention (retried). It passes on only statements
// it logs (failed, slower than slow, or every one at level Info), since
// gorm's logger renders each statement it is given, logged or not.
type quietLogger struct {
	logger.Interface
	level logger.LogLevel
	slow  time.Duration
}

func (l quietLogger) LogMode(level logger.LogLevel) logger.Interface {
	return quietLogger{Interface: l.Interface.LogMode(level), level: level, slow: l.slow}
}

func (l quietLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if isDuplicateKey(err) || isTransient(err) || errors.Is(err, context.Canceled) || errors.Is(err, gorm.ErrRecordNotFound) {
		err = nil
	}
	if err == nil && l.level < logger.Info && (l.slow <= 0 || time.Since(begin) <= l.slow) {
		return
	}
	l.Interface.Trace(ctx, begin, fc, err)
}
