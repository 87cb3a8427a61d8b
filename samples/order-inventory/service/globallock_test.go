package service

import "testing"

func TestEscapeKey(t *testing.T) {
	for in, want := range map[string]string{
		"u1":    "u1",
		"A":     "A",
		"a_b":   "a%5Fb",
		"x:y,z": "x%3Ay%2Cz",
		"50%;":  "50%25%3B",
	} {
		if got := escapeKey(in); got != want {
			t.Errorf("escapeKey(%q) = %q, want %q", in, got, want)
		}
	}
}
