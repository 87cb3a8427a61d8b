// Package tcv1 is the generated Go code for gtx's coordinator protocol
// (tc.proto): the Coordinator gRPC service, its messages and status enums.
//
// Regenerate with `go generate ./api/...`; it needs protoc, protoc-gen-go and
// protoc-gen-go-grpc on PATH.
package tcv1

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative tc.proto
