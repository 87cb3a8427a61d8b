package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/tc"
	sqlstore "github.com/gtx-io/gtx/tc/store/sql"
)

// An embedded coordinator keeps its sessions and locks in a SQLite file.
func Example() {
	dir, err := os.MkdirTemp("", "gtx-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	s, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: filepath.Join(dir, "tc.db")})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	if err := s.CreateGlobal(ctx, &tc.GlobalSession{XID: "tc-1:42", Name: "place-order", Timeout: 30 * time.Second}); err != nil {
		log.Fatal(err)
	}
	locks, err := tc.ParseLockKeys("orders-db", "orders:7;items:1,2")
	if err != nil {
		log.Fatal(err)
	}
	if err := s.AcquireLocks(ctx, "tc-1:42", 1, locks); err != nil {
		log.Fatal(err)
	}
	err = s.AcquireLocks(ctx, "tc-1:43", 1, locks[:1])
	var conflict *tc.LockConflictError
	if errors.As(err, &conflict) {
		fmt.Println("orders:7 is held by", conflict.Lock.XID)
	}

	// Commit: only a session still in BEGIN may be committed.
	err = s.UpdateGlobal(ctx, "tc-1:42", []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN},
		tc.GlobalUpdate{Status: tcv1.GlobalStatus_COMMITTING})
	if err != nil {
		log.Fatal(err)
	}
	g, err := s.GetGlobal(ctx, "tc-1:42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(g.XID, g.Status)

	// A rollback racing the commit finds it decided.
	err = s.UpdateGlobal(ctx, "tc-1:42", []tcv1.GlobalStatus{tcv1.GlobalStatus_BEGIN},
		tc.GlobalUpdate{Status: tcv1.GlobalStatus_ROLLBACKING})
	fmt.Println(errors.Is(err, tc.ErrStatusConflict))
	// Output:
	// orders:7 is held by tc-1:42
	// tc-1:42 COMMITTING
	// true
}
