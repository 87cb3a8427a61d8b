// Package sqlconn finds the driver.Connector of a registered database/sql
// driver, for the wrappers (AT, XA) that put their own connector around it.
package sqlconn

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
)

// Open returns the connector of the driver registered as driverName for
// dsn: the driver's own (driver.DriverContext) or one that calls
// driver.Open with dsn.
func Open(driverName, dsn string) (driver.Connector, error) {
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("open driver %q: %w", driverName, err)
	}
	d := db.Driver()
	_ = db.Close()
	if dc, ok := d.(driver.DriverContext); ok {
		c, err := dc.OpenConnector(dsn)
		if err != nil {
			return nil, fmt.Errorf("open driver %q: %w", driverName, err)
		}
		return c, nil
	}
	return dsnConnector{d: d, dsn: dsn}, nil
}

type dsnConnector struct {
	d   driver.Driver
	dsn string
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.d.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.d }
