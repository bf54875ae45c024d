package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

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
