package config

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// RedactedValue replaces a non-empty secret wherever a config is printed.
const RedactedValue = "[redacted]"

func redact(s string) string {
	if s == "" {
		return ""
	}
	return RedactedValue
}

// RedactURL returns s with the userinfo of its authority (user:password@)
// replaced by RedactedValue, for printing a URL in logs and errors. It
// works on the text, so it also redacts a URL that does not parse; a
// string without userinfo is returned unchanged.
func RedactURL(s string) string {
	prefix, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 {
		prefix, rest = s[:i+3], s[i+3:]
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndexByte(rest[:end], '@')
	if at < 0 {
		return s
	}
	return prefix + RedactedValue + rest[at:]
}

// MinSecretBytes is the shortest secret accepted, in bytes after
// trimming surrounding whitespace: every password, token and signing
// secret the config holds inline or names a file of (kafka.sasl.password,
// schema_registry.password, meta.access_token, webhook.secret and their
// _file forms). 16 bytes is 128 bits of key for the webhook HMAC when the
// secret is random; an empty or whitespace-only file would otherwise sign
// requests with an empty key.
const MinSecretBytes = 16

// secretProblem says what is wrong with a secret, or "" when nothing is.
// It never shows the secret.
func secretProblem(secret string) string {
	n := len(strings.TrimSpace(secret))
	switch {
	case n == 0:
		return fmt.Sprintf("secret is empty or only whitespace; want at least %d bytes", MinSecretBytes)
	case n < MinSecretBytes:
		return fmt.Sprintf("secret is %d bytes after trimming whitespace; want at least %d", n, MinSecretBytes)
	}
	return ""
}

// resolveSecret returns the secret: the trimmed content of file when it
// is set, else value. path is the key path of the value (webhook.secret);
// the file's is path + "_file". A secret shorter than MinSecretBytes is
// an error naming the key path.
func resolveSecret(path, value, file string) (string, error) {
	if file == "" {
		if p := secretProblem(value); p != "" {
			return "", fmt.Errorf("%s: %s", path, p)
		}
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s_file: read: %w", path, err)
	}
	secret := strings.TrimSpace(string(b))
	if p := secretProblem(secret); p != "" {
		return "", fmt.Errorf("%s_file: %s (file %s)", path, p, file)
	}
	return secret, nil
}

// ResolvePassword returns the SASL password: the trimmed content of
// PasswordFile when it is set, else Password. It returns an error if the
// file cannot be read or the password is shorter than MinSecretBytes.
func (s SASL) ResolvePassword() (string, error) {
	return resolveSecret("kafka.sasl.password", s.Password, s.PasswordFile)
}

// ResolvePassword returns the registry password: the trimmed content of
// PasswordFile when it is set, else Password. It returns an error if the
// file cannot be read or the password is shorter than MinSecretBytes.
func (r SchemaRegistry) ResolvePassword() (string, error) {
	return resolveSecret("schema_registry.password", r.Password, r.PasswordFile)
}

// ResolveAccessToken returns the Meta access token: the trimmed content
// of AccessTokenFile when it is set, else AccessToken. It returns an
// error if the file cannot be read or the token is shorter than
// MinSecretBytes.
func (m Meta) ResolveAccessToken() (string, error) {
	return resolveSecret("meta.access_token", m.AccessToken, m.AccessTokenFile)
}

// ResolveSecret returns the webhook signing secret: the trimmed content
// of SecretFile when it is set, else Secret. It returns an error if the
// file cannot be read or the secret is shorter than MinSecretBytes.
func (w Webhook) ResolveSecret() (string, error) {
	return resolveSecret("webhook.secret", w.Secret, w.SecretFile)
}

// Redacted returns a copy of c whose secrets (SASL and registry
// passwords, the admin token, userinfo in the registry URL) read
// RedactedValue, for printing. Slices are shared with c.
func (c Config) Redacted() Config {
	c.Kafka.SASL = c.Kafka.SASL.redacted()
	c.SchemaRegistry = c.SchemaRegistry.redacted()
	c.HTTP = c.HTTP.redacted()
	return c
}

// Redacted returns a copy of c whose secrets read RedactedValue, for
// printing. Slices are shared with c.
func (c Connector) Redacted() Connector {
	c.Kafka.SASL = c.Kafka.SASL.redacted()
	c.SchemaRegistry = c.SchemaRegistry.redacted()
	c.Meta = c.Meta.redacted()
	c.Webhook = c.Webhook.redacted()
	return c
}

func (s SASL) redacted() SASL {
	s.Password = redact(s.Password)
	return s
}

func (r SchemaRegistry) redacted() SchemaRegistry {
	r.URL = RedactURL(r.URL)
	r.Password = redact(r.Password)
	return r
}

func (h HTTP) redacted() HTTP {
	h.AdminToken = redact(h.AdminToken)
	return h
}

func (m Meta) redacted() Meta {
	m.AccessToken = redact(m.AccessToken)
	return m
}

func (w Webhook) redacted() Webhook {
	w.URL = RedactURL(w.URL)
	w.Secret = redact(w.Secret)
	return w
}

// The secret-bearing structs print and marshal to JSON (zap.Any, %v,
// %+v, %#v) with their secrets redacted. Each method converts to a local
// type without methods to avoid recursion.

// String formats s with the password redacted.
func (s SASL) String() string { type plain SASL; return fmt.Sprintf("%+v", plain(s.redacted())) }

// GoString formats s with the password redacted.
func (s SASL) GoString() string {
	type plain SASL
	return goString("SASL", fmt.Sprintf("%#v", plain(s.redacted())))
}

// MarshalJSON encodes s with the password redacted.
func (s SASL) MarshalJSON() ([]byte, error) {
	type plain SASL
	return json.Marshal(plain(s.redacted()))
}

// String formats r with the password redacted.
func (r SchemaRegistry) String() string {
	type plain SchemaRegistry
	return fmt.Sprintf("%+v", plain(r.redacted()))
}

// GoString formats r with the password redacted.
func (r SchemaRegistry) GoString() string {
	type plain SchemaRegistry
	return goString("SchemaRegistry", fmt.Sprintf("%#v", plain(r.redacted())))
}

// MarshalJSON encodes r with the password redacted.
func (r SchemaRegistry) MarshalJSON() ([]byte, error) {
	type plain SchemaRegistry
	return json.Marshal(plain(r.redacted()))
}

// String formats h with the admin token redacted.
func (h HTTP) String() string { type plain HTTP; return fmt.Sprintf("%+v", plain(h.redacted())) }

// GoString formats h with the admin token redacted.
func (h HTTP) GoString() string {
	type plain HTTP
	return goString("HTTP", fmt.Sprintf("%#v", plain(h.redacted())))
}

// MarshalJSON encodes h with the admin token redacted.
func (h HTTP) MarshalJSON() ([]byte, error) {
	type plain HTTP
	return json.Marshal(plain(h.redacted()))
}

// String formats m with the access token redacted.
func (m Meta) String() string { type plain Meta; return fmt.Sprintf("%+v", plain(m.redacted())) }

// GoString formats m with the access token redacted.
func (m Meta) GoString() string {
	type plain Meta
	return goString("Meta", fmt.Sprintf("%#v", plain(m.redacted())))
}

// MarshalJSON encodes m with the access token redacted.
func (m Meta) MarshalJSON() ([]byte, error) {
	type plain Meta
	return json.Marshal(plain(m.redacted()))
}

// String formats w with the secret redacted.
func (w Webhook) String() string { type plain Webhook; return fmt.Sprintf("%+v", plain(w.redacted())) }

// GoString formats w with the secret redacted.
func (w Webhook) GoString() string {
	type plain Webhook
	return goString("Webhook", fmt.Sprintf("%#v", plain(w.redacted())))
}

// MarshalJSON encodes w with the secret redacted.
func (w Webhook) MarshalJSON() ([]byte, error) {
	type plain Webhook
	return json.Marshal(plain(w.redacted()))
}

// goString renames the local type in a %#v rendering ("config.plain{...}")
// to the real one.
func goString(typeName, s string) string {
	const local = "config.plain"
	if strings.HasPrefix(s, local) {
		return "config." + typeName + s[len(local):]
	}
	return s
}
