package tcc

import (
	"encoding/json"
	"testing"

	"github.com/gtx-io/gtx/rm"
)

// FuzzDecodeActionContext feeds arbitrary application data to the decoder
// phase 2 uses: it never panics, and what it accepts survives a round trip.
func FuzzDecodeActionContext(f *testing.F) {
	f.Add([]byte(`{"request":{"account":"a","amount":3},"values":{"held":3}}`))
	f.Add([]byte(`{"request":null}`))
	f.Add([]byte(`{"request":{"amount":"x"}}`))
	f.Add([]byte(`{"values":{"held":1}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{})
	a := &Action[freeze]{name: "fuzz"}
	f.Fuzz(func(t *testing.T, data []byte) {
		bc, err := a.decode(rm.Branch{XID: "f:1", BranchID: 1, ApplicationData: data})
		if err != nil {
			return
		}
		raw, err := json.Marshal(bc.Request)
		if err != nil {
			t.Fatal(err)
		}
		again, err := encodeContext(raw, bc.values)
		if err != nil {
			t.Fatal(err)
		}
		bc2, err := a.decode(rm.Branch{XID: "f:1", BranchID: 1, ApplicationData: again})
		if err != nil {
			t.Fatalf("re-encoded context %s does not decode: %v", again, err)
		}
		if bc2.Request != bc.Request || len(bc2.values) != len(bc.values) {
			t.Fatalf("round trip changed %+v into %+v", bc, bc2)
		}
	})
}
