package tc

import (
	"fmt"
	"strings"
)

// ParseLockKeys parses lock keys in the form "table:pk1,pk2;table2:pk3" into
// row locks of resourceID. Empty input gives no locks. Duplicate keys are kept
// once.
func ParseLockKeys(resourceID, keys string) ([]RowLock, error) {
	if keys == "" {
		return nil, nil
	}
	var locks []RowLock
	seen := make(map[[2]string]bool)
	for _, part := range strings.Split(keys, ";") {
		if part == "" {
			continue
		}
		table, pks, ok := strings.Cut(part, ":")
		if !ok || table == "" || pks == "" {
			return nil, fmt.Errorf("%w: %q is not table:pk1,pk2", ErrInvalidLockKeys, part)
		}
		for _, pk := range strings.Split(pks, ",") {
			if pk == "" {
				return nil, fmt.Errorf("%w: empty primary key in %q", ErrInvalidLockKeys, part)
			}
			k := [2]string{table, pk}
			if seen[k] {
				continue
			}
			seen[k] = true
			locks = append(locks, RowLock{ResourceID: resourceID, Table: table, PK: pk})
		}
	}
	return locks, nil
}
