// Command feedmill-connector-webhook posts feed events for its
// destinations as signed JSON batches to a URL (docs/connectors.md).
package main

import (
	"os"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/connectors"
	"github.com/feedmill/feedmill/connectors/webhook"
)

func main() {
	os.Exit(connectors.Main(config.PartnerWebhook, os.Args[1:], os.Environ(), os.Stderr,
		func(cfg config.Connector, _ *zap.Logger) (connectors.Partner, error) {
			return webhook.New(cfg, nil)
		}))
}
