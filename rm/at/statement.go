package at

// Kind classifies a statement by what the AT proxy must do around it.
type Kind int

// Statement kinds.
const (
	// KindPassThrough runs as is: plain SELECT, SET, SHOW and the like.
	KindPassThrough Kind = iota
	// KindSelectForUpdate locks rows; in a global transaction it also
	// checks the coordinator's global locks on them.
	KindSelectForUpdate
	// KindInsert inserts rows; the after image is read by primary key.
	KindInsert
	// KindUpsert is INSERT ... ON DUPLICATE KEY UPDATE or INSERT IGNORE:
	// rows may be inserted or changed, found through the table's unique keys.
	KindUpsert
	// KindUpdate changes rows chosen by WHERE (possibly over a JOIN).
	KindUpdate
	// KindDelete deletes rows chosen by WHERE (possibly over a JOIN).
	KindDelete
	// KindRefused cannot be undone safely: it is refused inside a global
	// transaction (see Statement.Refusal).
	KindRefused
)

var kindNames = [...]string{"pass-through", "select-for-update", "insert", "upsert", "update", "delete", "refused"}

// String returns the kind's name.
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return "unknown"
	}
	return kindNames[k]
}

// Fragment is a piece of SQL with the positions, in the whole query's
// argument list, of the arguments its placeholders take, in order.
type Fragment struct {
	SQL  string
	Args []int
}

// Empty reports whether the fragment has no text.
func (f Fragment) Empty() bool { return f.SQL == "" }

// TableRef names a table a statement writes or locks.
type TableRef struct {
	// Schema is the qualifier written in the statement, or "".
	Schema string
	// Name is the table's name as written.
	Name string
	// Alias is the name columns are qualified with in the statement: the
	// alias if one is given, else Name.
	Alias string
}

// QualifiedName returns schema.name, or name when no schema was written.
func (t TableRef) QualifiedName() string {
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// ColumnRef is a column a statement assigns, with the qualifier written in
// the statement ("" when unqualified).
type ColumnRef struct {
	Qualifier string
	Name      string
}

// ValueKind tells what an INSERT value expression is.
type ValueKind int

// INSERT value kinds.
const (
	// ValueConst is a literal or a placeholder: it can be read back as is.
	ValueConst ValueKind = iota
	// ValueDefault is NULL or DEFAULT: the database chooses the value.
	ValueDefault
	// ValueExpr is any other expression (a function call, arithmetic).
	ValueExpr
)

// InsertValue is one value of an INSERT row.
type InsertValue struct {
	Kind ValueKind
	Fragment
}

// Insert describes the rows of an INSERT.
type Insert struct {
	// Columns lists the columns given, in order; nil means every column in
	// table order.
	Columns []string
	// Rows holds one value per column for each row.
	Rows [][]InsertValue
	// Update lists the columns ON DUPLICATE KEY UPDATE assigns.
	Update []ColumnRef
	// Ignore is set for INSERT IGNORE.
	Ignore bool
}

// Statement is one parsed SQL statement in a dialect-neutral form: the
// pieces the proxy needs to build image queries, as SQL text of the
// statement's own dialect. A dialect's parser fills it; nothing here depends
// on a particular parser.
type Statement struct {
	Kind Kind
	// SQL is the statement's own text, run as is unless Rewrite is set.
	SQL string
	// Args are the positions, in the whole query's argument list, of the
	// arguments SQL's placeholders take.
	Args []int
	// Refusal says why a KindRefused statement cannot run in a global
	// transaction.
	Refusal string
	// Targets are the tables written (INSERT, UPDATE, DELETE) or locked
	// (SELECT ... FOR UPDATE).
	Targets []TableRef
	// From is the table references with joins, usable after SELECT ... FROM.
	From Fragment
	// Where is the condition, without the keyword; empty when absent.
	Where Fragment
	// OrderBy is the ORDER BY list, without the keyword; empty when absent.
	OrderBy Fragment
	// Limit is the whole LIMIT clause ("LIMIT n" or "LIMIT n OFFSET m");
	// empty when absent.
	Limit Fragment
	// Set lists the columns an UPDATE assigns.
	Set []ColumnRef
	// SetClause is the body of an UPDATE's SET clause.
	SetClause Fragment
	// Ignore is set for UPDATE IGNORE and DELETE IGNORE.
	Ignore bool
	// Insert is set for KindInsert and KindUpsert.
	Insert *Insert
	// MultiTable is set for UPDATE and DELETE over a JOIN or a table list.
	MultiTable bool
	// Setting names, in lower case, a session setting the statement
	// changes that alters how values are read or written, or how names
	// resolve (time_zone, sql_mode; PostgreSQL's timezone, datestyle,
	// search_path...), so that the images this session takes would not
	// read back the same on the phase-2 pool's own sessions; "" for none.
	// Such a statement is refused in a global transaction, and a global
	// transaction is refused on a connection that ran one before.
	Setting string
	// Returning lists the columns of a RETURNING clause ("*" for all); the
	// proxy answers it from the statement's images. SQL holds the statement
	// without the clause.
	Returning []string
}
