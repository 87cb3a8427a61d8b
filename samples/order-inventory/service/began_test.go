package service

import (
	"context"
	"testing"
)

func TestRecordBegun(t *testing.T) {
	recordBegun(context.Background(), "ignored: nothing asked for it")
	var xid string
	ctx := RecordBegun(context.Background(), &xid)
	recordBegun(context.WithValue(ctx, struct{}{}, "derived"), "127.0.0.1:8091:1")
	recordBegun(ctx, "127.0.0.1:8091:2")
	if xid != "127.0.0.1:8091:1" {
		t.Fatalf("recorded %q, want the first transaction begun", xid)
	}
}
