package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
)

// offlineConfig is a valid config whose broker and registry refuse
// connections: the processor starts, serves HTTP and retries them.
func offlineConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{"127.0.0.1:1"}
	cfg.SchemaRegistry.URL = "http://127.0.0.1:1"
	cfg.State.Dir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Feeds = []config.Feed{testFeed}
	cfg.FullPass.Interval = 0
	return &cfg
}

// started is a Run in progress.
type started struct {
	addr string
	done chan error
}

// start builds the app and runs it until the test ends.
func start(t *testing.T, cfg *config.Config, logger *zap.Logger, d Deps) *started {
	t.Helper()
	d.Logger = logger
	a, err := New(cfg, d)
	if err != nil {
		t.Fatalf("new app: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{addr: a.Addr(), done: make(chan error, 1)}
	go func() { s.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-s.done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return s
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestRunRefusesAnonymousAdmin(t *testing.T) {
	cfg := offlineConfig(t)
	cfg.HTTP.Listen = "0.0.0.0:0"
	a, err := New(cfg, Deps{})
	var ve *config.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), `http.admin_token: must be set when http.listen "0.0.0.0:0" is not a loopback address`) {
		t.Fatalf("New: %v, want the http.admin_token problem", err)
	}
	if a != nil {
		t.Fatal("an app was built (and listened) before refusing")
	}
}

func TestRunWarnsAnonymousAdmin(t *testing.T) {
	cfg := offlineConfig(t)
	cfg.HTTP.Listen = "0.0.0.0:0"
	cfg.HTTP.AllowAnonymousAdmin = true
	core, logs := observer.New(zapcore.WarnLevel)
	start(t, cfg, zap.New(core), Deps{})
	open := logs.FilterMessageSnippet("admin API is open to anyone")
	if open.Len() != 1 || open.All()[0].Level != zapcore.WarnLevel {
		t.Fatalf("warnings %v, want one about the open admin API", logs.All())
	}
}

func TestRunRefusesLowDisk(t *testing.T) {
	cfg := offlineConfig(t)
	cfg.State.MinFreeBytes = 1 << 30
	var asked string
	a, err := New(cfg, Deps{
		FreeBytes: func(dir string) (uint64, error) { asked = dir; return 100 << 20, nil },
	})
	if a != nil {
		t.Error("an app was built (and listened) with a full disk")
	}
	var de *DiskSpaceError
	if !errors.As(err, &de) || de.FreeBytes != 100<<20 || de.MinFreeBytes != 1<<30 || asked != cfg.State.Dir {
		t.Fatalf("New: %v (statfs of %q), want a DiskSpaceError for %q", err, asked, cfg.State.Dir)
	}
	for _, want := range []string{cfg.State.Dir, "100.0 MiB (104857600 bytes) free", "at least 1024.0 MiB (1073741824 bytes)", "state.min_free_bytes", "0 disables"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
}

func TestCheckFreeSpace(t *testing.T) {
	statfsErr := errors.New("statfs failed")
	tests := []struct {
		name    string
		min     int64
		free    uint64
		err     error
		wantErr bool
	}{
		{"enough", 1 << 30, 2 << 30, nil, false},
		{"exactly", 1 << 30, 1 << 30, nil, false},
		{"short", 1 << 30, 1<<30 - 1, nil, true},
		{"disabled", 0, 0, statfsErr, false},
		{"statfs error", 1, 0, statfsErr, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkFreeSpace(filepath.Join(t.TempDir(), "new"), tt.min, func(string) (uint64, error) {
				if tt.min == 0 {
					t.Error("statfs called with the check disabled")
				}
				return tt.free, tt.err
			})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
		})
	}
	// The real statfs answers for an existing directory.
	if _, err := statfsFree(t.TempDir()); err != nil {
		t.Fatalf("statfs: %v", err)
	}
}

func TestBoundedShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	err := boundedShutdown(ctx, time.Millisecond, func() error { <-hang; return nil })
	if !errors.Is(err, ErrShutdownTimeout) {
		t.Fatalf("hanging part: %v, want ErrShutdownTimeout", err)
	}
	want := errors.New("part failed")
	if err := boundedShutdown(context.Background(), time.Millisecond, func() error { return want }); !errors.Is(err, want) {
		t.Fatalf("returning part: %v", err)
	}
}

// TestRunRegistryDownServesFeeds starts the processor while the schema
// registry answers 503: it serves the feed published before, is not
// ready, and once the registry is back becomes ready and processes offers.
func TestRunRegistryDownServesFeeds(t *testing.T) {
	env := testenv.New(t, "offers", "sellers", "ratings", "feed-events", "feedmill-rejects")
	target, err := url.Parse(env.RegistryURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var down atomic.Bool
	var refused atomic.Int32
	down.Store(true)
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			refused.Add(1)
			http.Error(w, "registry down", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(registry.Close)

	cfg := offlineConfig(t)
	cfg.Kafka.Brokers = env.Brokers
	cfg.SchemaRegistry.URL = registry.URL
	_, _ = publishFeed(t, filepath.Join(cfg.State.Dir, "feeds"), 10, 100)
	core, logs := observer.New(zapcore.WarnLevel)
	s := start(t, cfg, zap.New(core), Deps{})
	base := "http://" + s.addr

	code, body := get(t, base+"/feeds/big.xml")
	if code != http.StatusOK || !strings.Contains(string(body), strings.Repeat("x", 50)) {
		t.Fatalf("published feed: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the registry down: %d %s", code, body)
	}
	waitFor(t, "two refused registrations", func() bool { return refused.Load() >= 2 })
	if n := logs.FilterMessageSnippet("registering the FeedEvent schema failed").Len(); n != 1 {
		t.Fatalf("%d warnings about the registry, want 1 (then rate-limited): %v", n, logs.All())
	}
	if code, _ := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the registry down: %d", code)
	}

	down.Store(false)
	waitFor(t, "ready", func() bool { code, _ := get(t, base+"/readyz"); return code == http.StatusOK })

	ctx := context.Background()
	gen, err := synth.New(7, synth.Options{Offers: 20, Sellers: 2, HostileFraction: -1})
	if err != nil {
		t.Fatal(err)
	}
	prod, err := synth.NewProducer(ctx, env.Client(t), records.NewSerde(env.Registry(t)), cfg.Kafka.Topics)
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.Initial(func(ch synth.Change) error { return prod.Produce(ctx, ch) }); err != nil {
		t.Fatal(err)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "members in feed big", func() bool {
		_, body := get(t, base+"/api/feeds")
		var fs []struct {
			ID      string `json:"id"`
			Members int64  `json:"members"`
		}
		if err := json.Unmarshal(body, &fs); err != nil {
			t.Fatalf("api/feeds %q: %v", body, err)
		}
		return len(fs) == 1 && fs[0].Members > 0
	})
}

// waitFor polls cond until it holds, failing the test after guard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, guard)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
