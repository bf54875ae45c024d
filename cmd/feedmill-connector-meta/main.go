// Command feedmill-connector-meta keeps a Meta commerce catalog equal to
// feedmill's membership for its destinations, through the Graph API
// items_batch endpoint (docs/connectors.md).
package main

import (
	"os"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/connectors"
	"github.com/feedmill/feedmill/connectors/meta"
)

func main() {
	os.Exit(connectors.Main(config.PartnerMeta, os.Args[1:], os.Environ(), os.Stderr,
		func(cfg config.Connector, _ *zap.Logger) (connectors.Partner, error) {
			return meta.New(cfg, nil)
		}))
}
