package tc

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

func TestTruncateKeepsUTF8(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"short", "héllo", 10, "héllo"},
		{"exact", "abc", 3, "abc"},
		{"ascii cut", strings.Repeat("a", 40), 20, "aaaaa …(truncated)"},
		// The mark takes 15 bytes: 20-15 = 5 is inside the third "é" (bytes 4-5).
		{"cut inside a character", strings.Repeat("é", 20), 20, "éé …(truncated)"},
		{"cut inside a four-byte character", "aa" + strings.Repeat("😀", 10), 20, "aa …(truncated)"},
		{"invalid UTF-8 replaced", "a\xffb", 10, "a\uFFFDb"},
		{"n below the mark", strings.Repeat("x", 50), 3, " …(truncated)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := truncate(tt.in, tt.n)
			if got != tt.want {
				t.Fatalf("truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("truncate(%q, %d) = %q is not valid UTF-8", tt.in, tt.n, got)
			}
			if _, err := proto.Marshal(&tcv1.Transaction{LastError: got}); err != nil {
				t.Fatalf("a LastError of %q does not marshal: %v", got, err)
			}
		})
	}
}

func TestLockQuota(t *testing.T) {
	l := DefaultLimits()
	l.MaxLockKeysPerTransaction, l.MaxLockKeysPerApplication = 10, 15
	now := time.Unix(1000, 0)
	q := newLockQuota(l, time.Minute)
	take := func(xid, app, reg string, n int, want codes.Code) bool {
		t.Helper()
		counted, err := q.take(xid, app, reg, n, now)
		if status.Code(err) != want {
			t.Fatalf("take(%s, %s, %q, %d) = %v, want %v", xid, app, reg, n, err, want)
		}
		return counted
	}
	held := func(xid, app string, tx, ap int) {
		t.Helper()
		if gotTx, gotApp := q.held(xid, app); gotTx != tx || gotApp != ap {
			t.Fatalf("held(%s, %s) = %d, %d; want %d, %d", xid, app, gotTx, gotApp, tx, ap)
		}
	}
	take("x1", "a", "", 8, codes.OK)
	take("x1", "a", "", 3, codes.ResourceExhausted)
	take("x1", "b", "", 2, codes.OK)
	held("x1", "a", 10, 8)
	take("x2", "a", "", 8, codes.ResourceExhausted) // 16 for a
	take("x2", "a", "", 7, codes.OK)
	held("x2", "a", 7, 15)
	q.giveBack("x2", "a", "", 7)
	held("x2", "a", 0, 8)
	// A keyed retry is counted once.
	if !take("x2", "a", "k", 5, codes.OK) || take("x2", "a", "k", 5, codes.OK) {
		t.Fatal("a keyed retry counted again")
	}
	held("x2", "a", 5, 13)
	q.forget("x1")
	held("x1", "a", 0, 5)
	held("x1", "b", 0, 0)
	// Past the window a transaction is forgotten.
	now = now.Add(time.Minute + 2*time.Second)
	take("x3", "a", "", 1, codes.OK)
	held("x2", "a", 0, 1)
	if took := take("x4", "a", "", 0, codes.OK); took {
		t.Fatal("no keys counted as taken")
	}
}

func TestKeyedBranchID(t *testing.T) {
	seen := make(map[int64]bool)
	for _, k := range []string{"a", "b", "ab", ""} {
		for _, xid := range []string{"1", "2", "1a"} {
			id := keyedBranchID(xid, k)
			if id <= 0 || seen[id] {
				t.Fatalf("keyedBranchID(%s, %s) = %d: not positive or not distinct", xid, k, id)
			}
			seen[id] = true
			if keyedBranchID(xid, k) != id {
				t.Fatal("keyedBranchID is not deterministic")
			}
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Limits)
	}{
		{"no branch types", func(l *Limits) { l.BranchTypes = nil }},
		{"unspecified branch type", func(l *Limits) { l.BranchTypes = []tcv1.BranchType{0} }},
		{"unknown branch type", func(l *Limits) { l.BranchTypes = []tcv1.BranchType{42} }},
		{"zero keys per branch", func(l *Limits) { l.MaxLockKeysPerBranch = 0 }},
		{"transaction below branch", func(l *Limits) { l.MaxLockKeysPerTransaction = l.MaxLockKeysPerBranch - 1 }},
		{"application below transaction", func(l *Limits) { l.MaxLockKeysPerApplication = l.MaxLockKeysPerTransaction - 1 }},
		{"zero data", func(l *Limits) { l.MaxApplicationData = 0 }},
		{"zero hello timeout", func(l *Limits) { l.HelloTimeout = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := DefaultLimits()
			tt.change(&l)
			var fe *FieldError
			if err := l.validate(); !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "Limits.") || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("validate = %v, want a *FieldError naming the Limits field", err)
			}
		})
	}
	l := DefaultLimits()
	if err := l.validate(); err != nil {
		t.Fatalf("DefaultLimits: %v", err)
	}
}
