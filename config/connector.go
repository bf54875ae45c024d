package config

import (
	"math"
	"time"
)

// Connector is the config of a feedmill-connector-<partner> binary. It is
// loaded by the same rules as Config (strict YAML, FEEDMILL_<PATH>
// overrides, defaults for absent keys). Validate checks the generic part;
// each binary also calls ValidatePartner for its own section.
type Connector struct {
	Kafka          Kafka          `yaml:"kafka"` // defaults as Config's, but group_id feedmill-connector
	SchemaRegistry SchemaRegistry `yaml:"schema_registry"`
	// Destinations are the FeedEvent destinations this connector
	// delivers; required.
	Destinations []string `yaml:"destinations"`
	// DeadLetterTopic receives the records the partner refused for good
	// and the undecodable ones, in the rejects layout (docs/contract.md,
	// Rejects); default feedmill-rejects, the topic the processor writes
	// too.
	DeadLetterTopic string        `yaml:"dead_letter_topic"`
	StateDir        string        `yaml:"state_dir"` // default ./connector-data
	HTTP            ConnectorHTTP `yaml:"http"`
	Batch           Batch         `yaml:"batch"`
	RateLimit       RateLimit     `yaml:"rate_limit"`
	Concurrency     int           `yaml:"concurrency"` // default 4
	Retry           Retry         `yaml:"retry"`
	Merchant        Merchant      `yaml:"merchant"`
	Meta            Meta          `yaml:"meta"`
	Webhook         Webhook       `yaml:"webhook"`
}

// ConnectorHTTP is a connector's listener for health and metrics.
type ConnectorHTTP struct {
	Listen string `yaml:"listen"` // default 127.0.0.1:8090
}

// Batch bounds the partner requests a connector builds.
type Batch struct {
	MaxItems int           `yaml:"max_items"` // default 500
	MaxWait  time.Duration `yaml:"max_wait"`  // default 1s
}

// RateLimit caps the requests per second sent to the partner.
type RateLimit struct {
	PerSecond float64 `yaml:"per_second"` // 0 = no limit
	Burst     int     `yaml:"burst"`      // default 1
}

// Retry is the back-off for failed partner requests.
type Retry struct {
	Initial     time.Duration `yaml:"initial"`      // default 200ms
	Max         time.Duration `yaml:"max"`          // default 30s
	MaxAttempts int           `yaml:"max_attempts"` // default 10
	Timeout     time.Duration `yaml:"timeout"`      // per request, default 30s
}

// Merchant configures the Google Merchant API connector.
type Merchant struct {
	BaseURL         string `yaml:"base_url"` // default https://merchantapi.googleapis.com
	AccountID       string `yaml:"account_id"`
	DataSource      string `yaml:"data_source"`
	ContentLanguage string `yaml:"content_language"` // default en
	FeedLabel       string `yaml:"feed_label"`       // default PL
	// CredentialsFile is a service-account JSON key file.
	CredentialsFile string `yaml:"credentials_file"`
}

// Meta configures the Meta catalog batch API connector.
type Meta struct {
	BaseURL         string        `yaml:"base_url"` // default https://graph.facebook.com/v21.0
	CatalogID       string        `yaml:"catalog_id"`
	AccessToken     string        `yaml:"access_token"`
	AccessTokenFile string        `yaml:"access_token_file"`
	PollInterval    time.Duration `yaml:"poll_interval"` // default 2s
}

// Webhook configures the generic signed-webhook connector.
type Webhook struct {
	URL        string `yaml:"url"`
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
}

// DefaultDeadLetterTopic is the default dead_letter_topic: the rejects
// topic (docs/contract.md, Topics), which the processor and the
// connectors share.
const DefaultDeadLetterTopic = "feedmill-rejects"

// Partner section names accepted by ValidatePartner.
const (
	PartnerMerchant = "merchant"
	PartnerMeta     = "meta"
	PartnerWebhook  = "webhook"
)

// ParseConnector decodes, overrides, defaults and validates a connector
// config exactly as Parse does for Config (including returning the
// Connector alongside a validation error). It does not check a partner
// section; call ValidatePartner for that.
func ParseConnector(data []byte, environ []string) (*Connector, error) {
	return parseAs[Connector](data, environ)
}

// LoadConnector reads the file at path and parses it as ParseConnector
// does. Errors are wrapped with the file name.
func LoadConnector(path string, environ []string) (*Connector, error) {
	return loadAs[Connector](path, environ, "connector config")
}

// DefaultConnector returns a Connector holding every default and nothing
// else. It is not validated (it has no destinations).
func DefaultConnector() Connector {
	var c Connector
	c.applyDefaults(presence{})
	return c
}

func (c *Connector) applyDefaults(p presence) {
	applyKafkaDefaults(p, "kafka", &c.Kafka, "feedmill-connector")
	setDefault(p, "schema_registry.url", &c.SchemaRegistry.URL, "http://127.0.0.1:8081")
	setDefault(p, "dead_letter_topic", &c.DeadLetterTopic, DefaultDeadLetterTopic)
	setDefault(p, "state_dir", &c.StateDir, "./connector-data")
	setDefault(p, "http.listen", &c.HTTP.Listen, "127.0.0.1:8090")
	setDefault(p, "batch.max_items", &c.Batch.MaxItems, 500)
	setDefault(p, "batch.max_wait", &c.Batch.MaxWait, time.Second)
	setDefault(p, "rate_limit.burst", &c.RateLimit.Burst, 1)
	setDefault(p, "concurrency", &c.Concurrency, 4)
	setDefault(p, "retry.initial", &c.Retry.Initial, 200*time.Millisecond)
	setDefault(p, "retry.max", &c.Retry.Max, 30*time.Second)
	setDefault(p, "retry.max_attempts", &c.Retry.MaxAttempts, 10)
	setDefault(p, "retry.timeout", &c.Retry.Timeout, 30*time.Second)
	setDefault(p, "merchant.base_url", &c.Merchant.BaseURL, "https://merchantapi.googleapis.com")
	setDefault(p, "merchant.content_language", &c.Merchant.ContentLanguage, "en")
	setDefault(p, "merchant.feed_label", &c.Merchant.FeedLabel, "PL")
	setDefault(p, "meta.base_url", &c.Meta.BaseURL, "https://graph.facebook.com/v21.0")
	setDefault(p, "meta.poll_interval", &c.Meta.PollInterval, 2*time.Second)
}

// Validate checks the partner-independent part of c and returns a
// *ValidationError listing every problem, or nil.
func (c *Connector) Validate() error {
	var ps problems
	checkKafka(&ps, "kafka", &c.Kafka)
	checkRegistry(&ps, "schema_registry", &c.SchemaRegistry)
	if len(c.Destinations) == 0 {
		ps.add("destinations", "must not be empty")
	}
	checkStringList(&ps, "destinations", c.Destinations, "destination")
	checkNonEmpty(&ps, "dead_letter_topic", c.DeadLetterTopic)
	if c.DeadLetterTopic != "" && c.DeadLetterTopic == c.Kafka.Topics.Events {
		ps.add("dead_letter_topic", "same topic %q as kafka.topics.events", c.DeadLetterTopic)
	}
	checkNonEmpty(&ps, "state_dir", c.StateDir)
	checkListen(&ps, "http.listen", c.HTTP.Listen)
	checkPositive(&ps, "batch.max_items", c.Batch.MaxItems)
	checkNonNegative(&ps, "batch.max_wait", c.Batch.MaxWait)
	if math.IsNaN(c.RateLimit.PerSecond) || c.RateLimit.PerSecond < 0 {
		ps.add("rate_limit.per_second", "must not be negative, got %v", c.RateLimit.PerSecond)
	}
	checkPositive(&ps, "rate_limit.burst", c.RateLimit.Burst)
	checkPositive(&ps, "concurrency", c.Concurrency)
	if c.Retry.Initial <= 0 {
		ps.add("retry.initial", "must be greater than 0, got %s", c.Retry.Initial)
	}
	if c.Retry.Max < c.Retry.Initial {
		ps.add("retry.max", "must not be less than retry.initial (%s), got %s", c.Retry.Initial, c.Retry.Max)
	}
	checkPositive(&ps, "retry.max_attempts", c.Retry.MaxAttempts)
	if c.Retry.Timeout <= 0 {
		ps.add("retry.timeout", "must be greater than 0, got %s", c.Retry.Timeout)
	}
	return ps.err()
}

// ValidatePartner checks the section of the named partner (PartnerMerchant,
// PartnerMeta or PartnerWebhook) that its connector binary needs, and
// returns a *ValidationError listing every problem, or nil. An unknown
// name is an error too.
func (c *Connector) ValidatePartner(name string) error {
	var ps problems
	switch name {
	case PartnerMerchant:
		m := c.Merchant
		checkHTTPURL(&ps, "merchant.base_url", m.BaseURL)
		checkNonEmpty(&ps, "merchant.account_id", m.AccountID)
		checkNonEmpty(&ps, "merchant.data_source", m.DataSource)
		checkNonEmpty(&ps, "merchant.content_language", m.ContentLanguage)
		checkNonEmpty(&ps, "merchant.feed_label", m.FeedLabel)
		checkNonEmpty(&ps, "merchant.credentials_file", m.CredentialsFile)
		checkFile(&ps, "merchant.credentials_file", m.CredentialsFile)
	case PartnerMeta:
		m := c.Meta
		checkHTTPURL(&ps, "meta.base_url", m.BaseURL)
		checkNonEmpty(&ps, "meta.catalog_id", m.CatalogID)
		if m.AccessToken == "" && m.AccessTokenFile == "" {
			ps.add("meta.access_token", "one of access_token or access_token_file must be set")
		}
		checkSecretPair(&ps, "meta", "access_token", m.AccessToken, "access_token_file", m.AccessTokenFile)
		if m.PollInterval <= 0 {
			ps.add("meta.poll_interval", "must be greater than 0, got %s", m.PollInterval)
		}
	case PartnerWebhook:
		w := c.Webhook
		checkHTTPURL(&ps, "webhook.url", w.URL)
		if w.Secret == "" && w.SecretFile == "" {
			ps.add("webhook.secret", "one of secret or secret_file must be set")
		}
		checkSecretPair(&ps, "webhook", "secret", w.Secret, "secret_file", w.SecretFile)
	default:
		ps.add(name, "unknown partner %q: want %s, %s or %s", name, PartnerMerchant, PartnerMeta, PartnerWebhook)
	}
	return ps.err()
}
