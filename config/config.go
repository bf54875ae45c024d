package config

import "time"

// Config mirrors docs/contract.md, Config keys. Load/Parse decode it strictly, apply
// defaults and validate it.
type Config struct {
	Kafka          Kafka          `yaml:"kafka"`
	SchemaRegistry SchemaRegistry `yaml:"schema_registry"`
	State          State          `yaml:"state"`
	HTTP           HTTP           `yaml:"http"`
	FullPass       FullPass       `yaml:"full_pass"`
	Processor      Processor      `yaml:"processor"`
	Feeds          []Feed         `yaml:"feeds"`
	Templates      []Template     `yaml:"templates"`
}

// Kafka says where the brokers are and which topics and group to use.
type Kafka struct {
	Brokers    []string `yaml:"brokers"`     // default [127.0.0.1:9092]
	GroupID    string   `yaml:"group_id"`    // default feedmill
	InstanceID string   `yaml:"instance_id"` // optional static membership
	// SessionTimeout is how long the group waits for a member that
	// stopped heartbeating (a crash, or a static member that stopped)
	// before its partitions move to the others.
	SessionTimeout time.Duration `yaml:"session_timeout"` // default 45s
	Topics         Topics        `yaml:"topics"`
	TLS            TLS           `yaml:"tls"`
	SASL           SASL          `yaml:"sasl"`
}

// Topics names every topic feedmill touches.
type Topics struct {
	Offers  string `yaml:"offers"`  // default offers
	Sellers string `yaml:"sellers"` // default sellers
	Ratings string `yaml:"ratings"` // default ratings
	Events  string `yaml:"events"`  // default feed-events
	Rejects string `yaml:"rejects"` // default feedmill-rejects
	// Changelog is the processor's compacted changelog topic, with as
	// many partitions as Offers: a replica of each offers partition's
	// state that an instance gaining the partition restores from.
	Changelog string `yaml:"changelog"` // default <group_id>-changelog
	// Runs is the run log: one partition, shared by the group's
	// instances, that records the full passes (started, parts stored,
	// held, approved, published) in one order all of them fold.
	Runs string `yaml:"runs"` // default <group_id>-runs
	// GroupCandidates is the repartition topic of grouped feeds: each
	// offer's candidacy for (feed, group key), on the partition of the
	// key. GroupDecisions carries the groups' winner decisions back to
	// each offer's own partition. Both have as many partitions as Offers
	// (docs/grouped-feeds.md).
	// Feeds is the feed log: one partition, compacted, shared by the
	// group's instances: the feed definitions in force and the held
	// feed changes (live feed changes).
	Feeds           string `yaml:"feeds"`            // default <group_id>-feeds
	GroupCandidates string `yaml:"group_candidates"` // default <group_id>-group-candidates
	GroupDecisions  string `yaml:"group_decisions"`  // default <group_id>-group-decisions
}

// TLS configures TLS to the brokers; disabled unless Enabled.
type TLS struct {
	Enabled  bool   `yaml:"enabled"`
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the broker certificate.
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASL configures broker authentication; Mechanism "" disables it.
type SASL struct {
	Mechanism    string `yaml:"mechanism"` // PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// SchemaRegistry says where the Confluent-compatible registry is.
type SchemaRegistry struct {
	URL          string `yaml:"url"` // default http://127.0.0.1:8081
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// State is where the Pebble state, outbox and published files live.
type State struct {
	Dir                string        `yaml:"dir"`                 // default ./data
	TombstoneRetention time.Duration `yaml:"tombstone_retention"` // default 168h
	// MinFreeBytes is the free space Dir's file system must have at
	// start, or the processor refuses to start; 0 disables the check.
	MinFreeBytes int64 `yaml:"min_free_bytes"` // default 1073741824 (1 GiB)
}

// HTTP is the one listener for health, metrics, API and feed files.
type HTTP struct {
	Listen     string `yaml:"listen"`      // default 127.0.0.1:8080
	AdminToken string `yaml:"admin_token"` // when set, /api/* needs it as a bearer token
	// AllowAnonymousAdmin lets an empty AdminToken pass validation with a
	// non-loopback Listen (/api/* open to anyone who reaches it).
	AllowAnonymousAdmin bool `yaml:"allow_anonymous_admin"` // default false
}

// FullPass configures the periodic full pass.
type FullPass struct {
	Interval     time.Duration `yaml:"interval"`      // default 1h; 0 = only on demand
	RefreshAfter time.Duration `yaml:"refresh_after"` // default 672h
	Guard        Guard         `yaml:"guard"`
	// Store is where feed files go: a blob URL, file:///dir (the
	// default is file://<state.dir>/feeds), s3://bucket?region=..
	// (any S3-compatible store) or gs://bucket. Several instances need a
	// store they all reach.
	Store string `yaml:"store"` // default "" = file://<state.dir>/feeds
	// Timeout fails a run whose partitions' parts are not all stored
	// this long after it started (the failure names the partitions).
	Timeout time.Duration `yaml:"timeout"` // default 1h
	// CompressionLevel of the stored feed files (deflate, served to
	// gzip clients as stored): 1 is the fastest pass, 9 the smallest
	// files (level 6: about 15% fewer bytes, a 25% slower pass).
	CompressionLevel int `yaml:"compression_level"` // default 1
}

// Guard holds a run whose feed sizes moved more than these bounds.
type Guard struct {
	MaxDrop   float64 `yaml:"max_drop"`   // default 0.2
	MaxGrowth float64 `yaml:"max_growth"` // default 1.0
	MinSize   int     `yaml:"min_size"`   // default 100
}

// Processor tunes the streaming processor (docs/contract.md, Config keys).
type Processor struct {
	// MaxBatchRecords caps the input records applied in one Pebble batch.
	MaxBatchRecords int `yaml:"max_batch_records"` // default 2000
	// SellerChunk is how many offers one seller/rating re-evaluation
	// step handles in one Pebble batch.
	SellerChunk int `yaml:"seller_chunk"` // default 500
	// MaxEventBytes bounds one outgoing record (key, value and headers).
	// An offer whose event could exceed it is rejected with the reason and
	// is in no feed until a smaller version arrives. It must fit the
	// events and rejects topics' max.message.bytes (checked at start).
	MaxEventBytes int `yaml:"max_event_bytes"` // default 1000000
	// Workers is how many partition tasks apply input (or seller job
	// chunks) at once: one per core uses all of them.
	Workers int `yaml:"workers"` // default GOMAXPROCS
	// StandbyReplicas is how many other instances keep a standby copy of
	// each offers partition's state, following its changelog, so that a
	// partition moving to one of them needs no restore.
	StandbyReplicas int `yaml:"standby_replicas"` // default 0
	// BackfillRate bounds how many offers per second this instance
	// re-evaluates after a feed change (0: no bound), so live changes
	// keep their latency while a backfill runs.
	BackfillRate int `yaml:"backfill_rate"` // default 10000
}

// Feed is one marketing feed (docs/contract.md, Feeds).
type Feed struct {
	ID           string   `yaml:"id"`
	Filter       string   `yaml:"filter"`
	Template     string   `yaml:"template"`
	Destinations []string `yaml:"destinations"`
	File         bool     `yaml:"file"`
	// Unbounded lifts the compile-time rules against runaway filters and
	// template values (nested loops over record data, large or
	// non-constant ranges, string building in reduce/map). The per-run
	// evaluation budget still applies.
	Unbounded bool `yaml:"unbounded"` // default false
	// Group, when set, keeps one offer per key (docs/grouped-feeds.md).
	Group *Group `yaml:"group"`
}

// Group keeps one member per key: of the offers passing the filter with
// the same By, the one with the smallest (Pick "min") or largest ("max")
// Of; ties go to the lowest offer id.
type Group struct {
	By   string `yaml:"by"`   // expr; a nil key: the offer is in no group
	Pick string `yaml:"pick"` // min | max
	Of   string `yaml:"of"`   // expr giving a number or a time
}

// Group picks.
const (
	PickMin = "min"
	PickMax = "max"
)

// Template is a custom XML template (docs/contract.md, Templates).
type Template struct {
	ID     string          `yaml:"id"`
	Root   string          `yaml:"root"`
	Item   string          `yaml:"item"`
	Fields []TemplateField `yaml:"fields"`
}

// TemplateField is one element of a custom template's item.
type TemplateField struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}
