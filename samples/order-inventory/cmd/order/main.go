// Command order runs the sample's order service: HTTP POST /v1/orders,
// GET /v1/orders?user= and GET /v1/orders/{id}, calling the inventory and
// account services over gRPC. Run with -h for its flags; each has an
// environment variable too.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/gtx-io/gtx/samples/order-inventory/order"
	"github.com/gtx-io/gtx/samples/order-inventory/service"
)

func main() {
	cfg := order.Config{Config: service.DefaultConfig("order")}
	cfg.HTTPAddr, cfg.GRPCAddr, cfg.DSN = "127.0.0.1:8001", "127.0.0.1:9001", "order.db"
	token, level := service.Flags(flag.CommandLine, &cfg.Config)
	flag.StringVar(&cfg.Inventory, "inventory", service.Env("GTX_INVENTORY", "127.0.0.1:9002"), "inventory gRPC address (GTX_INVENTORY)")
	flag.StringVar(&cfg.Account, "account", service.Env("GTX_ACCOUNT", "127.0.0.1:9003"), "account gRPC address (GTX_ACCOUNT)")
	flag.Parse()
	service.Main("order", func(ctx context.Context) (func(), error) {
		log, err := service.Logger(*level)
		if err != nil {
			return nil, err
		}
		if err := token(); err != nil {
			return nil, err
		}
		cfg.Logger = log
		s, err := order.New(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return s.Close, nil
	})
	os.Exit(0)
}
