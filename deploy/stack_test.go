package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
)

func loadProject(t *testing.T) *types.Project {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "docker-compose.yml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: path, Content: data}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("feedmill", true) })
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

func TestComposeServices(t *testing.T) {
	p := loadProject(t)
	type want struct {
		ports       []uint32 // published host ports
		healthcheck bool
		dependsOn   map[string]string
		imagePrefix string
	}
	wants := map[string]want{
		"kafka":           {ports: []uint32{29092}, healthcheck: true, imagePrefix: "apache/kafka:"},
		"schema-registry": {ports: []uint32{8081}, healthcheck: true, imagePrefix: "confluentinc/cp-schema-registry:", dependsOn: map[string]string{"kafka": "service_healthy"}},
		"kafka-init":      {imagePrefix: "apache/kafka:", dependsOn: map[string]string{"kafka": "service_healthy"}},
		"feedmill": {ports: []uint32{8080}, healthcheck: true, imagePrefix: "feedmill:",
			dependsOn: map[string]string{"kafka-init": "service_completed_successfully", "schema-registry": "service_healthy"}},
		"gen": {imagePrefix: "feedmill:",
			dependsOn: map[string]string{"kafka-init": "service_completed_successfully", "schema-registry": "service_healthy"}},
		"sink": {ports: []uint32{8099}, healthcheck: true, imagePrefix: "feedmill:"},
		"connector-webhook": {ports: []uint32{8090}, healthcheck: true, imagePrefix: "feedmill:",
			dependsOn: map[string]string{"feedmill": "service_healthy", "sink": "service_healthy"}},
		"prometheus": {ports: []uint32{9090}, healthcheck: true, imagePrefix: "prom/prometheus:",
			dependsOn: map[string]string{"feedmill": "service_healthy", "connector-webhook": "service_healthy"}},
	}
	for _, name := range p.ServiceNames() {
		if _, ok := wants[name]; !ok {
			t.Errorf("unexpected service %q", name)
		}
	}
	for name, w := range wants {
		t.Run(name, func(t *testing.T) {
			s, err := p.GetService(name)
			if err != nil {
				t.Fatalf("service missing: %v", err)
			}
			if !strings.HasPrefix(s.Image, w.imagePrefix) {
				t.Errorf("image %q, want %s*", s.Image, w.imagePrefix)
			}
			var published []uint32
			for _, pc := range s.Ports {
				published = append(published, uint32(atoi(t, pc.Published)))
			}
			if !slices.Equal(published, w.ports) {
				t.Errorf("published ports %v, want %v", published, w.ports)
			}
			hc := s.HealthCheck != nil && len(s.HealthCheck.Test) > 1 && !s.HealthCheck.Disable
			if hc != w.healthcheck {
				t.Errorf("health check %v, want %v", hc, w.healthcheck)
			}
			if len(s.DependsOn) != len(w.dependsOn) {
				t.Errorf("depends_on %v, want %v", s.DependsOn, w.dependsOn)
			}
			for dep, cond := range w.dependsOn {
				if got := s.DependsOn[dep].Condition; got != cond {
					t.Errorf("depends_on %s condition %q, want %q", dep, got, cond)
				}
			}
			if strings.HasPrefix(w.imagePrefix, "feedmill:") && (s.Build == nil || s.Build.Dockerfile != "Dockerfile") {
				t.Errorf("feedmill service not built from the Dockerfile")
			}
		})
	}
	gen, _ := p.GetService("gen")
	if cmd := strings.Join(gen.Command, " "); !strings.Contains(cmd, "feedmill gen -brokers kafka:9092 -registry http://schema-registry:8081") ||
		!strings.Contains(cmd, "-rate 200") {
		t.Errorf("gen command %q", cmd)
	}
}

// TestComposeConfigs checks that every config the stack mounts passes the
// checks `feedmill validate` and the connectors' start-up run, with the
// service's environment.
func TestComposeConfigs(t *testing.T) {
	p := loadProject(t)
	mounted := 0
	for _, name := range p.ServiceNames() {
		s, _ := p.GetService(name)
		env := environ(s)
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts missing %s: %v", name, v.Source, err)
				continue
			}
			switch {
			case v.Target == "/etc/feedmill/feedmill.yaml":
				mounted++
				cfg, err := config.Load(v.Source, env)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if _, err := feeds.Compile(cfg.Feeds, cfg.Templates); err != nil {
					t.Errorf("%s: feeds: %v", name, err)
				}
				if !hasArgs(s.Command, "-config", v.Target) {
					t.Errorf("%s does not run with -config %s: %v", name, v.Target, s.Command)
				}
			case v.Target == "/etc/feedmill/connector.yaml":
				mounted++
				cfg, err := config.LoadConnector(v.Source, env)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				partner := strings.TrimPrefix(filepath.Base(s.Command[0]), "feedmill-connector-")
				if err := cfg.ValidatePartner(partner); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		}
	}
	if mounted != 2 {
		t.Errorf("%d feedmill configs mounted, want 2 (processor and webhook connector)", mounted)
	}
	// The example configs of the connectors not started by the stack
	// parse too (their partner sections name secret files that exist
	// only in production, so only the generic part is validated).
	for _, f := range []string{"connectors/merchant.example.yaml", "connectors/meta.example.yaml"} {
		if _, err := config.LoadConnector(f, nil); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestPrometheusTargets(t *testing.T) {
	data, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"feedmill:8080", "connector-webhook:8090", "sink:8099"} {
		if !strings.Contains(string(data), target) {
			t.Errorf("prometheus does not scrape %s", target)
		}
	}
	rules, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, metric := range []string{"feedmill_consumer_lag", "feedmill_change_to_event_seconds_bucket", "feedmill_runs_held",
		"feedmill_full_pass_runs_total", "feedmill_feed_publish_pending", "feedmill_feed_last_published_timestamp_seconds",
		"feedmill_connector_dead_letters_total", "feedmill_connector_consumer_lag"} {
		if !strings.Contains(string(rules), metric) {
			t.Errorf("no alert rule on %s", metric)
		}
	}
}

// TestAlertRules decodes the rules file strictly, as Prometheus's rule
// format has it, and checks every rule is complete and named once, and
// that the full-pass alerts are there: a failed run, a file feed not
// published for 3 h (twice the default full_pass.interval plus a run),
// and a file feed never published 15 min after its instance started.
func TestAlertRules(t *testing.T) {
	type rule struct {
		Alert       string            `yaml:"alert"`
		Expr        string            `yaml:"expr"`
		For         string            `yaml:"for"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	f, err := os.Open("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	rules := map[string]rule{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("group %s: incomplete rule %+v", g.Name, r)
			}
			if _, dup := rules[r.Alert]; dup {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			rules[r.Alert] = r
		}
	}
	for name, want := range map[string]struct{ expr, for_ string }{
		"FeedmillRunFailed":          {expr: `feedmill_full_pass_runs_total{status="failed"}`},
		"FeedmillFeedStale":          {expr: "time() - max by (feed) (feedmill_feed_last_published_timestamp_seconds > 0) > 3 * 3600"},
		"FeedmillFeedNeverPublished": {expr: "max by (feed) (feedmill_feed_last_published_timestamp_seconds) == 0", for_: "15m"},
	} {
		r, ok := rules[name]
		if !ok {
			t.Errorf("no alert %s", name)
			continue
		}
		if !strings.Contains(r.Expr, want.expr) || r.For != want.for_ && want.for_ != "" {
			t.Errorf("alert %s: expr %q for %q, want %q for %q", name, r.Expr, r.For, want.expr, want.for_)
		}
	}
}

func environ(s types.ServiceConfig) []string {
	var env []string
	for k, v := range s.Environment {
		if v != nil {
			env = append(env, k+"="+*v)
		}
	}
	return env
}

func hasArgs(cmd []string, flag, value string) bool {
	i := slices.Index(cmd, flag)
	return i >= 0 && i+1 < len(cmd) && cmd[i+1] == value
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("port %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// TestComposeAdminToken checks the processor's /api/* is protected in the
// stack: its config listens on all interfaces, so it starts only with
// the admin token the compose file passes through the environment.
func TestComposeAdminToken(t *testing.T) {
	p := loadProject(t)
	s, err := p.GetService("feedmill")
	if err != nil {
		t.Fatal(err)
	}
	env := environ(s)
	if !slices.ContainsFunc(env, func(kv string) bool {
		return strings.HasPrefix(kv, "FEEDMILL_HTTP_ADMIN_TOKEN=") && len(kv) > len("FEEDMILL_HTTP_ADMIN_TOKEN=")
	}) {
		t.Fatalf("feedmill service sets no FEEDMILL_HTTP_ADMIN_TOKEN: %v", env)
	}
	cfg, err := config.Load("feedmill/feedmill.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.AdminToken == "" || cfg.HTTP.AllowAnonymousAdmin {
		t.Fatalf("http listen %s, token set %v, anonymous %v: want a token and no anonymous admin", cfg.HTTP.Listen, cfg.HTTP.AdminToken != "", cfg.HTTP.AllowAnonymousAdmin)
	}
	if _, err := config.Load("feedmill/feedmill.yaml", nil); err == nil || !strings.Contains(err.Error(), "http.admin_token") {
		t.Fatalf("without the environment: %v, want an http.admin_token problem", err)
	}
}
