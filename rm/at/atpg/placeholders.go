package atpg

import (
	"fmt"
	"strconv"
	"strings"
)

// scanMode says what scanSQL does with placeholders.
type scanMode int

const (
	// toMarkers turns $n into "?" and reports n-1 for each; a bare "?" is
	// an error.
	toMarkers scanMode = iota
	// toNumbers turns each "?" into $1, $2, ... in text order; a $n is an
	// error.
	toNumbers
)

// scanSQL rewrites the placeholders of text outside string constants,
// quoted identifiers, dollar quotes and OPERATOR(...) names. text is SQL
// the deparser or the proxy wrote: it has no comments.
func scanSQL(text string, mode scanMode) (string, []int, error) {
	var sb strings.Builder
	sb.Grow(len(text) + 8)
	var args []int
	next := 1
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\'':
			escapes := i > 0 && (text[i-1] == 'E' || text[i-1] == 'e') && (i < 2 || !identChar(text[i-2]))
			end := skipQuoted(text, i, '\'', escapes)
			sb.WriteString(text[i:end])
			i = end
		case c == '"':
			end := skipQuoted(text, i, '"', false)
			sb.WriteString(text[i:end])
			i = end
		case c == '$' && (i == 0 || !identChar(text[i-1])):
			j := i + 1
			for j < len(text) && text[j] >= '0' && text[j] <= '9' {
				j++
			}
			if j > i+1 {
				if mode == toNumbers {
					return "", nil, fmt.Errorf("atpg: numbered placeholder %s in a query the proxy numbers", text[i:j])
				}
				n, err := strconv.Atoi(text[i+1 : j])
				if err != nil || n < 1 {
					return "", nil, fmt.Errorf("atpg: bad placeholder %s", text[i:j])
				}
				args = append(args, n-1)
				sb.WriteByte('?')
				i = j
				continue
			}
			// A dollar quote: $tag$ ... $tag$.
			for j < len(text) && identChar(text[j]) && text[j] != '$' {
				j++
			}
			if j < len(text) && text[j] == '$' {
				tag := text[i : j+1]
				end := strings.Index(text[j+1:], tag)
				if end < 0 {
					return "", nil, fmt.Errorf("atpg: unterminated dollar quote %s", tag)
				}
				end += j + 1 + len(tag)
				sb.WriteString(text[i:end])
				i = end
				continue
			}
			sb.WriteByte(c)
			i++
		case (c == 'O' || c == 'o') && (i == 0 || !identChar(text[i-1])) && len(text)-i >= 9 && strings.EqualFold(text[i:i+9], "OPERATOR("):
			end := strings.IndexByte(text[i:], ')')
			if end < 0 {
				return "", nil, fmt.Errorf("atpg: unterminated OPERATOR(")
			}
			end += i + 1
			sb.WriteString(text[i:end])
			i = end
		case c == '?':
			if mode == toMarkers {
				return "", nil, fmt.Errorf("atpg: unexpected ? outside a string in %q", text)
			}
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(next))
			next++
			i++
		default:
			sb.WriteByte(c)
			i++
		}
	}
	return sb.String(), args, nil
}

// skipQuoted returns the index after the quoted text starting at text[i],
// a doubled quote standing for one, and backslash escaping the next byte
// when escapes is set. Unterminated text runs to the end.
func skipQuoted(text string, i int, q byte, escapes bool) int {
	for j := i + 1; j < len(text); j++ {
		switch text[j] {
		case '\\':
			if escapes {
				j++
			}
		case q:
			if j+1 < len(text) && text[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(text)
}

func identChar(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
