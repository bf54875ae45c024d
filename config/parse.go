package config

import (
	"fmt"
	"os"
	"runtime"
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
	return parseAs[Config](data, environ)
}

// loadable is a config type with defaults and validation (Config,
// Connector).
type loadable[T any] interface {
	*T
	applyDefaults(presence)
	Validate() error
}

// parseAs decodes strictly with env overrides, applies defaults and
// validates; a validation error comes with the decoded value.
func parseAs[T any, P loadable[T]](data []byte, environ []string) (*T, error) {
	var c T
	present, err := decode(data, environ, &c)
	if err != nil {
		return nil, err
	}
	P(&c).applyDefaults(present)
	if err := P(&c).Validate(); err != nil {
		return &c, err
	}
	return &c, nil
}

// loadAs reads path and parses it with parseAs; what names the kind of
// config in errors.
func loadAs[T any, P loadable[T]](path string, environ []string, what string) (*T, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	c, err := parseAs[T, P](data, environ)
	if err != nil {
		return c, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return c, nil
}

// Load reads the config file at path and parses it as Parse does,
// including returning the Config alongside a validation error. Errors are
// wrapped with the file name.
func Load(path string, environ []string) (*Config, error) {
	return loadAs[Config](path, environ, "config")
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
	setDefault(p, "state.min_free_bytes", &c.State.MinFreeBytes, 1<<30)
	setDefault(p, "http.listen", &c.HTTP.Listen, "127.0.0.1:8080")
	setDefault(p, "full_pass.interval", &c.FullPass.Interval, time.Hour)
	setDefault(p, "full_pass.refresh_after", &c.FullPass.RefreshAfter, 672*time.Hour)
	setDefault(p, "full_pass.timeout", &c.FullPass.Timeout, time.Hour)
	setDefault(p, "full_pass.compression_level", &c.FullPass.CompressionLevel, 1)
	setDefault(p, "full_pass.guard.max_drop", &c.FullPass.Guard.MaxDrop, 0.2)
	setDefault(p, "full_pass.guard.max_growth", &c.FullPass.Guard.MaxGrowth, 1.0)
	setDefault(p, "full_pass.guard.min_size", &c.FullPass.Guard.MinSize, 100)
	setDefault(p, "processor.max_batch_records", &c.Processor.MaxBatchRecords, 2000)
	setDefault(p, "processor.seller_chunk", &c.Processor.SellerChunk, 500)
	setDefault(p, "processor.max_event_bytes", &c.Processor.MaxEventBytes, 1_000_000)
	setDefault(p, "processor.workers", &c.Processor.Workers, runtime.GOMAXPROCS(0))
	setDefault(p, "processor.standby_replicas", &c.Processor.StandbyReplicas, 0)
	setDefault(p, "processor.backfill_rate", &c.Processor.BackfillRate, 10000)
}

// applyKafkaDefaults fills the Kafka section at path; groupID differs
// between feedmill and the connectors.
func applyKafkaDefaults(p presence, path string, k *Kafka, groupID string) {
	setDefault(p, path+".brokers", &k.Brokers, []string{"127.0.0.1:9092"})
	setDefault(p, path+".group_id", &k.GroupID, groupID)
	setDefault(p, path+".session_timeout", &k.SessionTimeout, 45*time.Second)
	setDefault(p, path+".topics.offers", &k.Topics.Offers, "offers")
	setDefault(p, path+".topics.sellers", &k.Topics.Sellers, "sellers")
	setDefault(p, path+".topics.ratings", &k.Topics.Ratings, "ratings")
	setDefault(p, path+".topics.events", &k.Topics.Events, "feed-events")
	setDefault(p, path+".topics.rejects", &k.Topics.Rejects, "feedmill-rejects")
	setDefault(p, path+".topics.changelog", &k.Topics.Changelog, k.GroupID+"-changelog")
	setDefault(p, path+".topics.runs", &k.Topics.Runs, k.GroupID+"-runs")
	setDefault(p, path+".topics.feeds", &k.Topics.Feeds, k.GroupID+"-feeds")
	setDefault(p, path+".topics.group_candidates", &k.Topics.GroupCandidates, k.GroupID+"-group-candidates")
	setDefault(p, path+".topics.group_decisions", &k.Topics.GroupDecisions, k.GroupID+"-group-decisions")
}
