package gtx

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestValidateXID(t *testing.T) {
	tests := []struct {
		name string
		xid  string
		ok   bool
	}{
		{"decimal", "1862358103928201216", true},
		{"seata style", "10.0.0.1:8091:2612341", true},
		{"max length", strings.Repeat("a", MaxXIDLen), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", MaxXIDLen+1), false},
		{"space", "abc def", false},
		{"newline", "abc\n", false},
		{"slash", "a/b", false},
		{"non ascii", "xïd", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateXID(tt.xid)
			if tt.ok && err != nil {
				t.Fatalf("ValidateXID(%q) = %v, want nil", tt.xid, err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidXID) {
				t.Fatalf("ValidateXID(%q) = %v, want ErrInvalidXID", tt.xid, err)
			}
		})
	}
}

func TestContextXID(t *testing.T) {
	ctx := context.Background()
	if _, ok := XIDFromContext(ctx); ok {
		t.Fatal("empty context carries an xid")
	}
	ctx = ContextWithXID(ctx, "42")
	if xid, ok := XIDFromContext(ctx); !ok || xid != "42" {
		t.Fatalf("XIDFromContext = %q, %v", xid, ok)
	}
	if _, ok := XIDFromContext(ContextWithoutXID(ctx)); ok {
		t.Fatal("ContextWithoutXID still carries an xid")
	}
	if GlobalLockFromContext(ctx) || !GlobalLockFromContext(WithGlobalLock(ctx)) {
		t.Fatal("global lock flag wrong")
	}
}

func FuzzValidateXID(f *testing.F) {
	f.Add("123")
	f.Add("a:b:c")
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateXID(s) == nil {
			if s == "" || len(s) > MaxXIDLen || strings.ContainsAny(s, " \n\t/") {
				t.Fatalf("accepted %q", s)
			}
		}
	})
}
