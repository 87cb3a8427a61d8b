//go:build !cgo

package service

import "github.com/gtx-io/gtx/rm/at"

// postgresDialect fails: AT mode's PostgreSQL dialect needs cgo, and this
// binary was built without it.
func postgresDialect() (at.Dialect, error) { return nil, ErrNoPostgres }
