package at

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/format"
	"github.com/pingcap/tidb/pkg/parser/mysql"
	"github.com/pingcap/tidb/pkg/parser/opcode"
	driver "github.com/pingcap/tidb/pkg/parser/test_driver"
)

// tidbParser parses MySQL syntax, and the subset of SQLite syntax MySQL
// shares, with TiDB's parser. Parsers are not safe for concurrent use, so it
// keeps a pool.
type tidbParser struct {
	mode  mysql.SQLMode
	flags format.RestoreFlags
	pool  sync.Pool
	// sqlite makes SQLite's upsert syntax readable (see
	// splitSQLiteInsert).
	sqlite bool
}

func newTiDBParser(mode mysql.SQLMode, flags format.RestoreFlags) *tidbParser {
	p := &tidbParser{mode: mode, flags: flags}
	p.pool.New = func() any {
		np := parser.New()
		np.SetSQLMode(mode)
		return np
	}
	return p
}

// returningClause matches a RETURNING clause of plain column names (or *)
// ending a statement. TiDB's parser lacks RETURNING, which SQLite and
// MariaDB have and gorm uses, so it is cut off before parsing.
var returningClause = regexp.MustCompile("(?is)^(.*\\S)\\s+RETURNING\\s+((?:[`\"]?[A-Za-z_][A-Za-z0-9_$]*[`\"]?|\\*)(?:\\s*,\\s*(?:[`\"]?[A-Za-z_][A-Za-z0-9_$]*[`\"]?|\\*))*)\\s*;?\\s*$")

// parse splits query into statements and describes each. A single INSERT,
// UPDATE or DELETE may end with RETURNING.
func (p *tidbParser) parse(query string) ([]Statement, error) {
	if m := returningClause.FindStringSubmatch(query); m != nil {
		stmts, err := p.parseStatements(m[1])
		if err == nil && len(stmts) == 1 {
			switch stmts[0].Kind {
			case KindInsert, KindUpdate, KindDelete, KindUpsert:
				for _, c := range strings.Split(m[2], ",") {
					stmts[0].Returning = append(stmts[0].Returning, strings.Trim(strings.TrimSpace(c), "`\""))
				}
				return stmts, nil
			}
		}
	}
	return p.parseStatements(query)
}

func (p *tidbParser) parseStatements(query string) ([]Statement, error) {
	if p.sqlite {
		ins, err := splitSQLiteInsert(query)
		if err != nil {
			return nil, err
		}
		if ins != nil {
			return sqliteUpsertStatement(ins, p.parseTiDB)
		}
	}
	return p.parseTiDB(query)
}

// parseTiDB parses query with TiDB's parser.
func (p *tidbParser) parseTiDB(query string) ([]Statement, error) {
	// The parser reuses its node memory on the next Parse: keep it until the
	// statements are built.
	np := p.pool.Get().(*parser.Parser)
	defer p.pool.Put(np)
	nodes, _, err := np.Parse(query, "", "")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrParse, err)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: no statement in %q", ErrParse, query)
	}
	// Placeholders are numbered by their position in the whole query text.
	var all markerCollector
	for _, n := range nodes {
		n.Accept(&all)
	}
	rank := make(map[int]int, len(all.offsets))
	sorted := append([]int(nil), all.offsets...)
	slices.Sort(sorted)
	for i, off := range sorted {
		rank[off] = i
	}
	b := &builder{flags: p.flags, rank: rank, sqlite: p.sqlite}
	out := make([]Statement, 0, len(nodes))
	for _, n := range nodes {
		st, err := b.statement(n)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// markerCollector gathers placeholder offsets in visiting order, which is
// the order Restore writes them in (LIMIT excepted; see builder.limit).
type markerCollector struct{ offsets []int }

func (c *markerCollector) Enter(n ast.Node) (ast.Node, bool) {
	if m, ok := n.(*driver.ParamMarkerExpr); ok {
		c.offsets = append(c.offsets, m.Offset)
	}
	return n, false
}

func (c *markerCollector) Leave(n ast.Node) (ast.Node, bool) { return n, true }

type builder struct {
	flags format.RestoreFlags
	// sqlite words refusals in SQLite's syntax.
	sqlite bool
	rank   map[int]int
	err    error
}

// frag restores node as SQL text with the argument positions it takes.
func (b *builder) frag(n ast.Node) Fragment {
	if n == nil || isNilNode(n) {
		return Fragment{}
	}
	var sb strings.Builder
	if err := n.Restore(format.NewRestoreCtx(b.flags, &sb)); err != nil && b.err == nil {
		b.err = fmt.Errorf("%w: restore: %v", ErrParse, err)
	}
	var c markerCollector
	n.Accept(&c)
	f := Fragment{SQL: sb.String()}
	for _, off := range c.offsets {
		f.Args = append(f.Args, b.rank[off])
	}
	return f
}

func isNilNode(n ast.Node) bool {
	switch v := n.(type) {
	case *ast.OrderByClause:
		return v == nil
	case *ast.Limit:
		return v == nil
	case *ast.TableRefsClause:
		return v == nil
	}
	return false
}

func (b *builder) join(parts []Fragment, sep string) Fragment {
	var f Fragment
	for i, p := range parts {
		if i > 0 {
			f.SQL += sep
		}
		f.SQL += p.SQL
		f.Args = append(f.Args, p.Args...)
	}
	return f
}

func (b *builder) orderBy(o *ast.OrderByClause) Fragment {
	if o == nil {
		return Fragment{}
	}
	parts := make([]Fragment, len(o.Items))
	for i, it := range o.Items {
		parts[i] = b.frag(it)
	}
	return b.join(parts, ", ")
}

// limit writes LIMIT n OFFSET m so that placeholders keep their visiting
// order (TiDB restores LIMIT m,n, which swaps them).
func (b *builder) limit(l *ast.Limit) Fragment {
	if l == nil {
		return Fragment{}
	}
	c := b.frag(l.Count)
	f := Fragment{SQL: "LIMIT " + c.SQL, Args: c.Args}
	if l.Offset != nil {
		o := b.frag(l.Offset)
		f.SQL += " OFFSET " + o.SQL
		f.Args = append(f.Args, o.Args...)
	}
	return f
}

func (b *builder) statement(n ast.StmtNode) (Statement, error) {
	st := Statement{SQL: strings.TrimRight(strings.TrimSpace(n.OriginalText()), "; \t\r\n")}
	var c markerCollector
	n.Accept(&c)
	for _, off := range c.offsets {
		st.Args = append(st.Args, b.rank[off])
	}
	slices.Sort(st.Args)
	switch s := n.(type) {
	case *ast.SelectStmt:
		b.selectStmt(s, &st)
	case *ast.SetStmt:
		st.Kind = KindPassThrough
		st.Setting = mysqlSetting(s)
	case *ast.SetOprStmt, *ast.ShowStmt, *ast.ExplainStmt, *ast.DoStmt:
		st.Kind = KindPassThrough
	case *ast.InsertStmt:
		b.insert(s, &st)
	case *ast.UpdateStmt:
		b.update(s, &st)
	case *ast.DeleteStmt:
		b.delete(s, &st)
	case ast.DDLNode:
		refuse(&st, "DDL changes the schema and cannot be undone; run it outside the global transaction")
	case *ast.BeginStmt, *ast.CommitStmt, *ast.RollbackStmt, *ast.SavepointStmt, *ast.ReleaseSavepointStmt:
		refuse(&st, "transaction control by SQL text bypasses the branch; use the *sql.Tx methods")
	default:
		refuse(&st, LeadingKeywords(st.SQL)+" cannot be undone by the AT mode; run it outside the global transaction")
	}
	if b.err != nil {
		return Statement{}, b.err
	}
	return st, nil
}

// mysqlSettings are the system variables that change how MySQL reads or
// writes values: TIMESTAMP text is in time_zone, sql_mode changes how
// strings, dates and numbers are taken, and the character sets and
// collation how text is sent and returned.
var mysqlSettings = map[string]bool{
	"time_zone": true, "sql_mode": true, "character_set_client": true, "character_set_connection": true,
	"character_set_results": true, "collation_connection": true, "names": true, "character set": true,
}

// mysqlSetting returns the first of mysqlSettings a SET statement changes,
// or "".
func mysqlSetting(s *ast.SetStmt) string {
	for _, v := range s.Variables {
		name := strings.ToLower(v.Name)
		switch v.Name {
		case ast.SetNames:
			name = "names"
		case ast.SetCharset:
			name = "character set"
		default:
			if !v.IsSystem {
				continue
			}
		}
		if mysqlSettings[name] {
			return name
		}
	}
	return ""
}

func refuse(st *Statement, why string) {
	st.Kind = KindRefused
	st.Refusal = why
}

func (b *builder) selectStmt(s *ast.SelectStmt, st *Statement) {
	if s.LockInfo == nil || s.From == nil {
		st.Kind = KindPassThrough
		return
	}
	switch s.LockInfo.LockType {
	case ast.SelectLockForUpdate, ast.SelectLockForUpdateNoWait, ast.SelectLockForUpdateWaitN:
	default:
		st.Kind = KindPassThrough
		return
	}
	if s.With != nil {
		refuse(st, "SELECT ... FOR UPDATE with WITH is not supported in a global transaction")
		return
	}
	st.Kind = KindSelectForUpdate
	st.From = b.frag(s.From)
	st.Targets = tableSources(s.From.TableRefs, nil)
	st.Where = b.frag(s.Where)
	st.OrderBy = b.orderBy(s.OrderBy)
	st.Limit = b.limit(s.Limit)
	st.MultiTable = len(st.Targets) > 1
}

// tableSources lists the base tables of a FROM tree.
func tableSources(n ast.ResultSetNode, out []TableRef) []TableRef {
	switch v := n.(type) {
	case *ast.Join:
		if v == nil {
			return out
		}
		out = tableSources(v.Left, out)
		if v.Right != nil {
			out = tableSources(v.Right, out)
		}
	case *ast.TableSource:
		if tn, ok := v.Source.(*ast.TableName); ok {
			ref := TableRef{Schema: tn.Schema.O, Name: tn.Name.O, Alias: tn.Name.O}
			if v.AsName.O != "" {
				ref.Alias = v.AsName.O
			}
			out = append(out, ref)
		}
	}
	return out
}

func (b *builder) insert(s *ast.InsertStmt, st *Statement) {
	switch {
	case s.IsReplace && b.sqlite:
		refuse(st, "REPLACE deletes and re-inserts rows it cannot image beforehand; use INSERT ... ON CONFLICT (key) DO UPDATE")
		return
	case s.IsReplace:
		refuse(st, "REPLACE deletes and re-inserts rows it cannot image beforehand; use INSERT ... ON DUPLICATE KEY UPDATE")
		return
	case s.Select != nil:
		refuse(st, "INSERT ... SELECT inserts rows whose keys are not known beforehand; insert the rows with VALUES")
		return
	case len(s.PartitionNames) > 0:
		refuse(st, "INSERT with PARTITION is not supported in a global transaction")
		return
	}
	targets := tableSources(s.Table.TableRefs, nil)
	if len(targets) != 1 {
		refuse(st, "INSERT into anything but one table is not supported in a global transaction")
		return
	}
	st.Targets = targets
	st.From = b.frag(s.Table)
	ins := &Insert{Ignore: s.IgnoreErr}
	for _, c := range s.Columns {
		ins.Columns = append(ins.Columns, c.Name.O)
	}
	for _, row := range s.Lists {
		vals := make([]InsertValue, len(row))
		for i, e := range row {
			vals[i] = InsertValue{Kind: valueKind(e), Fragment: b.frag(e)}
		}
		ins.Rows = append(ins.Rows, vals)
	}
	for _, a := range s.OnDuplicate {
		ins.Update = append(ins.Update, ColumnRef{Qualifier: a.Column.Table.O, Name: a.Column.Name.O})
	}
	st.Insert = ins
	st.Kind = KindInsert
	if ins.Ignore || len(ins.Update) > 0 {
		st.Kind = KindUpsert
	}
}

func valueKind(e ast.ExprNode) ValueKind {
	switch v := e.(type) {
	case *driver.ParamMarkerExpr:
		return ValueConst
	case *driver.ValueExpr:
		if v.Kind() == driver.KindNull {
			return ValueDefault
		}
		return ValueConst
	case *ast.DefaultExpr:
		return ValueDefault
	case *ast.UnaryOperationExpr:
		if v.Op == opcode.Minus || v.Op == opcode.Plus {
			if valueKind(v.V) == ValueConst {
				return ValueConst
			}
		}
	case *ast.ParenthesesExpr:
		return valueKind(v.Expr)
	}
	return ValueExpr
}

func (b *builder) update(s *ast.UpdateStmt, st *Statement) {
	if s.With != nil {
		refuse(st, "UPDATE with WITH is not supported in a global transaction")
		return
	}
	st.Kind = KindUpdate
	st.Ignore = s.IgnoreErr
	st.From = b.frag(s.TableRefs)
	sources := tableSources(s.TableRefs.TableRefs, nil)
	st.MultiTable = s.MultipleTable || len(sources) > 1
	assign := make([]Fragment, len(s.List))
	for i, a := range s.List {
		st.Set = append(st.Set, ColumnRef{Qualifier: a.Column.Table.O, Name: a.Column.Name.O})
		assign[i] = b.frag(a)
	}
	st.SetClause = b.join(assign, ", ")
	st.Where = b.frag(s.Where)
	st.OrderBy = b.orderBy(s.Order)
	st.Limit = b.limit(s.Limit)
	if len(sources) == 0 {
		refuse(st, "UPDATE of a derived table is not supported in a global transaction")
		return
	}
	if !st.MultiTable {
		st.Targets = sources
		return
	}
	// Targets of a multi-table UPDATE are the tables its SET assigns; an
	// unqualified column is resolved against table metadata later, so every
	// table stays a candidate.
	seen := map[string]bool{}
	for _, c := range st.Set {
		if c.Qualifier == "" {
			st.Targets = sources
			return
		}
		for _, src := range sources {
			if strings.EqualFold(src.Alias, c.Qualifier) && !seen[src.Alias] {
				seen[src.Alias] = true
				st.Targets = append(st.Targets, src)
			}
		}
	}
}

func (b *builder) delete(s *ast.DeleteStmt, st *Statement) {
	if s.With != nil {
		refuse(st, "DELETE with WITH is not supported in a global transaction")
		return
	}
	st.Kind = KindDelete
	st.Ignore = s.IgnoreErr
	st.From = b.frag(s.TableRefs)
	sources := tableSources(s.TableRefs.TableRefs, nil)
	st.Where = b.frag(s.Where)
	st.OrderBy = b.orderBy(s.Order)
	st.Limit = b.limit(s.Limit)
	if !s.IsMultiTable {
		if len(sources) != 1 {
			refuse(st, "DELETE of a derived table is not supported in a global transaction")
			return
		}
		st.Targets = sources
		return
	}
	st.MultiTable = true
	for _, tn := range s.Tables.Tables {
		found := false
		for _, src := range sources {
			if strings.EqualFold(src.Alias, tn.Name.O) && (tn.Schema.O == "" || strings.EqualFold(tn.Schema.O, src.Schema)) {
				st.Targets = append(st.Targets, src)
				found = true
				break
			}
		}
		if !found {
			refuse(st, fmt.Sprintf("DELETE names table %q that is not in its FROM clause", tn.Name.O))
			return
		}
	}
}
