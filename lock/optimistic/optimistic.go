package optimistic

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

var (
	// ErrStaleVersion is matched by a *StaleVersionError: the row changed
	// (or was deleted) since it was read. Read it again and retry, for
	// example with Retry.
	ErrStaleVersion = errors.New("optimistic: row changed since it was read (stale version); read it again and retry")
	// ErrInvalidInput is returned for a model Update cannot work with: not a
	// pointer to a struct, without a Version field, or with a zero primary
	// key; for empty updates or updates that set the version; and for fewer
	// than one Retry attempt.
	ErrInvalidInput = errors.New("optimistic: invalid input")
)

// StaleVersionError says that an Update found another version than the one
// it was given. It matches ErrStaleVersion.
type StaleVersionError struct {
	// Table is the model's table.
	Table string
	// Version is the version the update expected.
	Version int64
}

func (e *StaleVersionError) Error() string {
	return fmt.Sprintf("optimistic: %s row is no longer at version %d; read it again and retry", e.Table, e.Version)
}

// Is makes errors.Is(err, ErrStaleVersion) true.
func (e *StaleVersionError) Is(target error) bool { return target == ErrStaleVersion }

// VersionField is the name of the struct field (an integer) that holds a
// model's version.
const VersionField = "Version"

// Update applies updates (column name to value) to the row of model,
// identified by its primary key, only when the row's version still equals
// model's Version field, and increments the version in the same statement:
//
//	UPDATE t SET ..., version = version + 1 WHERE id = ? AND version = ?
//
// On success model's Version is incremented too. When the row has another
// version, or is gone, it changes nothing and returns a *StaleVersionError.
func Update(ctx context.Context, db *gorm.DB, model any, updates map[string]any) error {
	rv := reflect.ValueOf(model)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("%w: model must be a non-nil pointer to a struct, got %T", ErrInvalidInput, model)
	}
	if len(updates) == 0 {
		return fmt.Errorf("%w: no columns to update", ErrInvalidInput)
	}
	stmt := &gorm.Statement{DB: db}
	if err := stmt.Parse(model); err != nil {
		return fmt.Errorf("optimistic: parse model %T: %w", model, err)
	}
	s := stmt.Schema
	vf := s.LookUpField(VersionField)
	if vf == nil || !isInt(vf) {
		return fmt.Errorf("%w: %s has no integer %s field", ErrInvalidInput, s.Name, VersionField)
	}
	if _, ok := updates[vf.DBName]; ok {
		return fmt.Errorf("%w: updates must not set %s; Update increments it", ErrInvalidInput, vf.DBName)
	}
	if _, ok := updates[vf.Name]; ok {
		return fmt.Errorf("%w: updates must not set %s; Update increments it", ErrInvalidInput, vf.Name)
	}
	if len(s.PrimaryFields) == 0 {
		return fmt.Errorf("%w: %s has no primary key", ErrInvalidInput, s.Name)
	}
	for _, pk := range s.PrimaryFields {
		if _, zero := pk.ValueOf(ctx, rv.Elem()); zero {
			return fmt.Errorf("%w: %s has a zero primary key %s", ErrInvalidInput, s.Name, pk.Name)
		}
	}
	cur, _ := vf.ValueOf(ctx, rv.Elem())
	version := reflect.ValueOf(cur).Int()

	set := make(map[string]any, len(updates)+1)
	for k, v := range updates {
		set[k] = v
	}
	col := clause.Column{Name: vf.DBName}
	set[vf.DBName] = gorm.Expr("? + 1", col)
	res := db.WithContext(ctx).Model(model).Where(clause.Eq{Column: col, Value: version}).Updates(set)
	if res.Error != nil {
		return fmt.Errorf("optimistic: update %s: %w", s.Table, res.Error)
	}
	if res.RowsAffected == 0 {
		return &StaleVersionError{Table: s.Table, Version: version}
	}
	if err := vf.Set(ctx, rv.Elem(), version+1); err != nil {
		return fmt.Errorf("optimistic: set %s.%s: %w", s.Name, vf.Name, err)
	}
	return nil
}

func isInt(f *schema.Field) bool {
	switch f.FieldType.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return true
	}
	return false
}

// Retry calls fn until it returns something other than an error matching
// ErrStaleVersion, at most attempts times, and returns its last error. fn
// must read the row again each time. It stops early when ctx is done.
func Retry(ctx context.Context, attempts int, fn func(ctx context.Context) error) error {
	if attempts < 1 {
		return fmt.Errorf("%w: attempts must be at least 1, got %d", ErrInvalidInput, attempts)
	}
	var err error
	for range attempts {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("optimistic: retry: %w", cerr)
		}
		if err = fn(ctx); !errors.Is(err, ErrStaleVersion) {
			return err
		}
	}
	return fmt.Errorf("optimistic: gave up after %d attempts: %w", attempts, err)
}
