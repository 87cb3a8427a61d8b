package order

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		req  PlaceRequest
		ok   bool
		mode string
	}{
		{PlaceRequest{User: "u1", SKU: "A", Quantity: 1}, true, "at"},
		{PlaceRequest{User: "u1", SKU: "A", Quantity: 5, Mode: "tcc", Fail: "account", DelayMS: 100}, true, "tcc"},
		{PlaceRequest{User: "u1", SKU: "A", Quantity: 1, Mode: "saga", Fail: "order"}, true, "saga"},
		{PlaceRequest{User: "u1", SKU: "A", Quantity: 0}, false, ""},
		{PlaceRequest{User: "u1", SKU: "A", Quantity: -1}, false, ""},
		{PlaceRequest{User: "u1", SKU: "A", Quantity: 1, Mode: "xa"}, true, "xa"},
		{PlaceRequest{User: "u1", SKU: "A", Quantity: 1, Mode: "2pc"}, false, ""},
		{PlaceRequest{User: "u1", SKU: "A", Quantity: 1, Fail: "bank"}, false, ""},
		{PlaceRequest{User: "u1", SKU: "A", Quantity: 1, DelayMS: -5}, false, ""},
		{PlaceRequest{User: "u1", SKU: "A", Quantity: 1, DelayMS: MaxDelay.Milliseconds() + 1}, false, ""},
		{PlaceRequest{User: "u1", SKU: "A", Quantity: 1, DelayMS: 1 << 62}, false, ""},
		{PlaceRequest{User: "u1", SKU: "A", Quantity: MaxQuantity + 1}, false, ""},
		{PlaceRequest{User: "u1", SKU: "A", Quantity: MaxQuantity}, true, "at"},
		{PlaceRequest{SKU: "A", Quantity: 1}, false, ""},
		{PlaceRequest{User: "u1", Quantity: 1}, false, ""},
	} {
		r := tc.req
		err := r.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%+v: %v, want ok=%t", tc.req, err, tc.ok)
		}
		if tc.ok && r.Mode != tc.mode {
			t.Errorf("%+v: mode %q, want %q", tc.req, r.Mode, tc.mode)
		}
	}
}

// FuzzPlaceRequest: whatever the body, decoding and validation do not
// panic, and a request that validates is one the handler can run.
func FuzzPlaceRequest(f *testing.F) {
	for _, s := range []string{
		`{"user":"u1","sku":"A","quantity":2,"mode":"at","fail":"","delay_ms":0}`,
		`{"user":"u1","sku":"A","quantity":-2}`,
		`{"user":"u1","sku":"A","quantity":1e3,"mode":"saga"}`,
		`{"user":"u","sku":"A","quantity":1,"delay_ms":9223372036854775807}`,
		`{"quantity":"x"}`, `[]`, `null`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r PlaceRequest
		if json.Unmarshal(body, &r) != nil {
			return
		}
		if r.Validate() != nil {
			return
		}
		if r.User == "" || r.SKU == "" || r.Quantity <= 0 || r.Quantity > MaxQuantity || !slices.Contains(Modes, r.Mode) ||
			!slices.Contains(Failures, r.Fail) || r.DelayMS < 0 || r.DelayMS > MaxDelay.Milliseconds() {
			t.Fatalf("validated a request the handler cannot run: %+v", r)
		}
	})
}
