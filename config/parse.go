package config

import (
	"fmt"
	"os"
	"time"
)

// Parse decodes a feedmill config from YAML data strictly, applies the
// FEEDMILL_ overrides found in environ (entries "NAME=value", as from
// os.Environ), fills defaults for keys set by neither, and validates the
// result. Problems with keys, values or variables, and validation
// problems, come back as a *ValidationError; YAML syntax errors as a
// wrapped yaml error. When decoding succeeded and only Validate failed,
// Parse returns the decoded Config together with the *ValidationError, so
// that `feedmill validate` can go on to check filters and templates; any
// other error comes with a nil Config. The returned Config is the
// caller's.
func Parse(data []byte, environ []string) (*Config, error) {
	var c Config
	present, err := decode(data, environ, &c)
	if err != nil {
		return nil, err
	}
	c.applyDefaults(present)
	if err := c.Validate(); err != nil {
		return &c, err
	}
	return &c, nil
}

// Load reads the config file at path and parses it as Parse does,
// including returning the Config alongside a validation error. Errors are
// wrapped with the file name.
func Load(path string, environ []string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data, environ)
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Default returns a Config holding every default and nothing else (no
// feeds or templates). It is not validated.
func Default() Config {
	var c Config
	c.applyDefaults(presence{})
	return c
}

// applyDefaults fills every key not in present with its default.
func (c *Config) applyDefaults(p presence) {
	applyKafkaDefaults(p, "kafka", &c.Kafka, "feedmill")
	setDefault(p, "schema_registry.url", &c.SchemaRegistry.URL, "http://127.0.0.1:8081")
	setDefault(p, "state.dir", &c.State.Dir, "./data")
	setDefault(p, "state.tombstone_retention", &c.State.TombstoneRetention, 168*time.Hour)
	setDefault(p, "http.listen", &c.HTTP.Listen, "127.0.0.1:8080")
	setDefault(p, "full_pass.interval", &c.FullPass.Interval, time.Hour)
	setDefault(p, "full_pass.refresh_after", &c.FullPass.RefreshAfter, 672*time.Hour)
	setDefault(p, "full_pass.guard.max_drop", &c.FullPass.Guard.MaxDrop, 0.2)
	setDefault(p, "full_pass.guard.max_growth", &c.FullPass.Guard.MaxGrowth, 1.0)
	setDefault(p, "full_pass.guard.min_size", &c.FullPass.Guard.MinSize, 100)
	setDefault(p, "processor.max_batch_records", &c.Processor.MaxBatchRecords, 2000)
	setDefault(p, "processor.seller_chunk", &c.Processor.SellerChunk, 500)
}

// applyKafkaDefaults fills the Kafka section at path; groupID differs
// between feedmill and the connectors.
func applyKafkaDefaults(p presence, path string, k *Kafka, groupID string) {
	setDefault(p, path+".brokers", &k.Brokers, []string{"127.0.0.1:9092"})
	setDefault(p, path+".group_id", &k.GroupID, groupID)
	setDefault(p, path+".topics.offers", &k.Topics.Offers, "offers")
	setDefault(p, path+".topics.sellers", &k.Topics.Sellers, "sellers")
	setDefault(p, path+".topics.ratings", &k.Topics.Ratings, "ratings")
	setDefault(p, path+".topics.events", &k.Topics.Events, "feed-events")
	setDefault(p, path+".topics.rejects", &k.Topics.Rejects, "feedmill-rejects")
}
