package at

import (
	"fmt"
	"strings"
)

// SQLite's upserts (INSERT OR IGNORE, INSERT ... ON CONFLICT) are syntax
// TiDB's parser lacks. The pre-pass here lexes the statement as SQLite
// does, cuts the INSERT's conflict clause off, hands TiDB the plain INSERT
// that remains, and describes the clause itself: the columns DO UPDATE
// assigns and the placeholders it takes.

// sqlTokKind is the kind of a SQLite token.
type sqlTokKind int

const (
	tokWord   sqlTokKind = iota // keyword, bare identifier or number
	tokQuoted                   // "name", `name` or [name]
	tokString                   // 'text'
	tokParam                    // ?
	tokNamed                    // ?NNN, :name, @name, $name
	tokPunct                    // any other byte
)

// sqlTok is one token: its kind and its byte range in the input.
type sqlTok struct {
	kind       sqlTokKind
	start, end int
}

// lexSQLite splits s into tokens the way SQLite's tokenizer does, dropping
// white space and comments. It fails on an unterminated string, quoted
// name or block comment.
func lexSQLite(s string) ([]sqlTok, error) {
	var toks []sqlTok
	isWord := func(c byte) bool {
		return c == '_' || c == '$' || c >= 0x80 || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("%w: unterminated comment", ErrParse)
			}
			i += end + 4
		case c == '\'' || c == '"' || c == '`' || c == '[':
			closing, kind := c, tokQuoted
			switch c {
			case '\'':
				kind = tokString
			case '[':
				closing = ']'
			}
			j := i + 1
			for {
				k := strings.IndexByte(s[j:], closing)
				if k < 0 {
					return nil, fmt.Errorf("%w: unterminated %c", ErrParse, c)
				}
				j += k + 1
				// A doubled quote stands for itself; [name] has no escape.
				if closing != ']' && j < len(s) && s[j] == closing {
					j++
					continue
				}
				break
			}
			toks = append(toks, sqlTok{kind: kind, start: i, end: j})
			i = j
		case c == '?':
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			kind := tokParam
			if j > i+1 {
				kind = tokNamed
			}
			toks = append(toks, sqlTok{kind: kind, start: i, end: j})
			i = j
		case (c == ':' || c == '@' || c == '$') && i+1 < len(s) && isWord(s[i+1]):
			j := i + 1
			for j < len(s) && isWord(s[j]) {
				j++
			}
			toks = append(toks, sqlTok{kind: tokNamed, start: i, end: j})
			i = j
		case isWord(c):
			j := i + 1
			for j < len(s) && isWord(s[j]) {
				j++
			}
			toks = append(toks, sqlTok{kind: tokWord, start: i, end: j})
			i = j
		default:
			toks = append(toks, sqlTok{kind: tokPunct, start: i, end: i + 1})
			i++
		}
	}
	return toks, nil
}

// upsertLexer walks the tokens of one statement.
type upsertLexer struct {
	s    string
	toks []sqlTok
	i    int
}

func (l *upsertLexer) done() bool { return l.i >= len(l.toks) }

// word reports whether token i is the bare word w, in any case.
func (l *upsertLexer) word(i int, w string) bool {
	return i < len(l.toks) && l.toks[i].kind == tokWord && strings.EqualFold(l.s[l.toks[i].start:l.toks[i].end], w)
}

// punct reports whether token i is the byte c.
func (l *upsertLexer) punct(i int, c byte) bool {
	return i < len(l.toks) && l.toks[i].kind == tokPunct && l.s[l.toks[i].start] == c
}

// ident returns token i as a name, unquoted, and whether it is one.
func (l *upsertLexer) ident(i int) (string, bool) {
	if i >= len(l.toks) {
		return "", false
	}
	t := l.toks[i]
	text := l.s[t.start:t.end]
	switch t.kind {
	case tokWord:
		if c := text[0]; c >= '0' && c <= '9' {
			return "", false
		}
		return text, true
	case tokQuoted:
		q := text[:1]
		if q == "[" {
			return text[1 : len(text)-1], true
		}
		return strings.ReplaceAll(text[1:len(text)-1], q+q, q), true
	}
	return "", false
}

// conflictAt reports whether ON CONFLICT starts at token i.
func (l *upsertLexer) conflictAt(i int) bool { return l.word(i, "ON") && l.word(i+1, "CONFLICT") }

// skipExpr moves past an expression: up to the first token, outside
// parentheses, that is a comma (when commaEnds), WHERE, DO, ON CONFLICT,
// RETURNING or the end. It returns the expression's tokens.
func (l *upsertLexer) skipExpr(commaEnds bool) ([]sqlTok, error) {
	start, depth := l.i, 0
	for ; !l.done(); l.i++ {
		switch {
		case l.punct(l.i, '('):
			depth++
		case l.punct(l.i, ')'):
			if depth--; depth < 0 {
				return nil, fmt.Errorf("%w: unbalanced ) in ON CONFLICT", ErrParse)
			}
		case depth > 0:
		case commaEnds && l.punct(l.i, ','), l.word(l.i, "WHERE"), l.word(l.i, "DO"), l.conflictAt(l.i), l.word(l.i, "RETURNING"):
			if l.i == start {
				return nil, fmt.Errorf("%w: expression expected in ON CONFLICT", ErrParse)
			}
			return l.toks[start:l.i], nil
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%w: unbalanced ( in ON CONFLICT", ErrParse)
	}
	if l.i == start {
		return nil, fmt.Errorf("%w: expression expected in ON CONFLICT", ErrParse)
	}
	return l.toks[start:l.i], nil
}

// names reads a parenthesized list of plain names; ok is false when an
// item is anything else (an expression, COLLATE, a sort order).
func (l *upsertLexer) names() (names []string, ok bool, err error) {
	l.i++ // (
	ok = true
	for {
		name, isName := l.ident(l.i)
		if isName && (l.punct(l.i+1, ',') || l.punct(l.i+1, ')')) {
			names = append(names, name)
			l.i++
		} else {
			ok = false
			depth := 0
			for ; !l.done() && (depth > 0 || !l.punct(l.i, ',') && !l.punct(l.i, ')')); l.i++ {
				if l.punct(l.i, '(') {
					depth++
				} else if l.punct(l.i, ')') {
					depth--
				}
			}
		}
		switch {
		case l.punct(l.i, ','):
			l.i++
		case l.punct(l.i, ')'):
			l.i++
			return names, ok, nil
		default:
			return nil, false, fmt.Errorf("%w: unterminated column list in ON CONFLICT", ErrParse)
		}
	}
}

// upsertClause is what SQLite's ON CONFLICT clauses of one INSERT do.
type upsertClause struct {
	// update lists the columns DO UPDATE assigns, leaving out col =
	// excluded.col, which keeps the value the row was found by.
	update []ColumnRef
	// nothing is set when some clause is DO NOTHING.
	nothing bool
	// targets are the conflict targets of the DO UPDATE clauses.
	targets [][]string
	// refusal says why the clause cannot be imaged safely.
	refusal string
}

// parseConflict reads one or more ON CONFLICT clauses up to the end of the
// tokens.
func (l *upsertLexer) parseConflict() (*upsertClause, error) {
	u := &upsertClause{}
	refuse := func(why string) {
		if u.refusal == "" {
			u.refusal = why
		}
	}
	for !l.done() {
		if !l.conflictAt(l.i) {
			return nil, fmt.Errorf("%w: ON CONFLICT expected at %q", ErrParse, abbreviate(l.s[l.toks[l.i].start:], 40))
		}
		l.i += 2
		var target []string
		hasTarget, partial := false, false
		if l.punct(l.i, '(') {
			names, plain, err := l.names()
			if err != nil {
				return nil, err
			}
			hasTarget = true
			target = names
			if !plain {
				refuse("ON CONFLICT target names an expression, a collation or a sort order; list the unique key's plain columns")
			}
			if l.word(l.i, "WHERE") {
				l.i++
				if _, err := l.skipExpr(false); err != nil {
					return nil, err
				}
				partial = true
			}
		}
		if !l.word(l.i, "DO") {
			return nil, fmt.Errorf("%w: DO expected after ON CONFLICT", ErrParse)
		}
		l.i++
		switch {
		case l.word(l.i, "NOTHING"):
			l.i++
			u.nothing = true
			continue
		case l.word(l.i, "UPDATE") && l.word(l.i+1, "SET"):
			l.i += 2
		default:
			return nil, fmt.Errorf("%w: NOTHING or UPDATE SET expected after DO", ErrParse)
		}
		switch {
		case !hasTarget:
			refuse("ON CONFLICT DO UPDATE without a conflict target may change a row found by any unique key; name the target columns")
		case partial:
			refuse("ON CONFLICT target with WHERE names a partial unique index, which the AT mode does not look rows up by; use a full unique key")
		}
		u.targets = append(u.targets, target)
		if err := l.assignments(u); err != nil {
			return nil, err
		}
		if l.word(l.i, "WHERE") {
			l.i++
			if _, err := l.skipExpr(false); err != nil {
				return nil, err
			}
		}
	}
	return u, nil
}

// assignments reads the SET list of DO UPDATE into u.update.
func (l *upsertLexer) assignments(u *upsertClause) error {
	for {
		var cols []string
		single := false
		if l.punct(l.i, '(') {
			names, plain, err := l.names()
			if err != nil {
				return err
			}
			if !plain || len(names) == 0 {
				return fmt.Errorf("%w: column list expected in DO UPDATE SET", ErrParse)
			}
			cols = names
		} else {
			name, ok := l.ident(l.i)
			if !ok {
				return fmt.Errorf("%w: column expected in DO UPDATE SET", ErrParse)
			}
			cols, single = []string{name}, true
			l.i++
		}
		if !l.punct(l.i, '=') {
			return fmt.Errorf("%w: = expected in DO UPDATE SET", ErrParse)
		}
		l.i++
		expr, err := l.skipExpr(true)
		if err != nil {
			return err
		}
		if !single || !l.isExcluded(expr, cols[0]) {
			for _, c := range cols {
				u.update = append(u.update, ColumnRef{Name: c})
			}
		}
		if !l.punct(l.i, ',') {
			return nil
		}
		l.i++
	}
}

// isExcluded reports whether expr is exactly excluded.col: the value the
// INSERT gave the column.
func (l *upsertLexer) isExcluded(expr []sqlTok, col string) bool {
	if len(expr) != 3 || expr[1].kind != tokPunct || l.s[expr[1].start] != '.' {
		return false
	}
	sub := &upsertLexer{s: l.s, toks: expr}
	q, ok1 := sub.ident(0)
	c, ok2 := sub.ident(2)
	return ok1 && ok2 && strings.EqualFold(q, "excluded") && strings.EqualFold(c, col)
}

// sqliteInsert is a SQLite INSERT the pre-pass rewrote for TiDB.
type sqliteInsert struct {
	// sql is the statement's own text, without a trailing semicolon.
	sql string
	// head is the INSERT TiDB reads: INSERT OR IGNORE written as INSERT
	// IGNORE, INSERT OR ABORT as INSERT, the ON CONFLICT clauses cut off.
	head string
	// headParams and params count the placeholders of head and of the
	// whole statement.
	headParams, params int
	// ignore is set for INSERT OR IGNORE.
	ignore bool
	// clause describes ON CONFLICT; nil when there is none.
	clause *upsertClause
	// refusal says why the statement cannot run in a global transaction;
	// head is then empty.
	refusal string
}

// splitSQLiteInsert finds SQLite's upsert syntax in query. It returns nil
// when query has none (TiDB reads it as it is), and an error matching
// ErrParse for a query it cannot read: an upsert must be the query's only
// statement, and its placeholders plain ?.
func splitSQLiteInsert(query string) (*sqliteInsert, error) {
	toks, err := lexSQLite(query)
	if err != nil {
		// TiDB reports what it makes of it.
		return nil, nil
	}
	// Statements, split at semicolons outside parentheses.
	var stmts [][]sqlTok
	depth, from := 0, 0
	for i := 0; i <= len(toks); i++ {
		if i < len(toks) {
			switch {
			case toks[i].kind != tokPunct:
				continue
			case query[toks[i].start] == '(':
				depth++
				continue
			case query[toks[i].start] == ')':
				depth--
				continue
			case query[toks[i].start] != ';' || depth != 0:
				continue
			}
		}
		if i > from {
			stmts = append(stmts, toks[from:i])
		}
		from = i + 1
	}
	found := -1
	for n, st := range stmts {
		l := &upsertLexer{s: query, toks: st}
		if !l.word(0, "INSERT") {
			continue
		}
		special := l.word(1, "OR")
		depth := 0
		for i := range st {
			switch {
			case l.punct(i, '('):
				depth++
			case l.punct(i, ')'):
				depth--
			case depth == 0 && l.conflictAt(i):
				special = true
			}
		}
		if special {
			found = n
			break
		}
	}
	if found < 0 {
		return nil, nil
	}
	if len(stmts) > 1 {
		return nil, fmt.Errorf("%w: a SQLite upsert (INSERT OR ..., ON CONFLICT) must be the only statement of its query", ErrParse)
	}
	st := stmts[0]
	l := &upsertLexer{s: query, toks: st}
	ins := &sqliteInsert{sql: query[st[0].start:st[len(st)-1].end]}
	for _, t := range st {
		switch t.kind {
		case tokParam:
			ins.params++
		case tokNamed:
			return nil, fmt.Errorf("%w: placeholder %s: the AT mode reads only ? placeholders", ErrParse, query[t.start:t.end])
		}
	}
	headFrom, headVerb := st[0].end, "INSERT"
	if l.word(1, "OR") {
		switch {
		case l.word(2, "IGNORE"):
			ins.ignore, headVerb = true, "INSERT IGNORE"
		case l.word(2, "ABORT"):
		case l.word(2, "REPLACE"):
			ins.refusal = "INSERT OR REPLACE deletes and re-inserts rows it cannot image beforehand; use INSERT ... ON CONFLICT (key) DO UPDATE"
			return ins, nil
		case l.word(2, "FAIL"):
			ins.refusal = "INSERT OR FAIL keeps the rows inserted before a failing one, which the images would miss; use INSERT or INSERT OR IGNORE"
			return ins, nil
		case l.word(2, "ROLLBACK"):
			ins.refusal = "INSERT OR ROLLBACK ends the local transaction on a conflict, bypassing the branch; use INSERT"
			return ins, nil
		default:
			return nil, fmt.Errorf("%w: IGNORE, ABORT, REPLACE, FAIL or ROLLBACK expected after INSERT OR", ErrParse)
		}
		headFrom = st[2].end
	}
	headTo := len(st)
	depth = 0
	for i := range st {
		if l.punct(i, '(') {
			depth++
		} else if l.punct(i, ')') {
			depth--
		} else if depth == 0 && l.conflictAt(i) {
			headTo = i
			break
		}
	}
	if headTo == 0 || st[headTo-1].end <= headFrom {
		return nil, fmt.Errorf("%w: INSERT without a table before ON CONFLICT", ErrParse)
	}
	ins.head = headVerb + query[headFrom:st[headTo-1].end]
	for _, t := range st[:headTo] {
		if t.kind == tokParam {
			ins.headParams++
		}
	}
	if headTo < len(st) {
		cl := &upsertLexer{s: query, toks: st[headTo:]}
		if ins.clause, err = cl.parseConflict(); err != nil {
			return nil, err
		}
	}
	return ins, nil
}

// sqliteUpsertStatement describes a statement splitSQLiteInsert rewrote,
// with parse reading its head.
func sqliteUpsertStatement(ins *sqliteInsert, parse func(string) ([]Statement, error)) ([]Statement, error) {
	var args []int
	for i := range ins.params {
		args = append(args, i)
	}
	if ins.refusal != "" {
		return []Statement{{Kind: KindRefused, SQL: ins.sql, Args: args, Refusal: ins.refusal}}, nil
	}
	stmts, err := parse(ins.head)
	if err != nil {
		return nil, err
	}
	if len(stmts) != 1 {
		return nil, fmt.Errorf("%w: the INSERT before ON CONFLICT reads as %d statements", ErrParse, len(stmts))
	}
	if len(stmts[0].Args) != ins.headParams {
		return nil, fmt.Errorf("%w: the INSERT before ON CONFLICT has %d placeholders by SQLite's reading and %d by TiDB's", ErrParse, ins.headParams, len(stmts[0].Args))
	}
	st := stmts[0]
	st.SQL, st.Args = ins.sql, args
	if st.Kind == KindRefused {
		return []Statement{st}, nil
	}
	if st.Insert == nil || (st.Kind != KindInsert && st.Kind != KindUpsert) {
		return nil, fmt.Errorf("%w: INSERT expected before ON CONFLICT", ErrParse)
	}
	if ins.ignore {
		st.Insert.Ignore, st.Kind = true, KindUpsert
	}
	u := ins.clause
	if u == nil {
		return []Statement{st}, nil
	}
	if u.refusal != "" {
		refuse(&st, u.refusal)
		return []Statement{st}, nil
	}
	st.Kind = KindUpsert
	if u.nothing {
		st.Insert.Ignore = true
	}
	st.Insert.Update = u.update
	// The row DO UPDATE changes is the one its target finds: every row must
	// give the target's columns as constants, or the images would miss it.
	for _, target := range u.targets {
		for _, col := range target {
			pos := -1
			for i, c := range st.Insert.Columns {
				if strings.EqualFold(c, col) {
					pos = i
				}
			}
			if pos < 0 && st.Insert.Columns != nil {
				refuse(&st, fmt.Sprintf("INSERT ... ON CONFLICT DO UPDATE leaves conflict target column %s to its default; give it in every row", col))
				return []Statement{st}, nil
			}
			for _, row := range st.Insert.Rows {
				for i, v := range row {
					if (pos < 0 || i == pos) && v.Kind != ValueConst {
						refuse(&st, fmt.Sprintf("INSERT ... ON CONFLICT DO UPDATE must give conflict target column %s as a literal or a placeholder in every row", col))
						return []Statement{st}, nil
					}
				}
			}
		}
	}
	return []Statement{st}, nil
}
