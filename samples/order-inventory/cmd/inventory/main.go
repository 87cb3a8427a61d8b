// Command inventory runs the sample's inventory service: HTTP
// GET /v1/stock/{sku} and the samplev1.Inventory gRPC service. Run with -h
// for its flags; each has an environment variable too.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/gtx-io/gtx/samples/order-inventory/inventory"
	"github.com/gtx-io/gtx/samples/order-inventory/service"
)

func main() {
	cfg := service.DefaultConfig("inventory")
	cfg.HTTPAddr, cfg.GRPCAddr, cfg.DSN = "127.0.0.1:8002", "127.0.0.1:9002", "inventory.db"
	token, level := service.Flags(flag.CommandLine, &cfg)
	flag.Parse()
	service.Main("inventory", func(ctx context.Context) (func(), error) {
		log, err := service.Logger(*level)
		if err != nil {
			return nil, err
		}
		if err := token(); err != nil {
			return nil, err
		}
		cfg.Logger = log
		s, err := inventory.New(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return s.Close, nil
	})
	os.Exit(0)
}
