package sqlstore

import "context"

// Truncate deletes every row of the store's tables, so that conformance
// subtests sharing one database each start empty.
func (s *Store) Truncate(ctx context.Context) error {
	for _, m := range []any{&lockRow{}, &branchRow{}, &globalRow{}} {
		if err := s.db.WithContext(ctx).Where("1 = 1").Delete(m).Error; err != nil {
			return err
		}
	}
	return nil
}
