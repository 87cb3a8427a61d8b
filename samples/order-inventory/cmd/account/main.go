// Command account runs the sample's account service: HTTP
// GET /v1/accounts/{user} and the samplev1.Account gRPC service. Run with -h
// for its flags; each has an environment variable too.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/gtx-io/gtx/samples/order-inventory/account"
	"github.com/gtx-io/gtx/samples/order-inventory/service"
)

func main() {
	cfg := service.DefaultConfig("account")
	cfg.HTTPAddr, cfg.GRPCAddr, cfg.DSN = "127.0.0.1:8003", "127.0.0.1:9003", "account.db"
	token, level := service.Flags(flag.CommandLine, &cfg)
	flag.Parse()
	service.Main("account", func(ctx context.Context) (func(), error) {
		log, err := service.Logger(*level)
		if err != nil {
			return nil, err
		}
		if err := token(); err != nil {
			return nil, err
		}
		cfg.Logger = log
		s, err := account.New(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return s.Close, nil
	})
	os.Exit(0)
}
