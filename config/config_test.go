package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// validConfig returns a Config that passes Validate: the defaults, one
// custom template and feeds that use it and a built-in.
func validConfig() Config {
	c := Default()
	c.Templates = []Template{{
		ID: "partner-x", Root: "products", Item: "product",
		Fields: []TemplateField{{Name: "id", Value: "offer.id"}, {Name: "g:price", Value: "offer.price"}},
	}}
	c.Feeds = []Feed{
		{ID: "phones-gmc", Filter: "offer.stock > 0", Template: TemplateGoogleMerchant, Destinations: []string{"gmc"}, File: true},
		{ID: "x-1", Filter: "true", Template: "partner-x"},
	}
	return c
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// problemsOf returns the problems in err, failing the test if err is not
// a *ValidationError.
func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	return ve.Problems
}

func TestValidConfigPasses(t *testing.T) {
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestValidateMessages(t *testing.T) {
	dir := t.TempDir()
	exists := writeFile(t, dir, "exists.pem", "x")
	secretFile := writeFile(t, dir, "secret", testSecret)
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name     string
		mutate   func(c *Config)
		wantPath string
		wantMsg  string
	}{
		{"no brokers", func(c *Config) { c.Kafka.Brokers = nil }, "kafka.brokers", "must not be empty"},
		{"bad broker", func(c *Config) { c.Kafka.Brokers = []string{"b1:9092", "nohost"} }, "kafka.brokers[1]", `invalid address "nohost": want host:port`},
		{"broker without host", func(c *Config) { c.Kafka.Brokers = []string{":9092"} }, "kafka.brokers[0]", "invalid address"},
		{"broker bad port", func(c *Config) { c.Kafka.Brokers = []string{"h:port"} }, "kafka.brokers[0]", "invalid address"},
		{"no group", func(c *Config) { c.Kafka.GroupID = "" }, "kafka.group_id", "must not be empty"},
		{"empty topic", func(c *Config) { c.Kafka.Topics.Sellers = "" }, "kafka.topics.sellers", "must not be empty"},
		{"same topic", func(c *Config) { c.Kafka.Topics.Ratings = "offers" }, "kafka.topics.ratings", `same topic "offers" as kafka.topics.offers`},
		{"ca file missing", func(c *Config) { c.Kafka.TLS.CAFile = missing }, "kafka.tls.ca_file", "no such file"},
		{"tls file is dir", func(c *Config) { c.Kafka.TLS.CAFile = dir }, "kafka.tls.ca_file", "is a directory"},
		{"cert without key", func(c *Config) { c.Kafka.TLS.CertFile = exists }, "kafka.tls.key_file", "must be set when cert_file is set"},
		{"key without cert", func(c *Config) { c.Kafka.TLS.KeyFile = exists }, "kafka.tls.cert_file", "must be set when key_file is set"},
		{"sasl mechanism", func(c *Config) {
			c.Kafka.SASL = SASL{Mechanism: "GSSAPI", Username: "u", Password: testSecret}
		}, "kafka.sasl.mechanism", `unknown mechanism "GSSAPI": want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`},
		{"sasl no username", func(c *Config) { c.Kafka.SASL = SASL{Mechanism: SASLPlain, Password: testSecret} }, "kafka.sasl.username", "must be set when mechanism is set"},
		{"sasl no password", func(c *Config) { c.Kafka.SASL = SASL{Mechanism: SASLScramSHA256, Username: "u"} }, "kafka.sasl.password", "one of password or password_file must be set"},
		{"sasl both passwords", func(c *Config) {
			c.Kafka.SASL = SASL{Mechanism: SASLScramSHA512, Username: "u", Password: testSecret, PasswordFile: secretFile}
		}, "kafka.sasl.password", "set password or password_file, not both"},
		{"sasl password file missing", func(c *Config) {
			c.Kafka.SASL = SASL{Mechanism: SASLPlain, Username: "u", PasswordFile: missing}
		}, "kafka.sasl.password_file", "no such file"},
		{"sasl username without mechanism", func(c *Config) { c.Kafka.SASL = SASL{Username: "u", Password: testSecret} }, "kafka.sasl.mechanism", "must be set when username or password is set"},
		{"registry empty", func(c *Config) { c.SchemaRegistry.URL = "" }, "schema_registry.url", "must not be empty"},
		{"registry scheme", func(c *Config) { c.SchemaRegistry.URL = "ftp://r:8081" }, "schema_registry.url", "scheme must be http or https"},
		{"registry unparsable", func(c *Config) { c.SchemaRegistry.URL = "http://[::1" }, "schema_registry.url", `invalid URL "http://[::1"`},
		{"registry no host", func(c *Config) { c.SchemaRegistry.URL = "http://" }, "schema_registry.url", "no host"},
		{"registry both passwords", func(c *Config) {
			c.SchemaRegistry.Username, c.SchemaRegistry.Password, c.SchemaRegistry.PasswordFile = "u", testSecret, secretFile
		}, "schema_registry.password", "not both"},
		{"registry password without user", func(c *Config) { c.SchemaRegistry.Password = testSecret }, "schema_registry.username", "must be set when a password is set"},
		{"registry password file missing", func(c *Config) {
			c.SchemaRegistry.Username, c.SchemaRegistry.PasswordFile = "u", missing
		}, "schema_registry.password_file", "no such file"},
		{"state dir", func(c *Config) { c.State.Dir = " " }, "state.dir", "must not be empty"},
		{"tombstone retention", func(c *Config) { c.State.TombstoneRetention = -time.Hour }, "state.tombstone_retention", "must not be negative, got -1h0m0s"},
		{"listen", func(c *Config) { c.HTTP.Listen = "8080" }, "http.listen", `invalid listen address "8080"`},
		{"interval", func(c *Config) { c.FullPass.Interval = -time.Second }, "full_pass.interval", "must not be negative"},
		{"refresh after", func(c *Config) { c.FullPass.RefreshAfter = -time.Second }, "full_pass.refresh_after", "must not be negative"},
		{"max drop high", func(c *Config) { c.FullPass.Guard.MaxDrop = 1.5 }, "full_pass.guard.max_drop", "must be between 0 and 1, got 1.5"},
		{"max drop low", func(c *Config) { c.FullPass.Guard.MaxDrop = -0.1 }, "full_pass.guard.max_drop", "must be between 0 and 1"},
		{"max growth", func(c *Config) { c.FullPass.Guard.MaxGrowth = -1 }, "full_pass.guard.max_growth", "must not be negative"},
		{"min size", func(c *Config) { c.FullPass.Guard.MinSize = -1 }, "full_pass.guard.min_size", "must not be negative"},
		{"timeout", func(c *Config) { c.FullPass.Timeout = -time.Second }, "full_pass.timeout", "must not be negative"},
		{"group pick", func(c *Config) {
			c.Feeds = []Feed{{ID: "g", Filter: "true", Template: TemplateGoogleMerchant, Group: &Group{By: "offer.product_id", Pick: "cheapest", Of: "offer.price"}}}
		}, "feeds[0] (g).group.pick", `must be "min" or "max", got "cheapest"`},
		{"group of", func(c *Config) {
			c.Feeds = []Feed{{ID: "g", Filter: "true", Template: TemplateGoogleMerchant, Group: &Group{By: "offer.product_id", Pick: "min"}}}
		}, "feeds[0] (g).group.of", "must not be empty"},
		{"compression level", func(c *Config) { c.FullPass.CompressionLevel = 10 }, "full_pass.compression_level", "must be between 1 (fastest) and 9 (smallest), got 10"},
		{"store scheme", func(c *Config) { c.FullPass.Store = "ftp://x/y" }, "full_pass.store", `must be a blob URL: file:///dir, s3://bucket?region=... or gs://bucket, got "ftp://x/y"`},
		{"runs topic", func(c *Config) { c.Kafka.Topics.Runs = c.Kafka.Topics.Offers }, "kafka.topics.runs", `same topic "offers" as kafka.topics.offers`},
		{"max batch records", func(c *Config) { c.Processor.MaxBatchRecords = 0 }, "processor.max_batch_records", "must be greater than 0, got 0"},
		{"seller chunk", func(c *Config) { c.Processor.SellerChunk = -5 }, "processor.seller_chunk", "must be greater than 0, got -5"},
		{"max event bytes", func(c *Config) { c.Processor.MaxEventBytes = 100 }, "processor.max_event_bytes", "must be between 16384 and 67108864, got 100"},
		{"workers", func(c *Config) { c.Processor.Workers = 0 }, "processor.workers", "must be between 1 and 256, got 0"},
		{"standby replicas", func(c *Config) { c.Processor.StandbyReplicas = -1 }, "processor.standby_replicas", "must be between 0 and 8, got -1"},
		{"feed id empty", func(c *Config) { c.Feeds[1].ID = "" }, "feeds[1].id", "must not be empty"},
		{"feed id pattern", func(c *Config) { c.Feeds[1].ID = "Phones_GMC" }, "feeds[1].id", `invalid feed id "Phones_GMC": must match [a-z0-9][a-z0-9-]*`},
		{"feed id leading dash", func(c *Config) { c.Feeds[1].ID = "-x" }, "feeds[1].id", "invalid feed id"},
		{"feed id duplicate", func(c *Config) {
			c.Feeds = append(c.Feeds, Feed{ID: "y", Filter: "true", Template: TemplateCeneo}, Feed{ID: "x-1", Filter: "true", Template: TemplateCeneo})
		}, "feeds[3].id", `duplicate feed id "x-1" (also feeds[1])`},
		{"feed filter", func(c *Config) { c.Feeds[1].Filter = "  " }, "feeds[1] (x-1).filter", "must not be empty"},
		{"feed template empty", func(c *Config) { c.Feeds[0].Template = "" }, "feeds[0] (phones-gmc).template", "must not be empty"},
		{"feed template unknown", func(c *Config) { c.Feeds[0].Template = "x" }, "feeds[0] (phones-gmc).template", `unknown template "x"`},
		{"destination empty", func(c *Config) { c.Feeds[0].Destinations = []string{"gmc", ""} }, "feeds[0] (phones-gmc).destinations[1]", "must not be empty"},
		{"destination duplicate", func(c *Config) { c.Feeds[0].Destinations = []string{"gmc", "b", "gmc"} }, "feeds[0] (phones-gmc).destinations[2]", `duplicate destination "gmc" (also destinations[0])`},
		{"template id empty", func(c *Config) { c.Templates[0].ID = ""; c.Feeds = c.Feeds[:1] }, "templates[0].id", "must not be empty"},
		{"template shadows builtin", func(c *Config) { c.Templates[0].ID = TemplateCeneo; c.Feeds = c.Feeds[:1] }, "templates[0].id", `template id "ceneo" shadows a built-in template`},
		{"template duplicate", func(c *Config) { c.Templates = append(c.Templates, c.Templates[0]) }, "templates[1].id", `duplicate template id "partner-x" (also templates[0])`},
		{"template root", func(c *Config) { c.Templates[0].Root = "1products" }, "templates[0] (partner-x).root", `invalid XML name "1products"`},
		{"template item", func(c *Config) { c.Templates[0].Item = "" }, "templates[0] (partner-x).item", "must not be empty"},
		{"template no fields", func(c *Config) { c.Templates[0].Fields = nil }, "templates[0] (partner-x).fields", "must have at least one field"},
		{"field name", func(c *Config) { c.Templates[0].Fields[0].Name = "a b" }, "templates[0] (partner-x).fields[0].name", `invalid XML name "a b"`},
		{"field name two colons", func(c *Config) { c.Templates[0].Fields[1].Name = "g:a:b" }, "templates[0] (partner-x).fields[1].name", "invalid XML name"},
		{"field name empty prefix", func(c *Config) { c.Templates[0].Fields[1].Name = ":id" }, "templates[0] (partner-x).fields[1].name", "invalid XML name"},
		{"field value", func(c *Config) { c.Templates[0].Fields[1].Value = "" }, "templates[0] (partner-x).fields[1].value", "must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			ps := problemsOf(t, c.Validate())
			if len(ps) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(ps), &ValidationError{Problems: ps})
			}
			if ps[0].Path != tt.wantPath || !strings.Contains(ps[0].Message, tt.wantMsg) {
				t.Fatalf("got %q, want path %q and message containing %q", ps[0], tt.wantPath, tt.wantMsg)
			}
		})
	}
}

func TestValidationErrorListsEveryProblem(t *testing.T) {
	c := validConfig()
	c.Kafka.Brokers = nil
	c.Processor.SellerChunk = 0
	c.Feeds[0].Template = "nope"
	err := c.Validate()
	want := "kafka.brokers: must not be empty\n" +
		"processor.seller_chunk: must be greater than 0, got 0\n" +
		`feeds[0] (phones-gmc).template: unknown template "nope"`
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
}

func TestPathsWithoutID(t *testing.T) {
	c := validConfig()
	c.Feeds[1].ID, c.Feeds[1].Template = "", ""
	c.Templates = append(c.Templates, Template{Root: "r", Item: "i", Fields: []TemplateField{{Name: "n"}}})
	want := "feeds[1].id: must not be empty\n" +
		"feeds[1].template: must not be empty\n" +
		"templates[1].id: must not be empty\n" +
		"templates[1].fields[0].value: must not be empty"
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
}

func TestValidXMLNames(t *testing.T) {
	for _, name := range []string{"id", "g:id", "_x", "a.b-c", "żółw", "item2"} {
		var ps problems
		checkXMLName(&ps, "n", name)
		if len(ps) != 0 {
			t.Errorf("%q: %v", name, ps)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Kafka: Kafka{
			Brokers: []string{"127.0.0.1:9092"},
			GroupID: "feedmill", SessionTimeout: 45 * time.Second,
			Topics: Topics{Offers: "offers", Sellers: "sellers", Ratings: "ratings", Events: "feed-events", Rejects: "feedmill-rejects", Changelog: "feedmill-changelog", Runs: "feedmill-runs", Feeds: "feedmill-feeds", GroupCandidates: "feedmill-group-candidates", GroupDecisions: "feedmill-group-decisions"},
		},
		SchemaRegistry: SchemaRegistry{URL: "http://127.0.0.1:8081"},
		State:          State{Dir: "./data", TombstoneRetention: 168 * time.Hour, MinFreeBytes: 1 << 30},
		HTTP:           HTTP{Listen: "127.0.0.1:8080"},
		FullPass: FullPass{
			Interval: time.Hour, RefreshAfter: 672 * time.Hour, Timeout: time.Hour, CompressionLevel: 1,
			Guard: Guard{MaxDrop: 0.2, MaxGrowth: 1.0, MinSize: 100},
		},
		Processor: Processor{MaxBatchRecords: 2000, SellerChunk: 500, MaxEventBytes: 1_000_000, Workers: runtime.GOMAXPROCS(0), BackfillRate: 10000},
	}
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("got %+v\nwant %+v", *c, want)
	}
	if d := Default(); !reflect.DeepEqual(d, want) {
		t.Fatalf("Default() = %+v", d)
	}
}

func TestParseFile(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c *Config)
	}{
		{"grouped feed", "feeds:\n  - id: g\n    filter: \"true\"\n    template: google-merchant\n    group: {by: offer.product_id, pick: min, of: offer.price}\n", func(t *testing.T, c *Config) {
			if g := c.Feeds[0].Group; g == nil || *g != (Group{By: "offer.product_id", Pick: PickMin, Of: "offer.price"}) {
				t.Fatalf("group = %+v", g)
			}
		}},
		{"explicit zero interval kept", "full_pass:\n  interval: 0\n", func(t *testing.T, c *Config) {
			if c.FullPass.Interval != 0 || c.FullPass.RefreshAfter != 672*time.Hour {
				t.Fatalf("full_pass = %+v", c.FullPass)
			}
		}},
		{"explicit zero guard kept", "full_pass:\n  guard: {max_drop: 0, min_size: 0}\n", func(t *testing.T, c *Config) {
			if g := c.FullPass.Guard; g.MaxDrop != 0 || g.MinSize != 0 || g.MaxGrowth != 1.0 {
				t.Fatalf("guard = %+v", g)
			}
		}},
		{"durations", "state: {tombstone_retention: 90s}\nfull_pass: {interval: 1h30m, refresh_after: \"24h\"}\n", func(t *testing.T, c *Config) {
			if c.State.TombstoneRetention != 90*time.Second || c.FullPass.Interval != 90*time.Minute || c.FullPass.RefreshAfter != 24*time.Hour {
				t.Fatalf("got %+v %+v", c.State, c.FullPass)
			}
		}},
		{"null counts as absent", "kafka:\n  brokers:\nfull_pass:\n  interval: ~\nhttp:\n", func(t *testing.T, c *Config) {
			if c.FullPass.Interval != time.Hour || len(c.Kafka.Brokers) != 1 {
				t.Fatalf("got %+v %+v", c.FullPass, c.Kafka)
			}
		}},
		{"values", "kafka:\n  brokers: [a:1, b:2]\n  topics: {events: ev}\n  tls: {enabled: true}\nhttp: {admin_token: s3cret}\nfeeds:\n  - {id: a, filter: \"true\", template: ceneo, destinations: [d1, d2], file: true}\n", func(t *testing.T, c *Config) {
			want := Feed{ID: "a", Filter: "true", Template: "ceneo", Destinations: []string{"d1", "d2"}, File: true}
			if !reflect.DeepEqual(c.Kafka.Brokers, []string{"a:1", "b:2"}) || c.Kafka.Topics.Events != "ev" ||
				c.Kafka.Topics.Offers != "offers" || !c.Kafka.TLS.Enabled || c.HTTP.AdminToken != "s3cret" ||
				len(c.Feeds) != 1 || !reflect.DeepEqual(c.Feeds[0], want) {
				t.Fatalf("got %+v", c)
			}
		}},
		{"anchors and aliases", "kafka:\n  topics: {offers: &o offers-v2}\nfeeds:\n  - {id: a, filter: &f \"true\", template: ceneo}\n  - {id: b, filter: *f, template: ceneo}\n", func(t *testing.T, c *Config) {
			if c.Kafka.Topics.Offers != "offers-v2" || c.Feeds[1].Filter != "true" {
				t.Fatalf("got %+v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseFileErrors(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		wantPath string
		wantMsg  string
	}{
		{"unknown top-level key", "kafka: {}\nfeeds_x: []\n", "feeds_x", "unknown key (line 2)"},
		{"unknown nested key", "kafka:\n  brokers: [a:1]\n  topics:\n    offerz: o\n", "kafka.topics.offerz", "unknown key (line 4)"},
		{"unknown key in feed", "feeds:\n  - id: a\n    filter: \"true\"\n    template: ceneo\n    colour: red\n", "feeds[0].colour", "unknown key (line 5)"},
		{"unknown key in template field", "templates:\n  - id: t\n    fields:\n      - {name: a, value: b, kind: x}\n", "templates[0].fields[0].kind", "unknown key (line 4)"},
		{"bad duration", "full_pass:\n  interval: 10\n", "full_pass.interval", `invalid duration "10": want a Go duration such as 90s, 1h or 0 (line 2)`},
		{"bad duration word", "state: {tombstone_retention: week}\n", "state.tombstone_retention", `invalid duration "week"`},
		{"duration as list", "full_pass:\n  refresh_after: [1h]\n", "full_pass.refresh_after", "want a duration such as 90s or 1h, got a list (line 2)"},
		{"bad int", "processor: {seller_chunk: many}\n", "processor.seller_chunk", `cannot use "many" as an integer (line 1)`},
		{"bad float", "full_pass: {guard: {max_drop: lots}}\n", "full_pass.guard.max_drop", `cannot use "lots" as a number`},
		{"bad bool", "kafka: {tls: {enabled: maybe}}\n", "kafka.tls.enabled", `cannot use "maybe" as a boolean`},
		{"scalar for mapping", "kafka: brokers\n", "kafka", `want a mapping, got "brokers" (line 1)`},
		{"scalar for list", "kafka: {brokers: a:1}\n", "kafka.brokers", `want a list, got "a:1"`},
		{"list for string", "http: {listen: [a]}\n", "http.listen", "want a string, got a list"},
		{"root not mapping", "- a\n", "(root)", "want a mapping, got a list (line 1)"},
		{"two documents", "kafka: {}\n---\nhttp: {}\n", "(root)", "a second YAML document starts at line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), nil)
			ps := problemsOf(t, err)
			if len(ps) != 1 || ps[0].Path != tt.wantPath || !strings.Contains(ps[0].Message, tt.wantMsg) {
				t.Fatalf("got %v, want path %q and message containing %q", ps, tt.wantPath, tt.wantMsg)
			}
		})
	}
}

func TestParseReturnsConfigWithValidationError(t *testing.T) {
	c, err := Parse([]byte("feeds:\n  - {id: a, filter: x, template: nope}\n"), nil)
	ps := problemsOf(t, err)
	if c == nil || len(c.Feeds) != 1 || len(ps) != 1 || ps[0].Path != "feeds[0] (a).template" {
		t.Fatalf("got %v, %v", c, err)
	}
	if c, err := Parse([]byte("nope: 1\n"), nil); c != nil || err == nil {
		t.Fatalf("decode error: got %v, %v", c, err)
	}
}

func TestParseYAMLSyntaxError(t *testing.T) {
	_, err := Parse([]byte("kafka: [\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "parse yaml") {
		t.Fatalf("got %v", err)
	}
}

func TestParseReportsEveryDecodeProblem(t *testing.T) {
	_, err := Parse([]byte("kafka: {brokerz: [a:1]}\nfull_pass: {interval: soon}\n"), nil)
	ps := problemsOf(t, err)
	if len(ps) != 2 || ps[0].Path != "kafka.brokerz" || ps[1].Path != "full_pass.interval" {
		t.Fatalf("got %v", ps)
	}
}

func TestEnvOverrides(t *testing.T) {
	const file = "kafka:\n  brokers: [file:1]\nfull_pass:\n  interval: 2h\n"
	tests := []struct {
		name  string
		env   []string
		check func(t *testing.T, c *Config)
	}{
		{"string", []string{"FEEDMILL_KAFKA_TOPICS_OFFERS=offers-v2", "FEEDMILL_HTTP_ADMIN_TOKEN=tok"}, func(t *testing.T, c *Config) {
			if c.Kafka.Topics.Offers != "offers-v2" || c.HTTP.AdminToken != "tok" {
				t.Fatalf("got %+v %+v", c.Kafka.Topics, c.HTTP.AdminToken)
			}
		}},
		{"list", []string{"FEEDMILL_KAFKA_BROKERS=b1:9092, b2:9092,"}, func(t *testing.T, c *Config) {
			if !reflect.DeepEqual(c.Kafka.Brokers, []string{"b1:9092", "b2:9092"}) {
				t.Fatalf("brokers = %q", c.Kafka.Brokers)
			}
		}},
		{"int", []string{"FEEDMILL_PROCESSOR_SELLER_CHUNK=64", "FEEDMILL_FULL_PASS_GUARD_MIN_SIZE=0"}, func(t *testing.T, c *Config) {
			if c.Processor.SellerChunk != 64 || c.FullPass.Guard.MinSize != 0 {
				t.Fatalf("got %+v %+v", c.Processor, c.FullPass.Guard)
			}
		}},
		{"float", []string{"FEEDMILL_FULL_PASS_GUARD_MAX_DROP=0.5"}, func(t *testing.T, c *Config) {
			if c.FullPass.Guard.MaxDrop != 0.5 {
				t.Fatalf("max_drop = %v", c.FullPass.Guard.MaxDrop)
			}
		}},
		{"bool", []string{"FEEDMILL_KAFKA_TLS_ENABLED=true", "FEEDMILL_KAFKA_TLS_INSECURE_SKIP_VERIFY=1"}, func(t *testing.T, c *Config) {
			if !c.Kafka.TLS.Enabled || !c.Kafka.TLS.InsecureSkipVerify {
				t.Fatalf("tls = %+v", c.Kafka.TLS)
			}
		}},
		{"duration", []string{"FEEDMILL_STATE_TOMBSTONE_RETENTION=48h", "FEEDMILL_FULL_PASS_INTERVAL=0"}, func(t *testing.T, c *Config) {
			if c.State.TombstoneRetention != 48*time.Hour || c.FullPass.Interval != 0 {
				t.Fatalf("got %v %v", c.State.TombstoneRetention, c.FullPass.Interval)
			}
		}},
		{"env beats file, last entry wins, others ignored", []string{"PATH=/bin", "FEEDMILL_FULL_PASS_INTERVAL=5m", "FEEDMILL_FULL_PASS_INTERVAL=7m"}, func(t *testing.T, c *Config) {
			if c.FullPass.Interval != 7*time.Minute || c.Kafka.Brokers[0] != "file:1" {
				t.Fatalf("got %v %v", c.FullPass.Interval, c.Kafka.Brokers)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(file), tt.env)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestEnvErrors(t *testing.T) {
	tests := []struct {
		name     string
		env      string
		wantPath string
		wantMsg  string
	}{
		{"unknown variable", "FEEDMILL_KAFKA_BROKER=a:1", "FEEDMILL_KAFKA_BROKER", "unknown variable: matches no config key"},
		{"list of structs", "FEEDMILL_FEEDS=x", "FEEDMILL_FEEDS", "feeds cannot be set from the environment"},
		{"bad int", "FEEDMILL_PROCESSOR_MAX_BATCH_RECORDS=lots", "FEEDMILL_PROCESSOR_MAX_BATCH_RECORDS", `cannot use "lots" as an integer for processor.max_batch_records`},
		{"bad float", "FEEDMILL_FULL_PASS_GUARD_MAX_GROWTH=x", "FEEDMILL_FULL_PASS_GUARD_MAX_GROWTH", `cannot use "x" as a number for full_pass.guard.max_growth`},
		{"bad bool", "FEEDMILL_KAFKA_TLS_ENABLED=yes please", "FEEDMILL_KAFKA_TLS_ENABLED", "as a boolean"},
		{"bad duration", "FEEDMILL_FULL_PASS_REFRESH_AFTER=30", "FEEDMILL_FULL_PASS_REFRESH_AFTER", `invalid duration "30"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(nil, []string{tt.env})
			ps := problemsOf(t, err)
			if len(ps) != 1 || ps[0].Path != tt.wantPath || !strings.Contains(ps[0].Message, tt.wantMsg) {
				t.Fatalf("got %v, want path %q and message containing %q", ps, tt.wantPath, tt.wantMsg)
			}
		})
	}
}

func TestEnvOverrideIsValidated(t *testing.T) {
	_, err := Parse(nil, []string{"FEEDMILL_KAFKA_BROKERS="})
	ps := problemsOf(t, err)
	if len(ps) != 1 || ps[0].String() != "kafka.brokers: must not be empty" {
		t.Fatalf("got %v", ps)
	}
}

func TestEnvNamesAreUnique(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[Config](), reflect.TypeFor[Connector]()} {
		seen := map[string]string{}
		var walk func(typ reflect.Type, path string)
		walk = func(typ reflect.Type, path string) {
			for name, f := range yamlFields(typ) {
				p := joinPath(path, name)
				if other, dup := seen[envName(p)]; dup {
					t.Errorf("%s and %s share %s", p, other, envName(p))
				}
				seen[envName(p)] = p
				if f.Type.Kind() == reflect.Struct && f.Type != durationType {
					walk(f.Type, p)
				}
			}
		}
		walk(typ, "")
	}
	if got := envKeys(reflect.TypeFor[Config]()); got["FEEDMILL_FULL_PASS_GUARD_MAX_DROP"].path != "full_pass.guard.max_drop" {
		t.Fatalf("env keys: %v", got)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "nope.yaml"), nil); err == nil || !strings.Contains(err.Error(), "read config") {
		t.Fatalf("missing file: %v", err)
	}
	bad := writeFile(t, dir, "bad.yaml", "kafka:\n  brokerz: []\n")
	_, err := Load(bad, nil)
	if ps := problemsOf(t, err); !strings.Contains(err.Error(), bad) || ps[0].Path != "kafka.brokerz" {
		t.Fatalf("got %v", err)
	}
}

func TestExampleConfig(t *testing.T) {
	c, err := Load("testdata/example.yaml", nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	builtins := map[string]bool{}
	for _, f := range c.Feeds {
		builtins[f.Template] = true
	}
	if len(c.Feeds) != 3 || !builtins[TemplateGoogleMerchant] || !builtins[TemplateMetaCatalog] || !builtins[TemplateCeneo] {
		t.Fatalf("feeds = %+v", c.Feeds)
	}
	if len(c.Templates) != 1 || len(c.Templates[0].Fields) != 4 {
		t.Fatalf("templates = %+v", c.Templates)
	}
	// The example spells out every default.
	d := Default()
	c.Feeds, c.Templates = nil, nil
	if !reflect.DeepEqual(*c, d) {
		t.Fatalf("example differs from defaults:\n%+v\n%+v", *c, d)
	}
}

func TestRedaction(t *testing.T) {
	c := validConfig()
	c.HTTP.AdminToken = "admin-SECRET"
	c.Kafka.SASL = SASL{Mechanism: SASLPlain, Username: "u", Password: "sasl-SECRET"}
	c.SchemaRegistry.Username, c.SchemaRegistry.Password = "u", "registry-SECRET"

	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	outputs := map[string]string{
		"%v":         fmt.Sprintf("%v", c),
		"%+v":        fmt.Sprintf("%+v", c),
		"%#v":        fmt.Sprintf("%#v", c),
		"%+v ptr":    fmt.Sprintf("%+v", &c),
		"%s section": fmt.Sprintf("%s %s %s", c.HTTP, c.Kafka.SASL, c.SchemaRegistry),
		"json":       string(j),
		"Redacted":   fmt.Sprintf("%+v %s %s %s", r.Kafka.SASL.Password, r.SchemaRegistry.Password, r.HTTP.AdminToken, r.Kafka.SASL.Username),
	}
	for name, out := range outputs {
		if strings.Contains(out, "SECRET") {
			t.Errorf("%s leaks a secret: %s", name, out)
		}
		if !strings.Contains(out, RedactedValue) {
			t.Errorf("%s does not show %s: %s", name, RedactedValue, out)
		}
	}
	if !strings.Contains(outputs["%#v"], "config.SASL{") {
		t.Errorf("%%#v = %s", outputs["%#v"])
	}
	if c.HTTP.AdminToken != "admin-SECRET" || r.Kafka.SASL.Username != "u" {
		t.Fatal("Redacted changed the original or a non-secret")
	}
	if r.HTTP.Listen != c.HTTP.Listen {
		t.Fatal("Redacted lost a field")
	}
	if empty := Default().Redacted(); empty.HTTP.AdminToken != "" {
		t.Fatal("an empty secret must stay empty")
	}
}

func TestResolveSecrets(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "pw", "  from-file-0123456789\n")
	tests := []struct {
		name    string
		resolve func() (string, error)
		want    string
		wantErr bool
	}{
		{"sasl inline", SASL{Password: testSecret}.ResolvePassword, testSecret, false},
		{"sasl file", SASL{PasswordFile: file}.ResolvePassword, "from-file-0123456789", false},
		{"sasl missing file", SASL{PasswordFile: filepath.Join(dir, "x")}.ResolvePassword, "", true},
		{"registry file", SchemaRegistry{PasswordFile: file}.ResolvePassword, "from-file-0123456789", false},
		{"registry inline", SchemaRegistry{Password: testSecret}.ResolvePassword, testSecret, false},
		{"meta file", Meta{AccessTokenFile: file}.ResolveAccessToken, "from-file-0123456789", false},
		{"webhook inline", Webhook{Secret: testSecret}.ResolveSecret, testSecret, false},
		{"webhook file", Webhook{SecretFile: file}.ResolveSecret, "from-file-0123456789", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.resolve()
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

func TestConnectorDefaults(t *testing.T) {
	c, err := ParseConnector([]byte("destinations: [gmc-main]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Connector{
		Kafka: Kafka{
			Brokers: []string{"127.0.0.1:9092"},
			GroupID: "feedmill-connector", SessionTimeout: 45 * time.Second,
			Topics: Topics{Offers: "offers", Sellers: "sellers", Ratings: "ratings", Events: "feed-events", Rejects: "feedmill-rejects", Changelog: "feedmill-connector-changelog", Runs: "feedmill-connector-runs", Feeds: "feedmill-connector-feeds", GroupCandidates: "feedmill-connector-group-candidates", GroupDecisions: "feedmill-connector-group-decisions"},
		},
		SchemaRegistry:  SchemaRegistry{URL: "http://127.0.0.1:8081"},
		Destinations:    []string{"gmc-main"},
		DeadLetterTopic: "feedmill-rejects",
		StateDir:        "./connector-data",
		HTTP:            ConnectorHTTP{Listen: "127.0.0.1:8090"},
		Batch:           Batch{MaxItems: 500, MaxWait: time.Second},
		RateLimit:       RateLimit{Burst: 1},
		Concurrency:     4,
		Retry:           Retry{Initial: 200 * time.Millisecond, Max: 30 * time.Second, MaxAttempts: 10, Timeout: 30 * time.Second},
		Merchant:        Merchant{BaseURL: "https://merchantapi.googleapis.com", ContentLanguage: "en", FeedLabel: "PL"},
		Meta:            Meta{BaseURL: "https://graph.facebook.com/v21.0", PollInterval: 2 * time.Second},
	}
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("got  %+v\nwant %+v", *c, want)
	}
}

func TestConnectorDeadLetterTopic(t *testing.T) {
	tests := []struct {
		name, yaml string
		env        []string
		want       string
	}{
		{"default is the contract's rejects topic", "destinations: [a]\n", nil, "feedmill-rejects"},
		{"yaml", "destinations: [a]\ndead_letter_topic: partner-dlq\n", nil, "partner-dlq"},
		{"env", "destinations: [a]\n", []string{"FEEDMILL_DEAD_LETTER_TOPIC=env-dlq"}, "env-dlq"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConnector([]byte(tt.yaml), tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.DeadLetterTopic != tt.want {
				t.Fatalf("dead_letter_topic %q, want %q", c.DeadLetterTopic, tt.want)
			}
		})
	}
	if DefaultDeadLetterTopic != DefaultConnector().Kafka.Topics.Rejects {
		t.Fatalf("DefaultDeadLetterTopic %q differs from kafka.topics.rejects %q", DefaultDeadLetterTopic, DefaultConnector().Kafka.Topics.Rejects)
	}
}

func TestConnectorLoad(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "c.yaml", `
kafka:
  brokers: [k:9092]
destinations: [meta-main]
batch: {max_wait: 0}
rate_limit: {per_second: 2.5, burst: 5}
meta:
  catalog_id: "123"
  access_token: tok-0123456789abcdef
`)
	c, err := LoadConnector(path, []string{"FEEDMILL_CONCURRENCY=8", "FEEDMILL_RETRY_TIMEOUT=5s", "FEEDMILL_DESTINATIONS=a,b"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Concurrency != 8 || c.Retry.Timeout != 5*time.Second || c.Batch.MaxWait != 0 || c.RateLimit.PerSecond != 2.5 ||
		!reflect.DeepEqual(c.Destinations, []string{"a", "b"}) || c.Meta.CatalogID != "123" {
		t.Fatalf("got %+v", c)
	}
	if err := c.ValidatePartner(PartnerMeta); err != nil {
		t.Fatalf("ValidatePartner(meta): %v", err)
	}
	if s := fmt.Sprintf("%+v", *c); strings.Contains(s, "tok") {
		t.Fatalf("connector print leaks the token: %s", s)
	}
	if s := fmt.Sprintf("%+v", c.Redacted()); strings.Contains(s, "tok") {
		t.Fatalf("Redacted leaks the token: %s", s)
	}

	for _, tt := range []struct{ yaml, env, wantPath string }{
		{"destinations: [a]\nmerchant: {acount_id: x}\n", "", "merchant.acount_id"},
		{"destinations: [a]\n", "FEEDMILL_PROCESSOR_SELLER_CHUNK=1", "FEEDMILL_PROCESSOR_SELLER_CHUNK"}, // a Config key, not a Connector key
		{"destinations: [a]\n", "FEEDMILL_RATE_LIMIT_PER_SECOND=fast", "FEEDMILL_RATE_LIMIT_PER_SECOND"},
		{"destinations: [a]\nretry: {max: forever}\n", "", "retry.max"},
	} {
		_, err := ParseConnector([]byte(tt.yaml), []string{tt.env})
		if ps := problemsOf(t, err); len(ps) != 1 || ps[0].Path != tt.wantPath {
			t.Errorf("%q %q: got %v, want %s", tt.yaml, tt.env, ps, tt.wantPath)
		}
	}
}

func TestConnectorValidate(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(c *Connector)
		wantPath string
		wantMsg  string
	}{
		{"no destinations", func(c *Connector) { c.Destinations = nil }, "destinations", "must not be empty"},
		{"duplicate destination", func(c *Connector) { c.Destinations = []string{"a", "a"} }, "destinations[1]", `duplicate destination "a" (also destinations[0])`},
		{"empty destination", func(c *Connector) { c.Destinations = []string{""} }, "destinations[0]", "must not be empty"},
		{"kafka", func(c *Connector) { c.Kafka.Brokers = []string{"x"} }, "kafka.brokers[0]", "invalid address"},
		{"registry", func(c *Connector) { c.SchemaRegistry.URL = "localhost:8081" }, "schema_registry.url", "scheme must be http or https"},
		{"dead letter empty", func(c *Connector) { c.DeadLetterTopic = "" }, "dead_letter_topic", "must not be empty"},
		{"dead letter is events", func(c *Connector) { c.DeadLetterTopic = "feed-events" }, "dead_letter_topic", `same topic "feed-events" as kafka.topics.events`},
		{"state dir", func(c *Connector) { c.StateDir = "" }, "state_dir", "must not be empty"},
		{"listen", func(c *Connector) { c.HTTP.Listen = "x" }, "http.listen", "invalid listen address"},
		{"max items", func(c *Connector) { c.Batch.MaxItems = 0 }, "batch.max_items", "must be greater than 0"},
		{"max wait", func(c *Connector) { c.Batch.MaxWait = -1 }, "batch.max_wait", "must not be negative"},
		{"rate", func(c *Connector) { c.RateLimit.PerSecond = -1 }, "rate_limit.per_second", "must not be negative"},
		{"burst", func(c *Connector) { c.RateLimit.Burst = 0 }, "rate_limit.burst", "must be greater than 0"},
		{"concurrency", func(c *Connector) { c.Concurrency = 0 }, "concurrency", "must be greater than 0"},
		{"retry initial", func(c *Connector) { c.Retry.Initial = 0; c.Retry.Max = 0 }, "retry.initial", "must be greater than 0"},
		{"retry max", func(c *Connector) { c.Retry.Max = time.Millisecond }, "retry.max", "must not be less than retry.initial"},
		{"retry attempts", func(c *Connector) { c.Retry.MaxAttempts = 0 }, "retry.max_attempts", "must be greater than 0"},
		{"retry timeout", func(c *Connector) { c.Retry.Timeout = 0 }, "retry.timeout", "must be greater than 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConnector()
			c.Destinations = []string{"d"}
			tt.mutate(&c)
			ps := problemsOf(t, c.Validate())
			if len(ps) != 1 || ps[0].Path != tt.wantPath || !strings.Contains(ps[0].Message, tt.wantMsg) {
				t.Fatalf("got %v, want path %q and message containing %q", ps, tt.wantPath, tt.wantMsg)
			}
		})
	}
}

func TestConnectorValidatePartner(t *testing.T) {
	dir := t.TempDir()
	creds := writeFile(t, dir, "sa.json", "{}")
	tokenFile := writeFile(t, dir, "token", testSecret)
	tests := []struct {
		name     string
		partner  string
		mutate   func(c *Connector)
		wantPath string // "" = valid
		wantMsg  string
	}{
		{"merchant ok", PartnerMerchant, func(c *Connector) {}, "", ""},
		{"merchant account", PartnerMerchant, func(c *Connector) { c.Merchant.AccountID = "" }, "merchant.account_id", "must not be empty"},
		{"merchant data source", PartnerMerchant, func(c *Connector) { c.Merchant.DataSource = "" }, "merchant.data_source", "must not be empty"},
		{"merchant credentials", PartnerMerchant, func(c *Connector) { c.Merchant.CredentialsFile = "" }, "merchant.credentials_file", "must not be empty"},
		{"merchant credentials missing", PartnerMerchant, func(c *Connector) { c.Merchant.CredentialsFile = filepath.Join(dir, "no") }, "merchant.credentials_file", "no such file"},
		{"merchant base url", PartnerMerchant, func(c *Connector) { c.Merchant.BaseURL = "merchantapi" }, "merchant.base_url", "scheme must be http or https"},
		{"merchant language", PartnerMerchant, func(c *Connector) { c.Merchant.ContentLanguage = "" }, "merchant.content_language", "must not be empty"},
		{"merchant feed label", PartnerMerchant, func(c *Connector) { c.Merchant.FeedLabel = "" }, "merchant.feed_label", "must not be empty"},
		{"meta ok", PartnerMeta, func(c *Connector) {}, "", ""},
		{"meta ok with file", PartnerMeta, func(c *Connector) { c.Meta.AccessToken, c.Meta.AccessTokenFile = "", tokenFile }, "", ""},
		{"meta catalog", PartnerMeta, func(c *Connector) { c.Meta.CatalogID = "" }, "meta.catalog_id", "must not be empty"},
		{"meta no token", PartnerMeta, func(c *Connector) { c.Meta.AccessToken = "" }, "meta.access_token", "one of access_token or access_token_file must be set"},
		{"meta both tokens", PartnerMeta, func(c *Connector) { c.Meta.AccessTokenFile = tokenFile }, "meta.access_token", "set access_token or access_token_file, not both"},
		{"meta poll", PartnerMeta, func(c *Connector) { c.Meta.PollInterval = 0 }, "meta.poll_interval", "must be greater than 0"},
		{"webhook ok", PartnerWebhook, func(c *Connector) {}, "", ""},
		{"webhook url", PartnerWebhook, func(c *Connector) { c.Webhook.URL = "" }, "webhook.url", "must not be empty"},
		{"webhook no secret", PartnerWebhook, func(c *Connector) { c.Webhook.Secret = "" }, "webhook.secret", "one of secret or secret_file must be set"},
		{"webhook secret file missing", PartnerWebhook, func(c *Connector) { c.Webhook.Secret, c.Webhook.SecretFile = "", filepath.Join(dir, "no") }, "webhook.secret_file", "no such file"},
		{"unknown partner", "ebay", func(c *Connector) {}, "ebay", `unknown partner "ebay": want merchant, meta or webhook`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConnector()
			c.Destinations = []string{"d"}
			c.Merchant.AccountID, c.Merchant.DataSource, c.Merchant.CredentialsFile = "1", "accounts/1/dataSources/2", creds
			c.Meta.CatalogID, c.Meta.AccessToken = "9", testSecret
			c.Webhook.URL, c.Webhook.Secret = "https://partner.example/hook", testSecret
			tt.mutate(&c)
			err := c.ValidatePartner(tt.partner)
			if tt.wantPath == "" {
				if err != nil {
					t.Fatalf("ValidatePartner: %v", err)
				}
				return
			}
			ps := problemsOf(t, err)
			if len(ps) != 1 || ps[0].Path != tt.wantPath || !strings.Contains(ps[0].Message, tt.wantMsg) {
				t.Fatalf("got %v, want path %q and message containing %q", ps, tt.wantPath, tt.wantMsg)
			}
		})
	}
}
