package clients

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/feedmill/feedmill/config"
)

// KafkaOpts builds the kgo options for k's brokers, TLS and SASL settings.
// It reads the CA, client certificate and password files named in k. The
// caller adds consumer, group and producer options. Errors name the key
// path that is wrong; they never contain a secret.
func KafkaOpts(k config.Kafka) ([]kgo.Opt, error) {
	if len(k.Brokers) == 0 {
		return nil, errors.New("kafka.brokers: empty")
	}
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}
	if k.TLS.Enabled {
		tc, err := TLSConfig(k.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if k.SASL.Mechanism != "" {
		switch strings.ToUpper(k.SASL.Mechanism) {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return nil, fmt.Errorf("kafka.sasl.mechanism: unknown mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", k.SASL.Mechanism)
		}
		pass, err := k.SASL.ResolvePassword() // errors name the key path
		if err != nil {
			return nil, err
		}
		user := k.SASL.Username
		switch strings.ToUpper(k.SASL.Mechanism) {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
		default: // SCRAM-SHA-512, checked above
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
		}
	}
	return opts, nil
}

// TLSConfig builds a client TLS config from t: the CA bundle (system roots
// when empty), an optional client certificate and key, the server name and
// the insecure switch. Errors name the key path that is wrong.
func TLSConfig(t config.TLS) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // explicit operator opt-in
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file: no PEM certificate in %s", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("kafka.tls: cert_file and key_file must be set together")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Registry builds a schema registry client for r, with basic auth
// when r.Username is set (password from r.Password or r.PasswordFile). A
// URL holding a user or password (http://u:p@host) is refused: the
// registry client would print it in every error it returns.
func Registry(r config.SchemaRegistry) (*sr.Client, error) {
	if r.URL == "" {
		return nil, errors.New("schema_registry.url: empty")
	}
	if config.RedactURL(r.URL) != r.URL {
		return nil, fmt.Errorf("schema_registry.url: %q must not hold a user or password: set schema_registry.username and schema_registry.password or password_file",
			config.RedactURL(r.URL))
	}
	hc := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	opts := []sr.ClientOpt{sr.URLs(r.URL), sr.HTTPClient(hc)}
	if r.Username != "" {
		pass, err := r.ResolvePassword() // errors name the key path
		if err != nil {
			return nil, err
		}
		opts = append(opts, sr.BasicAuth(r.Username, pass))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry client for %s: %w", r.URL, err)
	}
	return cl, nil
}
