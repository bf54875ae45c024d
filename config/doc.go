// Package config is feedmill's one printable, testable source of truth
// for settings: the YAML file of docs/contract.md, Config keys (and the
// connector binaries' file), overridden key by key from FEEDMILL_<PATH>
// environment variables, completed with defaults and checked by Validate.
//
// Loading happens in four steps, shared by [Config] and [Connector]:
//
//  1. Strict decode. The YAML is decoded with go.yaml.in/yaml/v3 and
//     KnownFields(true); an unknown key is an error naming its key path
//     and line. Durations are Go duration strings ("90s", "1h", "0") and
//     a bad one is reported with its key path. A key whose value is null
//     counts as absent.
//  2. Environment. Every scalar or string-list key can be overridden by
//     FEEDMILL_ followed by its key path upper-cased and joined by "_"
//     (kafka.topics.offers is FEEDMILL_KAFKA_TOPICS_OFFERS). Lists are
//     comma-separated. Lists of structs (feeds, templates) cannot be
//     overridden. A FEEDMILL_ variable that matches no key, or whose
//     value does not parse, is an error naming the variable.
//  3. Defaults. A default fills a key only when neither the file nor the
//     environment set it, so an explicit zero (full_pass.interval: 0,
//     meaning "only on demand") is kept.
//  4. Validate lists every bad key path at once in a [*ValidationError].
//
// The package owns the config types, their defaults and their static
// checks. It must not import any other feedmill package: filters and
// template expressions are compiled and checked by package feeds.
// Secrets (passwords, tokens) are never printed: the secret-bearing
// structs redact themselves in String, GoString and MarshalJSON, and
// Config.Redacted/Connector.Redacted return printable copies.
//
// Everything here runs once at start-up; reflection is used to walk the
// struct tags and is never on a hot path. A loaded *Config is read-only
// and safe to share between goroutines.
package config
