package tcv1

import (
	"errors"
	"fmt"
	"strings"
)

// The lock-key encoding of RegisterBranchRequest.lock_keys and
// QueryLocksRequest.lock_keys: "table:pk1,pk2;table2:pk3". A composite
// primary key joins its values with "_"; table names and key values
// percent-encode the bytes "%", ",", ";", ":" and "_" (as "%25", "%2C",
// "%3B", "%3A", "%5F"), so that any value fits. Build keys with LockKey,
// or EscapeLockKey and LockPK; the coordinator reads them with
// ParseLockKeys.

// ErrInvalidLockKeys is returned by ParseLockKeys for lock keys not in the
// "table:pk1,pk2;table2:pk3" form.
var ErrInvalidLockKeys = errors.New("tc: invalid lock keys")

// RowKey is one row of a lock key: a table and a primary key, both in
// lock-key form (escaped).
type RowKey struct {
	Table string
	PK    string
}

// EscapeLockKey percent-encodes the bytes that delimit lock keys in s.
func EscapeLockKey(s string) string {
	if !strings.ContainsAny(s, "%,;:_") {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%', ',', ';', ':', '_':
			fmt.Fprintf(&sb, "%%%02X", c)
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// LockPK returns the lock-key form of a primary key made of values (more
// than one for a composite key).
func LockPK(values ...string) string {
	var sb strings.Builder
	for i, v := range values {
		if i > 0 {
			sb.WriteByte('_')
		}
		sb.WriteString(EscapeLockKey(v))
	}
	return sb.String()
}

// LockKey returns the lock keys of one row of table whose primary key is
// pk (more than one value for a composite key): "table:pk".
func LockKey(table string, pk ...string) string {
	return EscapeLockKey(table) + ":" + LockPK(pk...)
}

// ParseLockKeys parses lock keys in the form "table:pk1,pk2;table2:pk3".
// Empty input gives no rows; duplicate rows are kept once, in the order
// they first appear. Any other malformed input gives an error matching
// ErrInvalidLockKeys.
func ParseLockKeys(keys string) ([]RowKey, error) {
	if keys == "" {
		return nil, nil
	}
	var rows []RowKey
	seen := make(map[RowKey]bool)
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
			k := RowKey{Table: table, PK: pk}
			if seen[k] {
				continue
			}
			seen[k] = true
			rows = append(rows, k)
		}
	}
	return rows, nil
}
