package msg

import (
	"errors"
	"testing"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"google.golang.org/protobuf/proto"
)

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind kind
		addr string
	}{
		{"nats:orders.placed", kindNATS, "orders.placed"},
		{"http://127.0.0.1:8000/events", kindHTTP, "http://127.0.0.1:8000/events"},
		{"https://orders/gtx/check", kindHTTP, "https://orders/gtx/check"},
		{"grpc://127.0.0.1:9000", kindGRPC, "127.0.0.1:9000"},
		{"", 0, ""},
		{"nats:", 0, ""},
		{"nats:orders.*", 0, ""},
		{"nats:orders.>", 0, ""},
		{"nats:orders..placed", 0, ""},
		{"nats:.orders", 0, ""},
		{"nats:orders placed", 0, ""},
		{"http://", 0, ""},
		{"grpc://", 0, ""},
		{"grpc://host:1/path", 0, ""},
		{"kafka:orders", 0, ""},
	} {
		ep, err := parseEndpoint(tc.in)
		if tc.kind == 0 {
			if !errors.Is(err, ErrInvalidMessage) {
				t.Errorf("parseEndpoint(%q) = %v, %v; want ErrInvalidMessage", tc.in, ep, err)
			}
			continue
		}
		if err != nil || ep.kind != tc.kind || ep.addr != tc.addr {
			t.Errorf("parseEndpoint(%q) = %v, %v; want kind %d addr %q", tc.in, ep, err, tc.kind, tc.addr)
		}
	}
}

func TestMessageValidate(t *testing.T) {
	ok := Message{Target: "nats:a.b"}
	for name, m := range map[string]Message{
		"payload too large": {Target: ok.Target, Payload: make([]byte, MaxPayload+1)},
		"header with colon": {Target: ok.Target, Headers: map[string]string{"a:b": "c"}},
		"empty header name": {Target: ok.Target, Headers: map[string]string{"": "c"}},
		"line break":        {Target: ok.Target, Headers: map[string]string{"a": "b\r\nX: y"}},
		"no target":         {},
	} {
		if err := m.validate(); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: validate = %v, want ErrInvalidMessage", name, err)
		}
	}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
}

// FuzzDecode feeds arbitrary branch data to the decoder the Courier runs
// on what the coordinator stored: it never panics, and what it accepts has
// a valid target.
func FuzzDecode(f *testing.F) {
	good, _ := proto.Marshal(&tcv1.MessageData{Target: "nats:a.b", Payload: []byte("x"), Check: "http://h/c", Headers: map[string]string{"K": "v"}})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decode(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("decode error %v does not match ErrInvalidMessage", err)
			}
			return
		}
		if _, err := parseEndpoint(d.GetTarget()); err != nil {
			t.Fatalf("decode accepted target %q: %v", d.GetTarget(), err)
		}
	})
}
