package clients_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/clients"
)

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKafkaOpts(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "feedmill"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ca := writePEM(t, dir, "ca.pem", "CERTIFICATE", der)
	keyFile := writePEM(t, dir, "key.pem", "PRIVATE KEY", keyDER)
	passFile := filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, []byte("hunter2-hunter2-hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := config.Kafka{Brokers: []string{"b:9092"}}
	for _, tc := range []struct {
		name    string
		mod     func(k *config.Kafka)
		wantErr string
		opts    int
	}{
		{name: "plain brokers", mod: func(*config.Kafka) {}, opts: 1},
		{name: "tls with CA and client cert", mod: func(k *config.Kafka) {
			k.TLS = config.TLS{Enabled: true, CAFile: ca, CertFile: ca, KeyFile: keyFile, ServerName: "kafka"}
		}, opts: 2},
		{name: "sasl plain", mod: func(k *config.Kafka) {
			k.SASL = config.SASL{Mechanism: "PLAIN", Username: "u", Password: "p-0123456789abcdef"}
		}, opts: 2},
		{name: "scram 256 from file", mod: func(k *config.Kafka) {
			k.SASL = config.SASL{Mechanism: "SCRAM-SHA-256", Username: "u", PasswordFile: passFile}
		}, opts: 2},
		{name: "scram 512 with tls", mod: func(k *config.Kafka) {
			k.SASL = config.SASL{Mechanism: "SCRAM-SHA-512", Username: "u", Password: "p-0123456789abcdef"}
			k.TLS = config.TLS{Enabled: true}
		}, opts: 3},
		{name: "unknown mechanism", mod: func(k *config.Kafka) { k.SASL = config.SASL{Mechanism: "GSSAPI"} }, wantErr: "kafka.sasl.mechanism"},
		{name: "missing CA", mod: func(k *config.Kafka) { k.TLS = config.TLS{Enabled: true, CAFile: filepath.Join(dir, "nope")} }, wantErr: "kafka.tls.ca_file"},
		{name: "CA without PEM", mod: func(k *config.Kafka) { k.TLS = config.TLS{Enabled: true, CAFile: passFile} }, wantErr: "no PEM"},
		{name: "cert without key", mod: func(k *config.Kafka) { k.TLS = config.TLS{Enabled: true, CertFile: ca} }, wantErr: "together"},
		{name: "missing password file", mod: func(k *config.Kafka) {
			k.SASL = config.SASL{Mechanism: "PLAIN", Username: "u", PasswordFile: filepath.Join(dir, "nope")}
		}, wantErr: "kafka.sasl"},
		{name: "short password", mod: func(k *config.Kafka) {
			k.SASL = config.SASL{Mechanism: "PLAIN", Username: "u", Password: "hunter2"}
		}, wantErr: "kafka.sasl.password: secret is 7 bytes after trimming whitespace; want at least 16"},
		{name: "no brokers", mod: func(k *config.Kafka) { k.Brokers = nil }, wantErr: "kafka.brokers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := base
			tc.mod(&k)
			opts, err := clients.KafkaOpts(k)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatal("secret in error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(opts) != tc.opts {
				t.Errorf("%d options, want %d", len(opts), tc.opts)
			}
		})
	}
}

func TestRegistryBasicAuth(t *testing.T) {
	var gotUser, gotPass string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUser, gotPass, _ = r.BasicAuth()
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		_, _ = w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, []byte(" s3cret-0123456789 \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cl, err := clients.Registry(config.SchemaRegistry{URL: srv.URL, Username: "feedmill", PasswordFile: passFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Subjects(t.Context()); err != nil {
		t.Fatal(err)
	}
	if gotUser != "feedmill" || gotPass != "s3cret-0123456789" {
		t.Errorf("basic auth %q/%q", gotUser, gotPass)
	}
}

// A registry URL with userinfo is refused, and the error does not show
// the password.
func TestRegistryRefusesUserinfo(t *testing.T) {
	for _, u := range []string{"http://u:hunter2-SECRET@registry:8081", "http://hunter2-SECRET@registry:8081/"} {
		_, err := clients.Registry(config.SchemaRegistry{URL: u})
		if err == nil {
			t.Fatalf("%s: no error", config.RedactURL(u))
		}
		if strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "schema_registry.url") ||
			!strings.Contains(err.Error(), "schema_registry.username") {
			t.Errorf("error %q", err)
		}
	}
}
