// Package optimistic is the alternative to a lock when conflicts are rare:
// optimistic concurrency control with a version column, through gorm.
//
// A row carries an integer Version. A writer reads the row, changes it, and
// writes it back only if the version is still the one it read, incrementing
// it in the same statement; if someone else wrote first, the write changes
// nothing and returns ErrStaleVersion, and the writer reads again and
// retries:
//
//	type Account struct {
//		ID      int64
//		Balance int64
//		Version int64
//	}
//
//	err := optimistic.Retry(ctx, 10, func(ctx context.Context) error {
//		var a Account
//		if err := db.WithContext(ctx).First(&a, id).Error; err != nil {
//			return err
//		}
//		return optimistic.Update(ctx, db, &a, map[string]any{"balance": a.Balance + 10})
//	})
package optimistic
