// Package samplev1 is the generated Go code of the sample's internal gRPC
// API (sample.proto): the Inventory and Account services the order service
// calls inside its global transactions.
//
// Regenerate with `go generate ./samples/order-inventory/api/...`; it needs
// protoc, protoc-gen-go and protoc-gen-go-grpc on PATH.
package samplev1

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative sample.proto
