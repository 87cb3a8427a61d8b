//go:build cgo

package service

import (
	"github.com/gtx-io/gtx/rm/at"
	"github.com/gtx-io/gtx/rm/at/atpg" // registers the "pgx" driver and its AT dialect
)

// postgresDialect returns AT mode's PostgreSQL dialect.
func postgresDialect() (at.Dialect, error) { return atpg.Postgres(), nil }
