package tc

import (
	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// ParseLockKeys parses lock keys in the protocol's form (see
// tcv1.ParseLockKeys) into row locks of resourceID. Empty input gives no
// locks. Duplicate keys are kept once.
func ParseLockKeys(resourceID, keys string) ([]RowLock, error) {
	rows, err := tcv1.ParseLockKeys(keys)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	locks := make([]RowLock, len(rows))
	for i, r := range rows {
		locks[i] = RowLock{ResourceID: resourceID, Table: r.Table, PK: r.PK}
	}
	return locks, nil
}
