// Package atgorm opens gorm on AT databases, so that gorm users get AT
// branches by changing the line that opens gorm:
//
//	at.SetDefaults(cfg) // once: the rm.Manager and coordinator client
//	db, err := gorm.Open(atgorm.MySQL(dsn), &gorm.Config{})  // was mysql.Open(dsn)
//	db, err := gorm.Open(atgorm.SQLite(path), &gorm.Config{}) // was sqlite.Open(path)
//	db, err := gorm.Open(atgorm.Postgres(dsn), &gorm.Config{}) // was postgres.Open(dsn)
//
// PostgreSQL also needs the AT dialect registered, by importing package
// atpg (which needs cgo; this package does not):
//
//	import _ "github.com/gtx-io/gtx/rm/at/atpg"
//
// Then every gorm call made with a context that carries an XID
// (db.WithContext(ctx)) runs in a branch of that global transaction.
package atgorm

import (
	"database/sql"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/gtx-io/gtx/rm/at"
)

// MySQL returns gorm's MySQL dialector on the at.DriverMySQL driver, which
// SetDefaults configures. RETURNING is turned off: gorm reads generated keys
// with LastInsertId, which the AT driver reports as MySQL does.
func MySQL(dsn string) gorm.Dialector {
	return mysql.New(mysql.Config{DriverName: at.DriverMySQL, DSN: dsn, DisableWithReturning: true})
}

// SQLite returns gorm's SQLite dialector (github.com/glebarez/sqlite) on the
// at.DriverSQLite driver, which SetDefaults configures. gorm's INSERT ...
// RETURNING is answered by the AT driver from the statement's after image.
func SQLite(dsn string) gorm.Dialector {
	return &sqlite.Dialector{DriverName: at.DriverSQLite, DSN: dsn}
}

// MySQLConn returns gorm's MySQL dialector on db, a database opened with
// at.Open.
func MySQLConn(db *sql.DB) gorm.Dialector {
	return mysql.New(mysql.Config{Conn: db, DisableWithReturning: true})
}

// SQLiteConn returns gorm's SQLite dialector on db, a database opened with
// at.Open.
func SQLiteConn(db *sql.DB) gorm.Dialector {
	return &sqlite.Dialector{Conn: db}
}

// Postgres returns gorm's PostgreSQL dialector (gorm.io/driver/postgres) on
// the at.DriverPostgres driver, which package atpg registers and
// SetDefaults configures. gorm's INSERT ... RETURNING is answered by the AT
// driver from the statement's after image.
func Postgres(dsn string) gorm.Dialector {
	return postgres.New(postgres.Config{DriverName: at.DriverPostgres, DSN: dsn})
}

// PostgresConn returns gorm's PostgreSQL dialector on db, a database opened
// with at.Open.
func PostgresConn(db *sql.DB) gorm.Dialector {
	return postgres.New(postgres.Config{Conn: db})
}
