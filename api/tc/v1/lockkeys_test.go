package tcv1_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

func TestEscapeLockKey(t *testing.T) {
	for in, want := range map[string]string{
		"u1":    "u1",
		"":      "",
		"a_b":   "a%5Fb",
		"x:y,z": "x%3Ay%2Cz",
		"50%;":  "50%25%3B",
	} {
		if got := tcv1.EscapeLockKey(in); got != want {
			t.Errorf("EscapeLockKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLockKey(t *testing.T) {
	tests := []struct {
		table string
		pk    []string
		want  string
	}{
		{"stock", []string{"A"}, "stock:A"},
		{"order_item", []string{"7", "a_b"}, "order%5Fitem:7_a%5Fb"},
		{"t", []string{"x;y"}, "t:x%3By"},
	}
	for _, tt := range tests {
		if got := tcv1.LockKey(tt.table, tt.pk...); got != tt.want {
			t.Errorf("LockKey(%q, %q) = %q, want %q", tt.table, tt.pk, got, tt.want)
		}
	}
}

func TestParseLockKeys(t *testing.T) {
	tests := []struct {
		keys    string
		want    []tcv1.RowKey
		invalid bool
	}{
		{keys: ""},
		{keys: "t:1", want: []tcv1.RowKey{{"t", "1"}}},
		{keys: "t:1,2;u:3", want: []tcv1.RowKey{{"t", "1"}, {"t", "2"}, {"u", "3"}}},
		{keys: "t:1;;t:1,1", want: []tcv1.RowKey{{"t", "1"}}},
		{keys: "t", invalid: true},
		{keys: ":1", invalid: true},
		{keys: "t:", invalid: true},
		{keys: "t:1,,2", invalid: true},
	}
	for _, tt := range tests {
		got, err := tcv1.ParseLockKeys(tt.keys)
		if tt.invalid {
			if !errors.Is(err, tcv1.ErrInvalidLockKeys) || got != nil {
				t.Errorf("ParseLockKeys(%q) = %v, %v; want ErrInvalidLockKeys", tt.keys, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseLockKeys(%q) = %v, %v; want %v", tt.keys, got, err, tt.want)
		}
	}
}

// FuzzLockKey checks that any table and key values encode to lock keys that
// parse back to exactly one row, the encoded one, and that parsing anything
// never panics.
func FuzzLockKey(f *testing.F) {
	f.Add("stock", "A", "")
	f.Add("a:b", "1,2", "x;y_z%")
	f.Fuzz(func(t *testing.T, table, pk1, pk2 string) {
		_, _ = tcv1.ParseLockKeys(table + pk1 + pk2)
		if table == "" || pk1 == "" {
			return
		}
		pk := []string{pk1}
		if pk2 != "" {
			pk = append(pk, pk2)
		}
		keys := tcv1.LockKey(table, pk...)
		rows, err := tcv1.ParseLockKeys(keys)
		if err != nil || len(rows) != 1 {
			t.Fatalf("ParseLockKeys(%q) = %v, %v; want one row", keys, rows, err)
		}
		if rows[0].Table != tcv1.EscapeLockKey(table) || rows[0].PK != tcv1.LockPK(pk...) || strings.Count(keys, ":") != 1 {
			t.Fatalf("LockKey(%q, %q) = %q parsed as %v", table, pk, keys, rows)
		}
	})
}
