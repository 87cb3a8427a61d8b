package tm

import (
	"context"
	"testing"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// BenchmarkGetStatusRPC is the baseline: one unary round trip to the
// in-memory coordinator over loopback gRPC.
func BenchmarkGetStatusRPC(b *testing.B) {
	m, _, _ := newManager(b, nil)
	tx, err := m.Begin(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.client.GetStatus(context.Background(), &tcv1.GetStatusRequest{Xid: tx.XID()}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWithGlobalTx measures a whole empty global transaction: begin and
// commit, two round trips.
func BenchmarkWithGlobalTx(b *testing.B) {
	m, _, _ := newManager(b, nil)
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := m.WithGlobalTx(context.Background(), "bench", fn); err != nil {
			b.Fatal(err)
		}
	}
}
