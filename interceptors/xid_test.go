package interceptors

import (
	"errors"
	"strings"
	"testing"

	"github.com/gtx-io/gtx"
)

func TestParseXID(t *testing.T) {
	tests := []struct {
		name    string
		values  []string
		want    string
		wantOK  bool
		wantErr bool
	}{
		{name: "none"},
		{name: "empty value", values: []string{""}},
		{name: "one", values: []string{"tc-1:42"}, want: "tc-1:42", wantOK: true},
		{name: "repeated same", values: []string{"a.b", "a.b"}, want: "a.b", wantOK: true},
		{name: "empty and one", values: []string{"", "x_1"}, want: "x_1", wantOK: true},
		{name: "two different", values: []string{"a", "b"}, wantErr: true},
		{name: "bad byte", values: []string{"a b"}, wantErr: true},
		{name: "newline", values: []string{"a\nb"}, wantErr: true},
		{name: "oversized", values: []string{strings.Repeat("x", gtx.MaxXIDLen+1)}, wantErr: true},
		{name: "longest", values: []string{strings.Repeat("x", gtx.MaxXIDLen)}, want: strings.Repeat("x", gtx.MaxXIDLen), wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := ParseXID(tt.values...)
			if tt.wantErr {
				if !errors.Is(err, gtx.ErrInvalidXID) {
					t.Fatalf("ParseXID(%q) error = %v, want one wrapping gtx.ErrInvalidXID", tt.values, err)
				}
				if ok || got != "" {
					t.Fatalf("ParseXID(%q) = %q, %v with an error, want nothing", tt.values, got, ok)
				}
				return
			}
			if err != nil || got != tt.want || ok != tt.wantOK {
				t.Fatalf("ParseXID(%q) = %q, %v, %v; want %q, %v, nil", tt.values, got, ok, err, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzParseXID(f *testing.F) {
	f.Add("tc-1:42", "")
	f.Add("a", "b")
	f.Add("a\x00", "a\x00")
	f.Fuzz(func(t *testing.T, a, b string) {
		xid, ok, err := ParseXID(a, b)
		if err != nil {
			if ok || xid != "" || !errors.Is(err, gtx.ErrInvalidXID) {
				t.Fatalf("ParseXID(%q, %q) = %q, %v, %v", a, b, xid, ok, err)
			}
			return
		}
		if ok != (xid != "") {
			t.Fatalf("ParseXID(%q, %q) = %q, %v", a, b, xid, ok)
		}
		if ok && gtx.ValidateXID(xid) != nil {
			t.Fatalf("ParseXID(%q, %q) accepted invalid %q", a, b, xid)
		}
	})
}
