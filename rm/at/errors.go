package at

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrInvalidConfig is matched by the errors of Config.Validate.
	ErrInvalidConfig = errors.New("at: invalid config")
	// ErrParse is wrapped by errors for SQL the dialect's parser cannot read.
	// Inside a global transaction such SQL is refused, never run unguarded.
	ErrParse = errors.New("at: cannot parse sql")
	// ErrRefused is matched by a *RefusedError: a statement the AT mode
	// cannot undo safely was refused inside a global transaction.
	ErrRefused = errors.New("at: statement refused in a global transaction")
	// ErrNoTable is returned when a statement names a table the database
	// does not have.
	ErrNoTable = errors.New("at: no such table")
	// ErrGlobalLock is matched by errors returned when global row locks
	// stay held by another global transaction after the retry policy ran
	// out, or when their holder is rolling back (waiting would deadlock
	// against its rollback). The local transaction is rolled back.
	ErrGlobalLock = errors.New("at: global row lock held by another global transaction")
	// ErrDirtyWrite is matched by a *DirtyWriteError: a rollback found rows
	// changed from outside the global transaction and stopped.
	ErrDirtyWrite = errors.New("at: dirty write found at rollback")
	// ErrBranchRolledBack is returned by a local commit that comes after the
	// coordinator already rolled its branch back (the defense row is in the
	// undo table): the local transaction is rolled back.
	ErrBranchRolledBack = errors.New("at: branch was rolled back before its local commit")
	// ErrTxAborted is returned by a transaction in which a statement failed
	// a safety check; only Rollback is possible.
	ErrTxAborted = errors.New("at: transaction aborted by a failed safety check")
	// ErrUndoLog is wrapped by errors decoding a damaged undo log.
	ErrUndoLog = errors.New("at: undo log damaged")
	// ErrUnknownResource is returned by phase 2 for a resource ID no open
	// AT database has.
	ErrUnknownResource = errors.New("at: unknown resource")
)

// RefusedError says why a statement was refused inside a global
// transaction. It matches ErrRefused.
type RefusedError struct {
	SQL    string
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("at: statement refused in a global transaction: %s: %q", e.Reason, abbreviate(e.SQL, 200))
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// LeadingKeywords names a statement in refusal messages by its first
// keyword, or its first two for CREATE, ALTER, DROP, LOCK and the like
// ("CALL", "CREATE TABLE", "LOAD DATA"), upper-cased, as the statement's
// own SQL writes them. Dialect packages use it for their refusals.
func LeadingKeywords(sql string) string {
	words := strings.Fields(strings.TrimLeft(sql, " \t\r\n("))
	if len(words) == 0 {
		return "an empty statement"
	}
	first := strings.ToUpper(words[0])
	switch first {
	case "CREATE", "ALTER", "DROP", "LOCK", "UNLOCK", "LOAD", "RENAME", "GRANT", "REVOKE", "FLUSH", "HANDLER", "INSTALL", "UNINSTALL":
		if len(words) > 1 && isWord(words[1]) {
			return first + " " + strings.ToUpper(words[1])
		}
	}
	if !isWord(first) {
		return "this statement"
	}
	return first
}

// isWord reports whether s is a keyword: letters and underscores only.
func isWord(s string) bool {
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return s != ""
}

func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// DirtyRow is a row a rollback found changed from outside the global
// transaction.
type DirtyRow struct {
	Table string
	// PK is the row's primary key, as in lock keys.
	PK string
	// Columns names the values of Expected and Actual.
	Columns []string
	// Expected is the row as the branch left it (its after image); nil when
	// the branch deleted it.
	Expected Row
	// Actual is the row now; nil when it is gone.
	Actual Row
}

// DirtyWriteError reports the rows a rollback found changed from outside
// the global transaction. The rollback changed nothing; the rows are left
// as that write made them, for an operator to reconcile. It matches
// ErrDirtyWrite.
type DirtyWriteError struct {
	XID      string
	BranchID int64
	Rows     []DirtyRow
}

func (e *DirtyWriteError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "at: rollback of %s branch %d stopped: %d row(s) changed outside the global transaction:", e.XID, e.BranchID, len(e.Rows))
	for i, r := range e.Rows {
		if i == 5 {
			fmt.Fprintf(&sb, " and %d more", len(e.Rows)-i)
			break
		}
		if r.Expected != nil && r.Actual != nil && len(r.Expected) == len(r.Actual) {
			// Only what differs, so that the message stays short enough to
			// be kept whole in the coordinator's last error.
			fmt.Fprintf(&sb, " %s:%s %s;", r.Table, r.PK, formatDiff(r.Columns, r.Expected, r.Actual))
			continue
		}
		fmt.Fprintf(&sb, " %s:%s expected %s, found %s;", r.Table, r.PK, formatRow(r.Columns, r.Expected), formatRow(r.Columns, r.Actual))
	}
	sb.WriteString(" reconcile the rows, then retry the transaction")
	return sb.String()
}

// Is makes errors.Is(err, ErrDirtyWrite) true.
func (e *DirtyWriteError) Is(target error) bool { return target == ErrDirtyWrite }

// formatDiff names the columns whose values differ between two rows of
// the same columns, with both values.
func formatDiff(cols []string, expected, actual Row) string {
	var sb strings.Builder
	for i := range expected {
		if expected[i].Equal(actual[i]) {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteString(", ")
		}
		name := fmt.Sprintf("column %d", i+1)
		if i < len(cols) {
			name = cols[i]
		}
		fmt.Fprintf(&sb, "%s expected %s, found %s", name, abbreviate(expected[i].String(), 64), abbreviate(actual[i].String(), 64))
	}
	return sb.String()
}

func formatRow(cols []string, r Row) string {
	if r == nil {
		return "no row"
	}
	var sb strings.Builder
	sb.WriteByte('{')
	for i, v := range r {
		if i > 0 {
			sb.WriteString(", ")
		}
		if i < len(cols) {
			sb.WriteString(cols[i])
			sb.WriteByte('=')
		}
		sb.WriteString(abbreviate(v.String(), 64))
	}
	sb.WriteByte('}')
	return sb.String()
}
