package grpcgtx_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"

	"github.com/gtx-io/gtx"
	"github.com/gtx-io/gtx/internal/gtxtest"
)

// BenchmarkUnaryRoundTrip measures a loopback unary call carrying an XID,
// with and without the gtx interceptors on both sides.
func BenchmarkUnaryRoundTrip(b *testing.B) {
	ctx := gtx.ContextWithXID(context.Background(), "tc-1:119785929077428228")
	for _, bc := range []struct {
		name string
		cc   func(b *testing.B) grpc.ClientConnInterface
	}{
		{"plain", func(b *testing.B) grpc.ClientConnInterface {
			return serveRaw(b, &gtxtest.Echo{})
		}},
		{"gtx", func(b *testing.B) grpc.ClientConnInterface {
			return serveGTX(b, &gtxtest.Echo{})
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cc := bc.cc(b)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := gtxtest.Call(ctx, cc, gtxtest.MethodUnary, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
