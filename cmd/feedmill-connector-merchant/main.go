// Command feedmill-connector-merchant keeps a Google Merchant Center data
// source equal to feedmill's membership for its destinations, through the
// Merchant API (docs/connectors.md).
package main

import (
	"os"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/connectors"
	"github.com/feedmill/feedmill/connectors/merchant"
)

func main() {
	os.Exit(connectors.Main(config.PartnerMerchant, os.Args[1:], os.Environ(), os.Stderr,
		func(cfg config.Connector, _ *zap.Logger) (connectors.Partner, error) {
			return merchant.New(cfg, nil)
		}))
}
