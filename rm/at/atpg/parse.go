package atpg

import (
	"fmt"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/gtx-io/gtx/rm/at"
)

// parse splits query into statements with libpg_query and describes each.
// Every SQL text it returns is the deparsed tree, with placeholders written
// "?" and operators holding "?" schema-qualified (see at.ExtendedDialect).
func parse(query string) ([]at.Statement, error) {
	tree, err := pg.Parse(query)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", at.ErrParse, err)
	}
	if len(tree.Stmts) == 0 {
		return nil, fmt.Errorf("%w: no statement in %q", at.ErrParse, query)
	}
	b := &builder{version: tree.Version}
	out := make([]at.Statement, 0, len(tree.Stmts))
	for _, raw := range tree.Stmts {
		qualifyOperators(raw.Stmt)
		st, err := b.statement(raw.Stmt)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// walk calls f on m and every message under it.
func walk(m protoreflect.Message, f func(protoreflect.Message)) {
	f(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap() || fd.Message() == nil:
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walk(l.Get(i).Message(), f)
			}
		default:
			walk(v.Message(), f)
		}
		return true
	})
}

// qualifyOperators writes every operator whose name holds "?" (jsonb's ?,
// ?| and ?&, jsonpath's @?) as pg_catalog's, which the deparser prints
// OPERATOR(pg_catalog.?): "?" then marks placeholders only.
func qualifyOperators(n *pg.Node) {
	qualify := func(name []*pg.Node) []*pg.Node {
		if len(name) == 1 && strings.Contains(name[0].GetString_().GetSval(), "?") {
			return append([]*pg.Node{pg.MakeStrNode("pg_catalog")}, name...)
		}
		return name
	}
	walk(n.ProtoReflect(), func(m protoreflect.Message) {
		switch x := m.Interface().(type) {
		case *pg.A_Expr:
			x.Name = qualify(x.Name)
		case *pg.SortBy:
			x.UseOp = qualify(x.UseOp)
		}
	})
}

// hasNode reports whether f holds for some message under n.
func hasNode(n protoreflect.ProtoMessage, f func(protoreflect.Message) bool) bool {
	found := false
	walk(n.ProtoReflect(), func(m protoreflect.Message) {
		if !found && f(m) {
			found = true
		}
	})
	return found
}

// writes reports whether a tree holds a data-modifying statement.
func writes(m protoreflect.Message) bool {
	switch m.Interface().(type) {
	case *pg.InsertStmt, *pg.UpdateStmt, *pg.DeleteStmt, *pg.MergeStmt:
		return true
	}
	return false
}

type builder struct {
	version int32
}

// deparse prints one statement.
func (b *builder) deparse(n *pg.Node) (string, error) {
	out, err := pg.Deparse(&pg.ParseResult{Version: b.version, Stmts: []*pg.RawStmt{{Stmt: n}}})
	if err != nil {
		return "", fmt.Errorf("%w: deparse: %v", at.ErrParse, err)
	}
	return out, nil
}

// text deparses n and turns its placeholders into markers.
func (b *builder) text(n *pg.Node) (at.Fragment, error) {
	out, err := b.deparse(n)
	if err != nil {
		return at.Fragment{}, err
	}
	sql, args, err := scanSQL(out, toMarkers)
	if err != nil {
		return at.Fragment{}, fmt.Errorf("%w: %v", at.ErrParse, err)
	}
	return at.Fragment{SQL: sql, Args: args}, nil
}

// clause deparses a SELECT holding one clause and cuts off the text before
// it: "SELECT " and prefix.
func (b *builder) clause(sel *pg.SelectStmt, prefix string) (at.Fragment, error) {
	f, err := b.text(&pg.Node{Node: &pg.Node_SelectStmt{SelectStmt: sel}})
	if err != nil {
		return f, err
	}
	head := "SELECT " + prefix
	if !strings.HasPrefix(f.SQL, head) {
		return at.Fragment{}, fmt.Errorf("%w: deparsed clause %q does not start with %q", at.ErrParse, f.SQL, head)
	}
	f.SQL = strings.TrimPrefix(f.SQL, head)
	return f, nil
}

func (b *builder) from(items []*pg.Node) (at.Fragment, error) {
	return b.clause(&pg.SelectStmt{FromClause: items}, "FROM ")
}

func (b *builder) where(e *pg.Node) (at.Fragment, error) {
	if e == nil {
		return at.Fragment{}, nil
	}
	return b.clause(&pg.SelectStmt{WhereClause: e}, "WHERE ")
}

func (b *builder) orderBy(items []*pg.Node) (at.Fragment, error) {
	if len(items) == 0 {
		return at.Fragment{}, nil
	}
	return b.clause(&pg.SelectStmt{SortClause: items}, "ORDER BY ")
}

func (b *builder) limit(s *pg.SelectStmt) (at.Fragment, error) {
	if s.LimitCount == nil && s.LimitOffset == nil {
		return at.Fragment{}, nil
	}
	return b.clause(&pg.SelectStmt{LimitCount: s.LimitCount, LimitOffset: s.LimitOffset, LimitOption: s.LimitOption}, "")
}

// expr writes one value expression: placeholders and simple constants
// directly, anything else through the deparser.
func (b *builder) expr(e *pg.Node) (at.Fragment, error) {
	switch {
	case e.GetParamRef() != nil:
		return at.Fragment{SQL: "?", Args: []int{int(e.GetParamRef().GetNumber()) - 1}}, nil
	case e.GetAConst() != nil && e.GetAConst().GetIval() != nil:
		return at.Fragment{SQL: strconv.FormatInt(int64(e.GetAConst().GetIval().GetIval()), 10)}, nil
	}
	return b.clause(&pg.SelectStmt{TargetList: []*pg.Node{pg.MakeResTargetNodeWithVal(e, 0)}}, "")
}

// valueKind tells what an INSERT value is.
func valueKind(e *pg.Node) at.ValueKind {
	switch {
	case e.GetParamRef() != nil:
		return at.ValueConst
	case e.GetAConst() != nil:
		if e.GetAConst().GetIsnull() {
			return at.ValueDefault
		}
		return at.ValueConst
	case e.GetSetToDefault() != nil:
		return at.ValueDefault
	case e.GetTypeCast() != nil:
		if k := valueKind(e.GetTypeCast().GetArg()); k == at.ValueConst {
			return k
		}
	case e.GetAExpr() != nil:
		x := e.GetAExpr()
		if x.GetKind() == pg.A_Expr_Kind_AEXPR_OP && x.GetLexpr() == nil && len(x.GetName()) == 1 {
			if op := x.GetName()[0].GetString_().GetSval(); (op == "-" || op == "+") && valueKind(x.GetRexpr()) == at.ValueConst {
				return at.ValueConst
			}
		}
	}
	return at.ValueExpr
}

// settings are the PostgreSQL settings that change how values are read or
// written in text (timezone for timestamptz, datestyle and intervalstyle,
// extra_float_digits, bytea_output, client_encoding,
// standard_conforming_strings) or how table names resolve (search_path,
// and role and session_authorization, which "$user" in it follows).
var settings = map[string]bool{
	"timezone": true, "datestyle": true, "intervalstyle": true, "extra_float_digits": true, "bytea_output": true,
	"client_encoding": true, "standard_conforming_strings": true, "search_path": true, "role": true,
	"session_authorization": true,
}

// setting returns the setting of settings a SET or RESET changes ("all"
// for RESET ALL), or "".
func setting(s *pg.VariableSetStmt) string {
	if s.GetKind() == pg.VariableSetKind_VAR_RESET_ALL {
		return "all"
	}
	if name := strings.ToLower(s.GetName()); settings[name] {
		return name
	}
	return ""
}

func refuse(st *at.Statement, why string) {
	st.Kind = at.KindRefused
	st.Refusal = why
}

// keyword names a statement for messages by its leading keywords in
// PostgreSQL's own syntax ("CALL", "CREATE TABLE"), read from its deparsed
// text; "this statement" when it cannot be deparsed.
func (b *builder) keyword(n *pg.Node) string {
	out, err := b.deparse(n)
	if err != nil {
		return "this statement"
	}
	return at.LeadingKeywords(out)
}

func (b *builder) statement(n *pg.Node) (at.Statement, error) {
	var st at.Statement
	var err error
	switch s := n.GetNode().(type) {
	case *pg.Node_SelectStmt:
		err = b.selectStmt(n, s.SelectStmt, &st)
	case *pg.Node_InsertStmt:
		err = b.insert(n, s.InsertStmt, &st)
	case *pg.Node_UpdateStmt:
		err = b.update(n, s.UpdateStmt, &st)
	case *pg.Node_DeleteStmt:
		err = b.delete(n, s.DeleteStmt, &st)
	case *pg.Node_VariableSetStmt:
		err = b.passThrough(n, &st)
		st.Setting = setting(s.VariableSetStmt)
	case *pg.Node_VariableShowStmt, *pg.Node_LockStmt:
		err = b.passThrough(n, &st)
	case *pg.Node_ExplainStmt:
		for _, o := range s.ExplainStmt.GetOptions() {
			if strings.EqualFold(o.GetDefElem().GetDefname(), "analyze") {
				refuse(&st, "EXPLAIN ANALYZE runs the statement unguarded; run it outside the global transaction")
			}
		}
		if st.Kind != at.KindRefused {
			err = b.passThrough(n, &st)
		}
	case *pg.Node_TransactionStmt:
		refuse(&st, "transaction control by SQL text bypasses the branch; use the *sql.Tx methods")
	case *pg.Node_MergeStmt:
		refuse(&st, "MERGE inserts, updates and deletes rows it cannot image beforehand; use INSERT ... ON CONFLICT, UPDATE and DELETE")
	case *pg.Node_CopyStmt:
		refuse(&st, "COPY writes rows the AT mode cannot image; use INSERT")
	case *pg.Node_CallStmt, *pg.Node_DoStmt, *pg.Node_ExecuteStmt, *pg.Node_PrepareStmt:
		refuse(&st, b.keyword(n)+" runs statements the AT mode cannot see; run them as plain SQL")
	default:
		refuse(&st, b.keyword(n)+" changes the schema or the server and cannot be undone; run it outside the global transaction")
	}
	if err != nil {
		return at.Statement{}, err
	}
	if st.Kind == at.KindRefused && st.SQL == "" {
		// The text only names the statement in the refusal.
		if out, derr := b.deparse(n); derr == nil {
			st.SQL = out
		} else {
			st.SQL = b.keyword(n)
		}
	}
	return st, nil
}

// passThrough sets st to run n as it is.
func (b *builder) passThrough(n *pg.Node, st *at.Statement) error {
	f, err := b.text(n)
	if err != nil {
		return err
	}
	st.Kind, st.SQL, st.Args = at.KindPassThrough, f.SQL, f.Args
	return nil
}

// finish sets the statement's text: n with its RETURNING list cleared,
// which the proxy answers from the images.
func (b *builder) finish(n *pg.Node, st *at.Statement, returning *[]*pg.Node) error {
	list := *returning
	*returning = nil
	f, err := b.text(n)
	*returning = list
	if err != nil {
		return err
	}
	st.SQL, st.Args = f.SQL, f.Args
	for _, r := range list {
		t := r.GetResTarget()
		fields := t.GetVal().GetColumnRef().GetFields()
		if t.GetName() != "" || len(fields) == 0 || len(t.GetIndirection()) > 0 {
			refuse(st, "RETURNING may list only columns or *, which the proxy answers from the images")
			return nil
		}
		last := fields[len(fields)-1]
		switch {
		case last.GetAStar() != nil:
			st.Returning = append(st.Returning, "*")
		case last.GetString_() != nil:
			st.Returning = append(st.Returning, last.GetString_().GetSval())
		default:
			refuse(st, "RETURNING may list only columns or *, which the proxy answers from the images")
			return nil
		}
	}
	return nil
}

// tableRef names a RangeVar.
func tableRef(rv *pg.RangeVar) at.TableRef {
	ref := at.TableRef{Schema: rv.GetSchemaname(), Name: rv.GetRelname(), Alias: rv.GetRelname()}
	if a := rv.GetAlias().GetAliasname(); a != "" {
		ref.Alias = a
	}
	return ref
}

// tableSources lists the base tables of FROM items.
func tableSources(items []*pg.Node, out []at.TableRef) []at.TableRef {
	for _, it := range items {
		switch {
		case it.GetRangeVar() != nil:
			out = append(out, tableRef(it.GetRangeVar()))
		case it.GetJoinExpr() != nil:
			out = tableSources([]*pg.Node{it.GetJoinExpr().GetLarg(), it.GetJoinExpr().GetRarg()}, out)
		}
	}
	return out
}

func (b *builder) selectStmt(n *pg.Node, s *pg.SelectStmt, st *at.Statement) error {
	if s.GetIntoClause() != nil {
		refuse(st, "SELECT ... INTO creates a table, which cannot be undone; run it outside the global transaction")
		return nil
	}
	if hasNode(s, writes) {
		refuse(st, "a writable WITH (INSERT, UPDATE, DELETE or MERGE inside a query) cannot be imaged; run the write as its own statement")
		return nil
	}
	// The tables FOR UPDATE (or FOR NO KEY UPDATE) locks: all of FROM
	// unless every such clause names them with OF.
	forUpdate, all := false, false
	var lockedRels []string
	for _, l := range s.GetLockingClause() {
		lc := l.GetLockingClause()
		switch lc.GetStrength() {
		case pg.LockClauseStrength_LCS_FORUPDATE, pg.LockClauseStrength_LCS_FORNOKEYUPDATE:
			forUpdate = true
			all = all || len(lc.GetLockedRels()) == 0
			for _, r := range lc.GetLockedRels() {
				lockedRels = append(lockedRels, r.GetRangeVar().GetRelname())
			}
		}
	}
	if !forUpdate || len(s.GetFromClause()) == 0 {
		return b.passThrough(n, st)
	}
	switch {
	case s.GetOp() != pg.SetOperation_SETOP_NONE:
		return b.passThrough(n, st)
	case s.GetWithClause() != nil || len(s.GetGroupClause()) > 0 || len(s.GetDistinctClause()) > 0 || s.GetHavingClause() != nil || len(s.GetWindowClause()) > 0:
		refuse(st, "SELECT ... FOR UPDATE with WITH, GROUP BY, DISTINCT, HAVING or WINDOW is not supported in a global transaction")
		return nil
	case s.GetLimitOption() == pg.LimitOption_LIMIT_OPTION_WITH_TIES:
		refuse(st, "SELECT ... FOR UPDATE with FETCH ... WITH TIES is not supported in a global transaction")
		return nil
	}
	if err := b.passThrough(n, st); err != nil {
		return err
	}
	st.Kind = at.KindSelectForUpdate
	sources := tableSources(s.GetFromClause(), nil)
	if all {
		st.Targets = sources
	} else {
		for _, src := range sources {
			for _, r := range lockedRels {
				if src.Alias == r {
					st.Targets = append(st.Targets, src)
					break
				}
			}
		}
	}
	if len(st.Targets) == 0 {
		refuse(st, "SELECT ... FOR UPDATE locks no table the AT mode can find (only subqueries or functions)")
		return nil
	}
	st.MultiTable = len(sources) > 1
	var err error
	if st.From, err = b.from(s.GetFromClause()); err != nil {
		return err
	}
	if st.Where, err = b.where(s.GetWhereClause()); err != nil {
		return err
	}
	if st.OrderBy, err = b.orderBy(s.GetSortClause()); err != nil {
		return err
	}
	st.Limit, err = b.limit(s)
	return err
}

func (b *builder) insert(n *pg.Node, s *pg.InsertStmt, st *at.Statement) error {
	if s.GetWithClause() != nil {
		refuse(st, "INSERT with WITH is not supported in a global transaction")
		return nil
	}
	sel := s.GetSelectStmt().GetSelectStmt()
	if s.GetSelectStmt() != nil && (sel == nil || len(sel.GetValuesLists()) == 0 || sel.GetWithClause() != nil || len(sel.GetSortClause()) > 0 || sel.GetLimitCount() != nil) {
		refuse(st, "INSERT ... SELECT inserts rows whose keys are not known beforehand; insert the rows with VALUES")
		return nil
	}
	if hasNode(s, func(m protoreflect.Message) bool { return m.Interface() != s && writes(m) }) {
		refuse(st, "a writable WITH inside an INSERT cannot be imaged")
		return nil
	}
	st.Kind = at.KindInsert
	st.Targets = []at.TableRef{tableRef(s.GetRelation())}
	ins := &at.Insert{Columns: []string{}}
	for _, c := range s.GetCols() {
		rt := c.GetResTarget()
		if len(rt.GetIndirection()) > 0 {
			refuse(st, "INSERT into a field or element of a column is not supported in a global transaction")
			return nil
		}
		ins.Columns = append(ins.Columns, rt.GetName())
	}
	if len(s.GetCols()) == 0 && sel != nil {
		ins.Columns = nil // every column, in table order
	}
	if sel == nil {
		ins.Rows = [][]at.InsertValue{{}} // DEFAULT VALUES
	}
	for _, l := range sel.GetValuesLists() {
		items := l.GetList().GetItems()
		row := make([]at.InsertValue, len(items))
		for i, e := range items {
			f, err := b.expr(e)
			if err != nil {
				return err
			}
			row[i] = at.InsertValue{Kind: valueKind(e), Fragment: f}
		}
		ins.Rows = append(ins.Rows, row)
	}
	st.Insert = ins
	if oc := s.GetOnConflictClause(); oc != nil {
		st.Kind = at.KindUpsert
		switch oc.GetAction() {
		case pg.OnConflictAction_ONCONFLICT_NOTHING:
			ins.Ignore = true
		case pg.OnConflictAction_ONCONFLICT_UPDATE:
			if why := conflictRefusal(oc, ins); why != "" {
				refuse(st, why)
				return nil
			}
			for _, t := range oc.GetTargetList() {
				rt := t.GetResTarget()
				if !isExcluded(rt.GetVal(), rt.GetName()) {
					ins.Update = append(ins.Update, at.ColumnRef{Name: rt.GetName()})
				}
			}
		}
	}
	return b.finish(n, st, &s.ReturningList)
}

// conflictRefusal says why the conflict target of ON CONFLICT DO UPDATE
// cannot be imaged, or "". The images find rows by the primary and unique
// keys each row gives whole; the row DO UPDATE changes is the one the
// target finds, so every row must give every target column, and the target
// must be plain columns (no expression, collation or operator class, no
// WHERE for a partial index) naming a key the images know.
func conflictRefusal(oc *pg.OnConflictClause, ins *at.Insert) string {
	infer := oc.GetInfer()
	switch {
	case infer.GetConname() != "":
		return "ON CONFLICT ON CONSTRAINT ... DO UPDATE: name the conflict columns instead, so that each row's key can be checked"
	case infer.GetWhereClause() != nil:
		return "ON CONFLICT (...) WHERE (a partial unique index) DO UPDATE changes rows the images do not look up"
	}
	for _, e := range infer.GetIndexElems() {
		ie := e.GetIndexElem()
		if ie.GetName() == "" || len(ie.GetCollation()) > 0 || len(ie.GetOpclass()) > 0 {
			return "ON CONFLICT on an expression, collation or operator class with DO UPDATE changes rows the images do not look up"
		}
		pos := -1
		for i, c := range ins.Columns {
			if c == ie.GetName() {
				pos = i
			}
		}
		if ins.Columns == nil {
			return "ON CONFLICT ... DO UPDATE needs the INSERT's column list, so that each row's conflict columns can be checked"
		}
		for _, row := range ins.Rows {
			if pos < 0 || pos >= len(row) || row[pos].Kind != at.ValueConst {
				return "every row of ON CONFLICT ... DO UPDATE must give each conflict column (" + ie.GetName() + ") as a literal or a placeholder"
			}
		}
	}
	return ""
}

// isExcluded reports whether e is exactly excluded.col: it sets the value
// the row was found by, so every key that found it still does.
func isExcluded(e *pg.Node, col string) bool {
	f := e.GetColumnRef().GetFields()
	return len(f) == 2 && f[0].GetString_().GetSval() == "excluded" && f[1].GetString_().GetSval() == col
}

func (b *builder) update(n *pg.Node, s *pg.UpdateStmt, st *at.Statement) error {
	switch {
	case s.GetWithClause() != nil:
		refuse(st, "UPDATE with WITH is not supported in a global transaction")
		return nil
	case s.GetWhereClause().GetCurrentOfExpr() != nil:
		refuse(st, "UPDATE ... WHERE CURRENT OF a cursor is not supported in a global transaction")
		return nil
	case hasNode(s, func(m protoreflect.Message) bool { return m.Interface() != s && writes(m) }):
		refuse(st, "a writable WITH inside an UPDATE cannot be imaged")
		return nil
	}
	st.Kind = at.KindUpdate
	st.Targets = []at.TableRef{tableRef(s.GetRelation())}
	st.MultiTable = len(s.GetFromClause()) > 0
	for _, t := range s.GetTargetList() {
		st.Set = append(st.Set, at.ColumnRef{Name: t.GetResTarget().GetName()})
	}
	var err error
	items := append([]*pg.Node{{Node: &pg.Node_RangeVar{RangeVar: s.GetRelation()}}}, s.GetFromClause()...)
	if st.From, err = b.from(items); err != nil {
		return err
	}
	if st.Where, err = b.where(s.GetWhereClause()); err != nil {
		return err
	}
	return b.finish(n, st, &s.ReturningList)
}

func (b *builder) delete(n *pg.Node, s *pg.DeleteStmt, st *at.Statement) error {
	switch {
	case s.GetWithClause() != nil:
		refuse(st, "DELETE with WITH is not supported in a global transaction")
		return nil
	case s.GetWhereClause().GetCurrentOfExpr() != nil:
		refuse(st, "DELETE ... WHERE CURRENT OF a cursor is not supported in a global transaction")
		return nil
	case hasNode(s, func(m protoreflect.Message) bool { return m.Interface() != s && writes(m) }):
		refuse(st, "a writable WITH inside a DELETE cannot be imaged")
		return nil
	}
	st.Kind = at.KindDelete
	st.Targets = []at.TableRef{tableRef(s.GetRelation())}
	st.MultiTable = len(s.GetUsingClause()) > 0
	var err error
	items := append([]*pg.Node{{Node: &pg.Node_RangeVar{RangeVar: s.GetRelation()}}}, s.GetUsingClause()...)
	if st.From, err = b.from(items); err != nil {
		return err
	}
	if st.Where, err = b.where(s.GetWhereClause()); err != nil {
		return err
	}
	return b.finish(n, st, &s.ReturningList)
}
