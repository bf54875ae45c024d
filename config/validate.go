package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Problem is one bad key: its path (kafka.brokers[0],
// feeds[2] (phones-gmc).template, or an environment variable's name)
// and what is wrong with it.
type Problem struct {
	Path    string
	Message string
}

// String returns "path: message".
func (p Problem) String() string { return p.Path + ": " + p.Message }

// ValidationError lists every problem found in a config at once. Parse,
// Load, Validate and their Connector counterparts return it (wrapped by
// Load with the file name); use errors.As to get the facts.
type ValidationError struct {
	Problems []Problem
}

// Error prints every problem on its own line as "path: message".
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Built-in template names (docs/contract.md, Templates). BuiltinTemplates
// is the one list of them: config checks references against it, and the
// feeds package renders each (feeds/builtin.go; its tests fail for a name
// without a format). Adding a built-in template is a name here and its
// format there.
const (
	TemplateGoogleMerchant = "google-merchant"
	TemplateMetaCatalog    = "meta-catalog"
	TemplateCeneo          = "ceneo"
)

// BuiltinTemplates returns the names of the built-in templates, in the
// order of docs/contract.md, Templates. The slice is new on every call;
// callers may keep it.
func BuiltinTemplates() []string {
	return []string{TemplateGoogleMerchant, TemplateMetaCatalog, TemplateCeneo}
}

// IsBuiltinTemplate reports whether name is a built-in template.
func IsBuiltinTemplate(name string) bool {
	return slices.Contains(BuiltinTemplates(), name)
}

// SASL mechanisms the brokers can be authenticated with.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// FeedIDPattern is what a feed id must match.
const FeedIDPattern = `^[a-z0-9][a-z0-9-]*$`

// problems collects Problems; err returns nil when there are none.
type problems []Problem

func (ps *problems) add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}

// Validate checks c and returns a *ValidationError listing every problem,
// or nil. It checks files named by TLS and secret settings exist; it does
// not compile feed filters or template expressions (package feeds does).
func (c *Config) Validate() error {
	var ps problems
	checkKafka(&ps, "kafka", &c.Kafka)
	checkRegistry(&ps, "schema_registry", &c.SchemaRegistry)

	checkNonEmpty(&ps, "state.dir", c.State.Dir)
	checkNonNegative(&ps, "state.tombstone_retention", c.State.TombstoneRetention)
	if c.State.MinFreeBytes < 0 {
		ps.add("state.min_free_bytes", "must not be negative (0 disables the check), got %d", c.State.MinFreeBytes)
	}
	checkListen(&ps, "http.listen", c.HTTP.Listen)
	if c.HTTP.AdminToken == "" && !c.HTTP.AllowAnonymousAdmin && isHostPort(c.HTTP.Listen, true) && !IsLoopbackListen(c.HTTP.Listen) {
		ps.add("http.admin_token", "must be set when http.listen %q is not a loopback address, or /api/* (start, approve, reject runs) is open to anyone who reaches it; "+
			"set a token (FEEDMILL_HTTP_ADMIN_TOKEN), listen on 127.0.0.1, or set http.allow_anonymous_admin: true", c.HTTP.Listen)
	}

	checkNonNegative(&ps, "full_pass.interval", c.FullPass.Interval)
	checkNonNegative(&ps, "full_pass.refresh_after", c.FullPass.RefreshAfter)
	checkNonNegative(&ps, "full_pass.timeout", c.FullPass.Timeout)
	if n := c.FullPass.CompressionLevel; n < 1 || n > 9 {
		ps.add("full_pass.compression_level", "must be between 1 (fastest) and 9 (smallest), got %d", n)
	}
	if s := c.FullPass.Store; s != "" {
		if u, err := url.Parse(s); err != nil || (u.Scheme != "file" && u.Scheme != "s3" && u.Scheme != "gs") {
			ps.add("full_pass.store", "must be a blob URL: file:///dir, s3://bucket?region=... or gs://bucket, got %q", s)
		}
	}
	g := c.FullPass.Guard
	if math.IsNaN(g.MaxDrop) || g.MaxDrop < 0 || g.MaxDrop > 1 {
		ps.add("full_pass.guard.max_drop", "must be between 0 and 1, got %v", g.MaxDrop)
	}
	if math.IsNaN(g.MaxGrowth) || g.MaxGrowth < 0 {
		ps.add("full_pass.guard.max_growth", "must not be negative, got %v", g.MaxGrowth)
	}
	if g.MinSize < 0 {
		ps.add("full_pass.guard.min_size", "must not be negative, got %d", g.MinSize)
	}
	checkPositive(&ps, "processor.max_batch_records", c.Processor.MaxBatchRecords)
	checkPositive(&ps, "processor.seller_chunk", c.Processor.SellerChunk)
	if n := c.Processor.Workers; n < 1 || n > MaxWorkers {
		ps.add("processor.workers", "must be between 1 and %d, got %d", MaxWorkers, n)
	}
	if n := c.Processor.BackfillRate; n < 0 {
		ps.add("processor.backfill_rate", "must be 0 (no bound) or more, got %d", n)
	}
	if n := c.Processor.StandbyReplicas; n < 0 || n > MaxStandbyReplicas {
		ps.add("processor.standby_replicas", "must be between 0 and %d, got %d", MaxStandbyReplicas, n)
	}
	if n := c.Processor.MaxEventBytes; n < MinEventBytes || n > MaxEventBytes {
		ps.add("processor.max_event_bytes", "must be between %d and %d, got %d", MinEventBytes, MaxEventBytes, n)
	}

	// Feeds refer to templates, but their problems are listed first, in
	// the order of the Config fields.
	var templateProblems problems
	custom := checkTemplates(&templateProblems, c.Templates)
	checkFeeds(&ps, c.Feeds, custom)
	ps = append(ps, templateProblems...)
	return ps.err()
}

// checkFeeds checks feeds; custom holds the ids of the custom templates.
func checkFeeds(ps *problems, feeds []Feed, custom map[string]bool) {
	idPattern := regexp.MustCompile(FeedIDPattern)
	seen := map[string]int{}
	for i, f := range feeds {
		idPath := fmt.Sprintf("feeds[%d].id", i)
		switch {
		case f.ID == "":
			ps.add(idPath, "must not be empty")
		case !idPattern.MatchString(f.ID):
			ps.add(idPath, "invalid feed id %q: must match [a-z0-9][a-z0-9-]*", f.ID)
		}
		if f.ID != "" {
			if j, dup := seen[f.ID]; dup {
				ps.add(idPath, "duplicate feed id %q (also feeds[%d])", f.ID, j)
			} else {
				seen[f.ID] = i
			}
		}
		base := itemPath("feeds", i, f.ID)
		if strings.TrimSpace(f.Filter) == "" {
			ps.add(base+".filter", "must not be empty")
		}
		switch {
		case strings.TrimSpace(f.Template) == "":
			ps.add(base+".template", "must not be empty")
		case !IsBuiltinTemplate(f.Template) && !custom[f.Template]:
			ps.add(base+".template", "unknown template %q", f.Template)
		}
		checkStringList(ps, base+".destinations", f.Destinations, "destination")
		if g := f.Group; g != nil {
			if strings.TrimSpace(g.By) == "" {
				ps.add(base+".group.by", "must not be empty")
			}
			if strings.TrimSpace(g.Of) == "" {
				ps.add(base+".group.of", "must not be empty")
			}
			if g.Pick != PickMin && g.Pick != PickMax {
				ps.add(base+".group.pick", "must be %q or %q, got %q", PickMin, PickMax, g.Pick)
			}
		}
	}
}

// checkTemplates checks the custom templates and returns their ids.
func checkTemplates(ps *problems, templates []Template) map[string]bool {
	ids := map[string]bool{}
	seen := map[string]int{}
	for i, t := range templates {
		idPath := fmt.Sprintf("templates[%d].id", i)
		switch {
		case strings.TrimSpace(t.ID) == "":
			ps.add(idPath, "must not be empty")
		case IsBuiltinTemplate(t.ID):
			ps.add(idPath, "template id %q shadows a built-in template", t.ID)
		default:
			if j, dup := seen[t.ID]; dup {
				ps.add(idPath, "duplicate template id %q (also templates[%d])", t.ID, j)
			} else {
				seen[t.ID] = i
				ids[t.ID] = true
			}
		}
		base := itemPath("templates", i, t.ID)
		checkXMLName(ps, base+".root", t.Root)
		checkXMLName(ps, base+".item", t.Item)
		if len(t.Fields) == 0 {
			ps.add(base+".fields", "must have at least one field")
		}
		for j, f := range t.Fields {
			fp := fmt.Sprintf("%s.fields[%d]", base, j)
			checkXMLName(ps, fp+".name", f.Name)
			if strings.TrimSpace(f.Value) == "" {
				ps.add(fp+".value", "must not be empty")
			}
		}
	}
	return ids
}

// itemPath names element i of a list, with its id when it has one:
// feeds[2] (phones-gmc).
func itemPath(list string, i int, id string) string {
	if id == "" {
		return fmt.Sprintf("%s[%d]", list, i)
	}
	return fmt.Sprintf("%s[%d] (%s)", list, i, id)
}

// checkXMLName reports name unless it is an XML element name, optionally
// with a namespace prefix (g:id).
func checkXMLName(ps *problems, path, name string) {
	if name == "" {
		ps.add(path, "must not be empty")
		return
	}
	prefix, local, hasPrefix := strings.Cut(name, ":")
	if hasPrefix && (!isNCName(prefix) || !isNCName(local)) || !hasPrefix && !isNCName(name) {
		ps.add(path, "invalid XML name %q", name)
	}
}

// isNCName reports whether s is an XML name without a colon.
func isNCName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		start := r == '_' || unicode.IsLetter(r)
		if i == 0 && !start {
			return false
		}
		if !start && !unicode.IsDigit(r) && r != '-' && r != '.' &&
			!unicode.Is(unicode.Mn, r) && !unicode.Is(unicode.Mc, r) && r != '\u00B7' {
			return false
		}
	}
	return true
}

func checkKafka(ps *problems, path string, k *Kafka) {
	if len(k.Brokers) == 0 {
		ps.add(path+".brokers", "must not be empty")
	}
	for i, b := range k.Brokers {
		if !isHostPort(b, false) {
			ps.add(fmt.Sprintf("%s.brokers[%d]", path, i), "invalid address %q: want host:port", b)
		}
	}
	checkNonEmpty(ps, path+".group_id", k.GroupID)
	if k.SessionTimeout < time.Second || k.SessionTimeout > 30*time.Minute {
		ps.add(path+".session_timeout", "must be between 1s and 30m, got %s", k.SessionTimeout)
	}

	topics := []struct{ key, name string }{
		{"offers", k.Topics.Offers},
		{"sellers", k.Topics.Sellers},
		{"ratings", k.Topics.Ratings},
		{"events", k.Topics.Events},
		{"rejects", k.Topics.Rejects},
		{"changelog", k.Topics.Changelog},
		{"runs", k.Topics.Runs},
		{"feeds", k.Topics.Feeds},
		{"group_candidates", k.Topics.GroupCandidates},
		{"group_decisions", k.Topics.GroupDecisions},
	}
	seen := map[string]string{}
	for _, t := range topics {
		p := path + ".topics." + t.key
		if strings.TrimSpace(t.name) == "" {
			ps.add(p, "must not be empty")
			continue
		}
		if other, dup := seen[t.name]; dup {
			ps.add(p, "same topic %q as %s", t.name, other)
			continue
		}
		seen[t.name] = p
	}

	tls := k.TLS
	checkFile(ps, path+".tls.ca_file", tls.CAFile)
	checkFile(ps, path+".tls.cert_file", tls.CertFile)
	checkFile(ps, path+".tls.key_file", tls.KeyFile)
	if tls.CertFile != "" && tls.KeyFile == "" {
		ps.add(path+".tls.key_file", "must be set when cert_file is set")
	}
	if tls.KeyFile != "" && tls.CertFile == "" {
		ps.add(path+".tls.cert_file", "must be set when key_file is set")
	}

	s := k.SASL
	sp := path + ".sasl"
	switch s.Mechanism {
	case "":
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" {
			ps.add(sp+".mechanism", "must be set when username or password is set")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if s.Username == "" {
			ps.add(sp+".username", "must be set when mechanism is set")
		}
		if s.Password == "" && s.PasswordFile == "" {
			ps.add(sp+".password", "one of password or password_file must be set when mechanism is set")
		}
	default:
		ps.add(sp+".mechanism", "unknown mechanism %q: want %s, %s or %s",
			s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	checkSecretPair(ps, sp, "password", s.Password, "password_file", s.PasswordFile)
}

func checkRegistry(ps *problems, path string, r *SchemaRegistry) {
	checkHTTPURL(ps, path+".url", r.URL)
	if u, err := url.Parse(r.URL); err == nil && u.User != nil {
		ps.add(path+".url", "%q must not hold a user or password: set %s.username and %s.password or %s.password_file",
			RedactURL(r.URL), path, path, path)
	}
	checkSecretPair(ps, path, "password", r.Password, "password_file", r.PasswordFile)
	if r.Username == "" && (r.Password != "" || r.PasswordFile != "") {
		ps.add(path+".username", "must be set when a password is set")
	}
}

// checkSecretPair reports a secret given both inline and as a file, a
// secret file that cannot be read, and a secret (inline or the file's
// content) shorter than MinSecretBytes after trimming whitespace.
func checkSecretPair(ps *problems, path, valueKey, value, fileKey, file string) {
	if value != "" && file != "" {
		ps.add(path+"."+valueKey, "set %s or %s, not both", valueKey, fileKey)
	}
	if value != "" {
		if p := secretProblem(value); p != "" {
			ps.add(path+"."+valueKey, "%s", p)
		}
	}
	n := len(*ps)
	checkFile(ps, path+"."+fileKey, file)
	if file == "" || len(*ps) > n {
		return
	}
	b, err := os.ReadFile(file)
	if err != nil {
		ps.add(path+"."+fileKey, "cannot read file %q: %v", file, unwrapPathError(err))
		return
	}
	if p := secretProblem(string(b)); p != "" {
		ps.add(path+"."+fileKey, "%s (file %q)", p, file)
	}
}

// checkFile reports a set path that is not a readable regular file.
func checkFile(ps *problems, path, file string) {
	if file == "" {
		return
	}
	fi, err := os.Stat(file)
	switch {
	case err != nil:
		ps.add(path, "cannot use file %q: %v", file, unwrapPathError(err))
	case fi.IsDir():
		ps.add(path, "cannot use file %q: is a directory", file)
	}
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// checkHTTPURL reports s unless it is an absolute http or https URL. The
// messages show s with any userinfo redacted.
func checkHTTPURL(ps *problems, path, s string) {
	if s == "" {
		ps.add(path, "must not be empty")
		return
	}
	u, err := url.Parse(s)
	switch shown := RedactURL(s); {
	case err != nil:
		ps.add(path, "invalid URL %q", shown)
	case u.Scheme != "http" && u.Scheme != "https":
		ps.add(path, "invalid URL %q: scheme must be http or https", shown)
	case u.Host == "":
		ps.add(path, "invalid URL %q: no host", shown)
	}
}

// checkListen reports s unless it is a listen address [host]:port.
func checkListen(ps *problems, path, s string) {
	if !isHostPort(s, true) {
		ps.add(path, "invalid listen address %q: want host:port", s)
	}
}

// IsLoopbackListen reports whether the listen address host:port only
// accepts local connections: localhost or a loopback IP. An empty host
// (all interfaces) and any other name are not loopback.
func IsLoopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isHostPort reports whether s is host:port with a numeric port; the
// host may be empty only when emptyHost is true.
func isHostPort(s string, emptyHost bool) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || (host == "" && !emptyHost) {
		return false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && (n > 0 || emptyHost)
}

// checkStringList reports empty and duplicate entries of a list.
func checkStringList(ps *problems, path string, list []string, what string) {
	seen := map[string]int{}
	for i, s := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		if strings.TrimSpace(s) == "" {
			ps.add(p, "must not be empty")
			continue
		}
		if j, dup := seen[s]; dup {
			ps.add(p, "duplicate %s %q (also %s[%d])", what, s, lastKey(path), j)
			continue
		}
		seen[s] = i
	}
}

// lastKey returns the final key of a dotted path.
func lastKey(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i+1:]
	}
	return path
}

func checkNonEmpty(ps *problems, path, s string) {
	if strings.TrimSpace(s) == "" {
		ps.add(path, "must not be empty")
	}
}

func checkNonNegative(ps *problems, path string, d time.Duration) {
	if d < 0 {
		ps.add(path, "must not be negative, got %s", d)
	}
}

// MaxWorkers bounds processor.workers; MaxStandbyReplicas bounds
// processor.standby_replicas.
const (
	MaxWorkers         = 256
	MaxStandbyReplicas = 8
)

// MinEventBytes and MaxEventBytes bound processor.max_event_bytes: below
// the minimum no realistic offer fits; above the maximum no Kafka producer
// request would carry it.
const (
	MinEventBytes = 16 << 10
	MaxEventBytes = 64 << 20
)

func checkPositive(ps *problems, path string, n int) {
	if n <= 0 {
		ps.add(path, "must be greater than 0, got %d", n)
	}
}
