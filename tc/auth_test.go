package tc_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gtx-io/gtx/tc"
)

func TestNewAuthenticatorRefuses(t *testing.T) {
	var store tc.Store = nilStore{}
	tests := []struct {
		name   string
		tokens map[string]string
		store  tc.Store
	}{
		{"no tokens", nil, store},
		{"empty application", map[string]string{"": "t"}, store},
		{"empty token", map[string]string{"a": ""}, store},
		{"shared token", map[string]string{"a": "t", "b": "t"}, store},
		{"nil store", map[string]string{"a": "t"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tc.NewAuthenticator(tt.tokens, tt.store); !errors.Is(err, tc.ErrInvalidTokens) {
				t.Fatalf("NewAuthenticator = %v, want ErrInvalidTokens", err)
			}
		})
	}
}

func TestTokenCredentialsHideTheToken(t *testing.T) {
	c := tc.TokenCredentials{Token: "hunter2"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %s", c, c, c)} {
		if strings.Contains(s, "hunter2") {
			t.Fatalf("token printed: %s", s)
		}
	}
}

// nilStore is a Store that is never called.
type nilStore struct{ tc.Store }
