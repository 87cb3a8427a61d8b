package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestMetricsBearer(t *testing.T) {
	h := bearer([]byte("s3cret"), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	for _, tt := range []struct {
		header string
		want   int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
		{"s3cret", http.StatusUnauthorized},
		{"Bearer s3cret", http.StatusOK},
	} {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("Authorization %q: %d, want %d", tt.header, w.Code, tt.want)
		}
	}
}

func TestTxRefusesATokenInClear(t *testing.T) {
	for _, tt := range []struct {
		addr string
		ok   bool
	}{{"127.0.0.1:8091", true}, {"localhost:8091", true}, {"10.0.0.5:8091", false}, {"tc.example:8091", false}} {
		s := clientSecurity{tokenFile: writeFile(t, t.TempDir(), "token", []byte("tok"))}
		if _, err := s.dialOptions(tt.addr); (err == nil) != tt.ok {
			t.Errorf("dialOptions(%s) without --tls-ca = %v, want ok %v", tt.addr, err, tt.ok)
		}
	}
}
