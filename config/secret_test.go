package config

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// testSecret is a secret of MinSecretBytes or more for fixtures.
const testSecret = "test-secret-0123456789"

// Every secret the config holds is refused when empty, whitespace or
// shorter than MinSecretBytes, inline or in its file, by Validate (with
// the key path) and by the Resolve methods the binaries call.
func TestShortSecretsRefused(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"empty":      writeFile(t, dir, "empty", ""),
		"whitespace": writeFile(t, dir, "ws", " \n\t \n"),
		"short":      writeFile(t, dir, "short", "  fifteen-bytes!!\n"),
	}
	inline := map[string]string{"whitespace": "   ", "short": "fifteen-bytes!!"}
	wantMsg := map[string]string{
		"empty":      "secret is empty or only whitespace; want at least 16 bytes",
		"whitespace": "secret is empty or only whitespace; want at least 16 bytes",
		"short":      "secret is 15 bytes after trimming whitespace; want at least 16",
	}
	type target struct {
		path    string // the value's key path; the file's adds _file
		set     func(c *Connector, value, file string)
		resolve func(c *Connector) (string, error)
	}
	targets := []target{
		{"kafka.sasl.password", func(c *Connector, v, f string) {
			c.Kafka.SASL = SASL{Mechanism: SASLPlain, Username: "u", Password: v, PasswordFile: f}
		}, func(c *Connector) (string, error) { return c.Kafka.SASL.ResolvePassword() }},
		{"schema_registry.password", func(c *Connector, v, f string) {
			c.SchemaRegistry.Username, c.SchemaRegistry.Password, c.SchemaRegistry.PasswordFile = "u", v, f
		}, func(c *Connector) (string, error) { return c.SchemaRegistry.ResolvePassword() }},
		{"meta.access_token", func(c *Connector, v, f string) { c.Meta.AccessToken, c.Meta.AccessTokenFile = v, f },
			func(c *Connector) (string, error) { return c.Meta.ResolveAccessToken() }},
		{"webhook.secret", func(c *Connector, v, f string) { c.Webhook.Secret, c.Webhook.SecretFile = v, f },
			func(c *Connector) (string, error) { return c.Webhook.ResolveSecret() }},
	}
	validate := func(c *Connector) error {
		if err := c.Validate(); err != nil {
			return err
		}
		for _, p := range []string{PartnerMeta, PartnerWebhook} {
			if err := c.ValidatePartner(p); err != nil {
				return err
			}
		}
		return nil
	}
	base := func() Connector {
		c := DefaultConnector()
		c.Destinations = []string{"d"}
		c.Meta.CatalogID, c.Meta.AccessToken = "9", testSecret
		c.Webhook.URL, c.Webhook.Secret = "https://partner.example/hook", testSecret
		return c
	}
	if c := base(); validate(&c) != nil {
		t.Fatalf("base connector: %v", validate(&c))
	}
	for _, tg := range targets {
		for kind, file := range files {
			t.Run(tg.path+"_file "+kind, func(t *testing.T) {
				c := base()
				tg.set(&c, "", file)
				ps := problemsOf(t, validate(&c))
				if len(ps) != 1 || ps[0].Path != tg.path+"_file" || !strings.Contains(ps[0].Message, wantMsg[kind]) {
					t.Fatalf("Validate: %v, want %s_file: %s", ps, tg.path, wantMsg[kind])
				}
				_, err := tg.resolve(&c)
				if err == nil || !strings.Contains(err.Error(), tg.path+"_file: "+wantMsg[kind]) {
					t.Fatalf("resolve: %v", err)
				}
			})
		}
		for kind, v := range inline {
			t.Run(tg.path+" "+kind, func(t *testing.T) {
				c := base()
				tg.set(&c, v, "")
				ps := problemsOf(t, validate(&c))
				if len(ps) != 1 || ps[0].Path != tg.path || !strings.Contains(ps[0].Message, wantMsg[kind]) {
					t.Fatalf("Validate: %v, want %s: %s", ps, tg.path, wantMsg[kind])
				}
				if strings.Contains(ps[0].Message, v) && strings.TrimSpace(v) != "" {
					t.Fatalf("message shows the secret: %s", ps[0].Message)
				}
				_, err := tg.resolve(&c)
				if err == nil || !strings.Contains(err.Error(), tg.path+": "+wantMsg[kind]) {
					t.Fatalf("resolve: %v", err)
				}
			})
		}
	}
	// A file that disappears between Validate and Resolve is still an
	// error, never an empty key.
	c := base()
	c.Webhook.Secret, c.Webhook.SecretFile = "", filepath.Join(dir, "gone")
	if s, err := c.Webhook.ResolveSecret(); err == nil || s != "" {
		t.Fatalf("missing file: %q, %v", s, err)
	}
	// At the bound: accepted, trimmed.
	c.Webhook.SecretFile = writeFile(t, dir, "ok", "\n sixteen-bytes!!! \n")
	if s, err := c.Webhook.ResolveSecret(); err != nil || s != "sixteen-bytes!!!" {
		t.Fatalf("secret at the bound: %q, %v", s, err)
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://u:p@host:8081", "http://[redacted]@host:8081"},
		{"https://user@host/path?q=a@b", "https://[redacted]@host/path?q=a@b"},
		{"http://u:p@@host", "http://[redacted]@host"},
		{"http://u:p@[::1", "http://[redacted]@[::1"}, // does not parse, still redacted
		{"u:p@host:8081", "[redacted]@host:8081"},
		{"http://host:8081/a@b", "http://host:8081/a@b"},
		{"http://host:8081", "http://host:8081"},
		{"", ""},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A registry URL with userinfo is refused by Validate, for the processor
// and the connectors, and no message shows the password.
func TestRegistryURLUserinfoRefused(t *testing.T) {
	const u = "http://feedmill:pw-SECRET@registry:8081"
	c := validConfig()
	c.SchemaRegistry.URL = u
	conn := DefaultConnector()
	conn.Destinations = []string{"d"}
	conn.SchemaRegistry.URL = u
	for name, err := range map[string]error{"config": c.Validate(), "connector": conn.Validate()} {
		ps := problemsOf(t, err)
		if len(ps) != 1 || ps[0].Path != "schema_registry.url" ||
			!strings.Contains(ps[0].Message, "must not hold a user or password: set schema_registry.username and schema_registry.password") {
			t.Errorf("%s: got %v", name, ps)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: message leaks the password: %v", name, err)
		}
	}
	// Other URL problems do not echo userinfo either.
	c.SchemaRegistry.URL = "ftp://feedmill:pw-SECRET@registry:8081"
	conn.Webhook.URL, conn.Webhook.Secret = "ftp://u:pw-SECRET@partner", "a-long-enough-webhook-secret"
	for _, err := range []error{c.Validate(), conn.ValidatePartner(PartnerWebhook)} {
		if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), RedactedValue) {
			t.Errorf("got %v, want a redacted URL", err)
		}
	}
}

func TestRegistryURLRedactedWhenPrinted(t *testing.T) {
	c := validConfig()
	c.SchemaRegistry.URL = "http://feedmill:pw-SECRET@registry:8081"
	conn := DefaultConnector()
	conn.SchemaRegistry.URL = c.SchemaRegistry.URL
	conn.Webhook.URL = "https://u:hook-SECRET@partner/hook"
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cj, err := json.Marshal(conn)
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{
		"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c),
		"json": string(j), "Redacted": c.Redacted().SchemaRegistry.URL,
		"connector %+v": fmt.Sprintf("%+v", conn), "connector json": string(cj),
		"connector Redacted": fmt.Sprintf("%s %s", conn.Redacted().SchemaRegistry.URL, conn.Redacted().Webhook.URL),
	} {
		if strings.Contains(out, "SECRET") || !strings.Contains(out, RedactedValue+"@registry:8081") {
			t.Errorf("%s: %s", name, out)
		}
	}
	if c.SchemaRegistry.URL != "http://feedmill:pw-SECRET@registry:8081" {
		t.Fatal("Redacted changed the original")
	}
}
