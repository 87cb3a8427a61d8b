// Package xagorm opens gorm on XA databases, so that gorm users get XA
// branches by changing the line that opens gorm:
//
//	xa.SetDefaults(cfg) // once: the rm.Manager and coordinator client
//	db, err := gorm.Open(xagorm.MySQL(dsn), &gorm.Config{})    // was mysql.Open(dsn)
//	db, err := gorm.Open(xagorm.Postgres(dsn), &gorm.Config{}) // was postgres.Open(dsn)
//
// Then every gorm transaction run with a context that carries an XID
// (db.WithContext(ctx)) is an XA branch of that global transaction.
package xagorm

import (
	"database/sql"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/gtx-io/gtx/rm/xa"
)

// MySQL returns gorm's MySQL dialector on the xa.DriverMySQL driver, which
// xa.SetDefaults configures.
func MySQL(dsn string) gorm.Dialector {
	return mysql.New(mysql.Config{DriverName: xa.DriverMySQL, DSN: dsn})
}

// Postgres returns gorm's PostgreSQL dialector on the xa.DriverPostgres
// driver, which xa.SetDefaults configures.
func Postgres(dsn string) gorm.Dialector {
	return postgres.New(postgres.Config{DriverName: xa.DriverPostgres, DSN: dsn})
}

// MySQLConn returns gorm's MySQL dialector on db, a database opened with
// xa.Open.
func MySQLConn(db *sql.DB) gorm.Dialector {
	return mysql.New(mysql.Config{Conn: db})
}

// PostgresConn returns gorm's PostgreSQL dialector on db, a database opened
// with xa.Open.
func PostgresConn(db *sql.DB) gorm.Dialector {
	return postgres.New(postgres.Config{Conn: db})
}
