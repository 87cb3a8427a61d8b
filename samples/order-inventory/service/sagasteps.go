package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/gtx-io/gtx"
)

// SagaStepsTable is the table that makes saga steps idempotent: one row per
// step key, "done" when the step's work committed, "compensated" when it was
// undone or when its compensation came first.
const SagaStepsTable = "saga_steps"

// ErrStepCompensated says a saga step arrived after its compensation and
// was refused, so nothing stays changed with no one left to undo it.
var ErrStepCompensated = errors.New("service: saga step refused: it was compensated already")

// SagaStepsDDL creates the saga steps table; it is the same on MySQL,
// PostgreSQL and SQLite.
const SagaStepsDDL = `CREATE TABLE IF NOT EXISTS saga_steps (
	step_key VARCHAR(191) NOT NULL PRIMARY KEY,
	status VARCHAR(16) NOT NULL,
	item VARCHAR(64) NOT NULL,
	amount BIGINT NOT NULL
)`

// SagaDo runs work once for key, in one local transaction with the step's
// row that checks global row locks before it commits: a repeated key does
// nothing and succeeds, a key compensated already fails with
// ErrStepCompensated. item and amount are kept for SagaUndo.
func (b *Base) SagaDo(ctx context.Context, key, item string, amount int64, work func(tx *sql.Tx) error) error {
	return b.inTx(ctx, func(tx *sql.Tx) error {
		inserted, status, _, _, err := b.claim(ctx, tx, key, "done", item, amount)
		switch {
		case err != nil:
			return err
		case inserted:
			return work(tx)
		case status == "compensated":
			return fmt.Errorf("%w: %s", ErrStepCompensated, key)
		}
		return nil
	})
}

// SagaUndo undoes the step of key once: a step done is reverted by revert
// (given its item and amount) and marked compensated; a step never done is
// recorded as compensated, so a late SagaDo is refused; a step compensated
// already is left alone.
func (b *Base) SagaUndo(ctx context.Context, key string, revert func(tx *sql.Tx, item string, amount int64) error) error {
	return b.inTx(ctx, func(tx *sql.Tx) error {
		inserted, status, item, amount, err := b.claim(ctx, tx, key, "compensated", "", 0)
		if err != nil || inserted || status == "compensated" {
			return err
		}
		if err := revert(tx, item, amount); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, b.Rebind("UPDATE saga_steps SET status = 'compensated' WHERE step_key = ?"), key); err != nil {
			return fmt.Errorf("service %s: mark %s compensated: %w", b.Cfg.Name, key, err)
		}
		return nil
	})
}

// claim inserts the step's row with status; when the row exists already it
// locks and returns it instead. Inserting first, rather than reading first,
// takes no gap lock on MySQL, so concurrent steps of other keys do not
// deadlock. On PostgreSQL a failed statement aborts its transaction, so the
// insert skips an existing row (ON CONFLICT DO NOTHING) instead of failing.
func (b *Base) claim(ctx context.Context, tx *sql.Tx, key, status, item string, amount int64) (inserted bool, old, oldItem string, oldAmount int64, err error) {
	ins := "INSERT INTO saga_steps (step_key, status, item, amount) VALUES (?, ?, ?, ?)"
	if b.Postgres() {
		ins += " ON CONFLICT (step_key) DO NOTHING"
	}
	res, err := tx.ExecContext(ctx, b.Rebind(ins), key, status, item, amount)
	switch {
	case err == nil && b.Postgres():
		n, err := res.RowsAffected()
		if err != nil {
			return false, "", "", 0, fmt.Errorf("service %s: record saga step %s: %w", b.Cfg.Name, key, err)
		}
		if n == 1 {
			return true, "", "", 0, nil
		}
	case err == nil:
		return true, "", "", 0, nil
	case !b.dialect.IsDuplicateKey(err):
		return false, "", "", 0, fmt.Errorf("service %s: record saga step %s: %w", b.Cfg.Name, key, err)
	}
	q := "SELECT status, item, amount FROM saga_steps WHERE step_key = ?"
	if b.MySQL() || b.Postgres() {
		q += " FOR UPDATE"
	}
	if err := tx.QueryRowContext(ctx, b.Rebind(q), key).Scan(&old, &oldItem, &oldAmount); err != nil {
		return false, "", "", 0, fmt.Errorf("service %s: read saga step %s: %w", b.Cfg.Name, key, err)
	}
	return false, old, oldItem, oldAmount, nil
}

// inTx runs f in a local transaction outside any global transaction that
// checks the global row locks of what it writes before it commits (the
// AT database with gtx.WithGlobalLock): saga steps write rows that AT
// branches write too, and must not change a row an AT branch may still roll
// back.
func (b *Base) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	ctx = gtx.WithGlobalLock(gtx.ContextWithoutXID(ctx))
	tx, err := b.AT.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("service %s: begin: %w", b.Cfg.Name, err)
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("service %s: commit: %w", b.Cfg.Name, err)
	}
	return nil
}

// Exec runs each statement on the plain database, for DDL.
func (b *Base) Exec(ctx context.Context, stmts ...string) error {
	for _, s := range stmts {
		if _, err := b.Plain.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("service %s: %s: %w", b.Cfg.Name, s, err)
		}
	}
	return nil
}

// Seed runs insert in one local transaction when table is empty, and does
// nothing otherwise, so a restart never re-seeds.
func (b *Base) Seed(ctx context.Context, table string, insert func(tx *sql.Tx) error) error {
	return b.inTx(ctx, func(tx *sql.Tx) error {
		var n int64
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
			return fmt.Errorf("service %s: count %s: %w", b.Cfg.Name, table, err)
		}
		if n > 0 {
			return nil
		}
		return insert(tx)
	})
}
