// Package clients builds the connection settings of feedmill's external
// clients from config: the kgo options for the brokers, TLS and SASL
// (KafkaOpts, TLSConfig) and the schema registry client (Registry).
//
// The processor's wiring (internal/app), the connector runtime
// (connectors), and the cmd tools all connect through it, so every binary
// reads the CA, certificate and password files and checks the SASL
// mechanism and registry URL the same way. Errors name the config key
// path that is wrong and never contain a secret.
//
// It owns no client lifetime: the caller creates, runs and closes the
// kgo and registry clients, and adds its own consumer, group and producer
// options. It must not import feedmill's processing packages (processor,
// connectors, feeds, state); it depends on config only. It keeps no
// package-level state.
package clients
