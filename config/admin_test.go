package config

import (
	"strings"
	"testing"
)

func TestValidateAnonymousAdmin(t *testing.T) {
	tests := []struct {
		name      string
		listen    string
		token     string
		anonymous bool
		wantErr   bool
	}{
		{"loopback ipv4", "127.0.0.1:8080", "", false, false},
		{"loopback ipv4 other", "127.0.0.2:8080", "", false, false},
		{"loopback ipv6", "[::1]:8080", "", false, false},
		{"localhost", "localhost:8080", "", false, false},
		{"all interfaces", "0.0.0.0:8080", "", false, true},
		{"empty host", ":8080", "", false, true},
		{"ipv6 any", "[::]:8080", "", false, true},
		{"host name", "feedmill.internal:8080", "", false, true},
		{"with token", "0.0.0.0:8080", "s3cret", false, false},
		{"allowed anonymous", "0.0.0.0:8080", "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			c.HTTP = HTTP{Listen: tt.listen, AdminToken: tt.token, AllowAnonymousAdmin: tt.anonymous}
			err := c.Validate()
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			ps := problemsOf(t, err)
			if len(ps) != 1 || ps[0].Path != "http.admin_token" ||
				!strings.Contains(ps[0].Message, "must be set when http.listen \""+tt.listen+"\" is not a loopback address") ||
				!strings.Contains(ps[0].Message, "http.allow_anonymous_admin: true") {
				t.Fatalf("problems %v", ps)
			}
		})
	}
}

func TestValidateMinFreeBytes(t *testing.T) {
	c := validConfig()
	c.State.MinFreeBytes = -1
	ps := problemsOf(t, c.Validate())
	if len(ps) != 1 || ps[0].Path != "state.min_free_bytes" || !strings.Contains(ps[0].Message, "must not be negative") {
		t.Fatalf("problems %v", ps)
	}
	c.State.MinFreeBytes = 0
	if err := c.Validate(); err != nil {
		t.Fatalf("0 disables the check: %v", err)
	}
}

func TestParseAnonymousAdminKeys(t *testing.T) {
	c, err := Parse([]byte("http: {listen: \"0.0.0.0:8080\", allow_anonymous_admin: true}\nstate: {min_free_bytes: 0}\n"), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !c.HTTP.AllowAnonymousAdmin || c.State.MinFreeBytes != 0 {
		t.Fatalf("got %+v %+v", c.HTTP, c.State)
	}
	c, err = Parse(nil, []string{"FEEDMILL_HTTP_LISTEN=0.0.0.0:8080", "FEEDMILL_HTTP_ADMIN_TOKEN=tok"})
	if err != nil {
		t.Fatalf("Parse with env token: %v", err)
	}
	if c.HTTP.AdminToken != "tok" || c.State.MinFreeBytes != 1<<30 {
		t.Fatalf("got %+v %+v", c.HTTP, c.State)
	}
}
