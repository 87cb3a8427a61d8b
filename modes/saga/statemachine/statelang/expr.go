package statelang

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Path is a parsed path: "$" followed by ".name" and "[index]" parts.
type Path []pathPart

type pathPart struct {
	name  string
	index int // used when name is ""
}

var errPath = errors.New(`a path is "$" followed by .name and [index] parts, as in $.order.items[0].sku`)

// ParsePath parses a path such as "$.order.items[0].sku".
func ParsePath(s string) (Path, error) {
	if !strings.HasPrefix(s, "$") {
		return nil, errPath
	}
	var p Path
	rest := s[1:]
	for rest != "" {
		switch rest[0] {
		case '.':
			n := 1
			for n < len(rest) && isNameByte(rest[n]) {
				n++
			}
			if n == 1 {
				return nil, fmt.Errorf("%q: empty name after '.': %w", s, errPath)
			}
			p = append(p, pathPart{name: rest[1:n]})
			rest = rest[n:]
		case '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, fmt.Errorf("%q: '[' without ']': %w", s, errPath)
			}
			i, err := strconv.Atoi(rest[1:end])
			if err != nil || i < 0 {
				return nil, fmt.Errorf("%q: index %q is not a non-negative integer: %w", s, rest[1:end], errPath)
			}
			p = append(p, pathPart{index: i})
			rest = rest[end+1:]
		default:
			return nil, fmt.Errorf("%q: unexpected %q: %w", s, rest[0], errPath)
		}
	}
	return p, nil
}

func isNameByte(c byte) bool {
	return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// Get returns the value at p in v (decoded JSON), or nil when there is
// none.
func (p Path) Get(v any) any {
	for _, part := range p {
		switch x := v.(type) {
		case map[string]any:
			if part.name == "" {
				return nil
			}
			v = x[part.name]
		case []any:
			if part.name != "" || part.index >= len(x) {
				return nil
			}
			v = x[part.index]
		default:
			return nil
		}
	}
	return v
}

// Resolve returns tmpl (decoded JSON) with every string starting with "$"
// replaced by the value its path finds in ctx.
func Resolve(tmpl any, ctx map[string]any) (any, error) {
	switch x := tmpl.(type) {
	case string:
		if !strings.HasPrefix(x, "$") {
			return x, nil
		}
		p, err := ParsePath(x)
		if err != nil {
			return nil, err
		}
		return p.Get(any(ctx)), nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, v := range x {
			r, err := Resolve(v, ctx)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, v := range x {
			r, err := Resolve(v, ctx)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return tmpl, nil
}

// checkTemplate reports the first malformed path in tmpl.
func checkTemplate(tmpl any) error {
	_, err := Resolve(tmpl, nil)
	return err
}

// Expression is a parsed Choice expression: alternatives (||) of
// conjunctions (&&) of terms.
type Expression [][]term

// term is "[!]operand" or "operand op operand".
type term struct {
	not         bool
	left, right operand
	op          string // "" for a lone operand
}

type operand struct {
	path    Path
	literal any
}

func (o operand) value(ctx map[string]any) any {
	if o.path != nil {
		return o.path.Get(any(ctx))
	}
	return o.literal
}

var comparisons = []string{"==", "!=", "<=", ">=", "<", ">"}

// ParseExpression parses a Choice expression.
func ParseExpression(s string) (Expression, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty expression")
	}
	var e Expression
	for alt := range strings.SplitSeq(s, "||") {
		var conj []term
		for part := range strings.SplitSeq(alt, "&&") {
			t, err := parseTerm(strings.TrimSpace(part))
			if err != nil {
				return nil, fmt.Errorf("%q: %w", strings.TrimSpace(part), err)
			}
			conj = append(conj, t)
		}
		e = append(e, conj)
	}
	return e, nil
}

func parseTerm(s string) (term, error) {
	var t term
	if strings.HasPrefix(s, "!") && !strings.HasPrefix(s, "!=") {
		t.not = true
		s = strings.TrimSpace(s[1:])
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			// Skip string literals so that operators inside them do not count.
			j, err := skipString(s, i)
			if err != nil {
				return t, err
			}
			i = j
			continue
		}
		for _, op := range comparisons {
			if strings.HasPrefix(s[i:], op) {
				if t.not {
					return t, errors.New("'!' applies to a lone operand, not to a comparison")
				}
				l, err := parseOperand(strings.TrimSpace(s[:i]))
				if err != nil {
					return t, err
				}
				r, err := parseOperand(strings.TrimSpace(s[i+len(op):]))
				if err != nil {
					return t, err
				}
				t.left, t.op, t.right = l, op, r
				return t, nil
			}
		}
	}
	l, err := parseOperand(s)
	t.left = l
	return t, err
}

func skipString(s string, i int) (int, error) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j, nil
		}
	}
	return 0, errors.New("unterminated string literal")
}

func parseOperand(s string) (operand, error) {
	if s == "" {
		return operand{}, errors.New("missing operand")
	}
	if strings.HasPrefix(s, "$") {
		p, err := ParsePath(s)
		return operand{path: p}, err
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return operand{}, fmt.Errorf("operand %q is neither a path nor a JSON literal", s)
	}
	switch v.(type) {
	case map[string]any, []any:
		return operand{}, fmt.Errorf("operand %q: objects and arrays cannot be compared", s)
	}
	return operand{literal: v}, nil
}

// Eval reports whether e holds for ctx.
func (e Expression) Eval(ctx map[string]any) bool {
	for _, conj := range e {
		all := true
		for _, t := range conj {
			if !t.eval(ctx) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func (t term) eval(ctx map[string]any) bool {
	l := t.left.value(ctx)
	if t.op == "" {
		return truthy(l) != t.not
	}
	r := t.right.value(ctx)
	switch t.op {
	case "==":
		return reflect.DeepEqual(l, r)
	case "!=":
		return !reflect.DeepEqual(l, r)
	}
	c, ok := compare(l, r)
	if !ok {
		return false
	}
	switch t.op {
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	default:
		return c >= 0
	}
}

func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case float64:
		return x != 0
	case string:
		return x != ""
	}
	return true
}

// compare orders two numbers or two strings.
func compare(l, r any) (int, bool) {
	switch a := l.(type) {
	case float64:
		if b, ok := r.(float64); ok {
			switch {
			case a < b:
				return -1, true
			case a > b:
				return 1, true
			}
			return 0, true
		}
	case string:
		if b, ok := r.(string); ok {
			return strings.Compare(a, b), true
		}
	}
	return 0, false
}
