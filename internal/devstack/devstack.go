package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.uber.org/zap"
)

// DefaultPartitions is the partition count of created topics when
// Options.Partitions is 0.
const DefaultPartitions int32 = 4

// registryFile is the name of the schema snapshot under Options.DataDir.
const registryFile = "registry.json"

// Options configures a Stack.
type Options struct {
	// DataDir enables persistence: broker state under DataDir/kafka and
	// registered schemas in DataDir/registry.json. "" keeps everything in
	// memory.
	DataDir string
	// KafkaPort is the broker's loopback port; 0 picks a free one.
	KafkaPort int
	// RegistryPort is the registry's loopback port; 0 picks a free one.
	RegistryPort int
	// Partitions is the partition count of auto-created and listed topics
	// (default DefaultPartitions).
	Partitions int32
	// Topics are created at start when missing.
	Topics []string
	// Logger receives broker warnings and registry server errors
	// (default zap.NewNop()).
	Logger *zap.Logger
}

// Stack is a running broker and registry. Its methods are safe for
// concurrent use.
type Stack struct {
	cluster  *kfake.Cluster
	registry *srfake.Registry
	server   *http.Server
	regURL   string
	brokers  []string
	log      *zap.Logger

	snapshotPath string
	snapshotMu   sync.Mutex // serializes snapshot writes

	serveDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Start binds the broker and registry to 127.0.0.1, restores persisted
// state when o.DataDir is set, and creates o.Topics when missing. The
// returned Stack runs until Close; ctx only bounds start-up.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.Partitions <= 0 {
		o.Partitions = DefaultPartitions
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	s := &Stack{log: o.Logger, serveDone: make(chan struct{})}

	// Registry first: it is cheap to undo if the broker fails.
	s.registry = srfake.NewRegistry()
	if o.DataDir != "" {
		if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("create data dir %q: %w", o.DataDir, err)
		}
		s.snapshotPath = filepath.Join(o.DataDir, registryFile)
		if err := s.restoreSchemas(); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.RegistryPort)))
	if err != nil {
		return nil, fmt.Errorf("listen for schema registry on port %d: %w", o.RegistryPort, err)
	}
	s.regURL = "http://" + ln.Addr().String()
	s.server = &http.Server{
		Handler:           s.persistingHandler(s.registry.Handler()),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(o.Logger.Named("registry")),
	}
	go func() {
		defer close(s.serveDone)
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("schema registry server stopped", zap.Error(err))
		}
	}()

	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(o.KafkaPort),
		kfake.ListenFn(loopbackListen),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(o.Partitions)),
		kfake.WithLogger(kfakeLogger{o.Logger.Named("kfake")}),
	}
	if len(o.Topics) > 0 {
		kopts = append(kopts, kfake.SeedTopics(o.Partitions, o.Topics...))
	}
	if o.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(filepath.Join(o.DataDir, "kafka")))
	}
	s.cluster, err = kfake.NewCluster(kopts...)
	if err != nil {
		s.stopRegistry()
		return nil, fmt.Errorf("start embedded broker: %w", err)
	}
	s.brokers = s.cluster.ListenAddrs()

	// Seed topics only apply to a fresh data dir; create missing ones
	// on a restored cluster too.
	if len(o.Topics) > 0 {
		if err := s.ensureTopics(ctx, o.Partitions, o.Topics); err != nil {
			_ = s.Close() // the start-up error is the one to report
			return nil, err
		}
	}
	return s, nil
}

// loopbackListen forces every listener onto 127.0.0.1 whatever host kfake
// asks for.
func loopbackListen(network, address string) (net.Listener, error) {
	_, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("split broker listen address %q: %w", address, err)
	}
	return net.Listen(network, net.JoinHostPort("127.0.0.1", port))
}

func (s *Stack) ensureTopics(ctx context.Context, partitions int32, topics []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...))
	if err != nil {
		return fmt.Errorf("create admin client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	existing, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	var missing []string
	for _, t := range topics {
		if !existing.Has(t) {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	resps, err := adm.CreateTopics(ctx, partitions, 1, nil, missing...)
	if err != nil {
		return fmt.Errorf("create topics %v: %w", missing, err)
	}
	for _, r := range resps.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %q: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// Brokers returns the broker's host:port seeds.
func (s *Stack) Brokers() []string { return append([]string(nil), s.brokers...) }

// RegistryURL returns the registry's base URL, e.g. http://127.0.0.1:40124.
func (s *Stack) RegistryURL() string { return s.regURL }

// Cluster returns the embedded kfake cluster (for fault injection and
// control functions in tests).
func (s *Stack) Cluster() *kfake.Cluster { return s.cluster }

// Registry returns the embedded in-memory registry.
func (s *Stack) Registry() *srfake.Registry { return s.registry }

// Close stops the registry and the broker; with persistence on, the broker
// writes its state to disk before Close returns. Close is idempotent and
// returns the first error met.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.stopRegistry()
		if s.cluster != nil {
			s.cluster.Close()
		}
	})
	return s.closeErr
}

func (s *Stack) stopRegistry() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.server.Shutdown(ctx)
	<-s.serveDone
	if err != nil {
		return fmt.Errorf("shut down schema registry: %w", err)
	}
	return nil
}

// persistingHandler wraps the registry handler: after every successful
// POST /subjects/{subject}/versions it writes a schema snapshot.
func (s *Stack) persistingHandler(next http.Handler) http.Handler {
	if s.snapshotPath == "" {
		return next
	}
	mux := http.NewServeMux()
	mux.Handle("/", next)
	mux.HandleFunc("POST /subjects/{subject}/versions", func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if rec.status != http.StatusOK {
			return
		}
		if err := s.saveSchemas(); err != nil {
			// The schema is registered in memory and the client has its
			// answer; the next registration retries the snapshot.
			s.log.Error("persist schema registry", zap.String("path", s.snapshotPath), zap.Error(err))
		}
	})
	return mux
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// snapshot is the on-disk form of the registry.
type snapshot struct {
	Schemas []sr.SubjectSchema `json:"schemas"`
}

// saveSchemas lists every schema through the registry's own GET /schemas
// and writes them to the snapshot file atomically.
func (s *Stack) saveSchemas() error {
	s.snapshotMu.Lock()
	defer s.snapshotMu.Unlock()

	req := httptest.NewRequest(http.MethodGet, "/schemas", nil)
	rec := httptest.NewRecorder()
	s.registry.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return fmt.Errorf("list schemas: status %d: %s", rec.Code, bytes.TrimSpace(rec.Body.Bytes()))
	}
	var snap snapshot
	if err := json.Unmarshal(rec.Body.Bytes(), &snap.Schemas); err != nil {
		return fmt.Errorf("decode schema list: %w", err)
	}
	data, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return fmt.Errorf("encode schema snapshot: %w", err)
	}
	tmp := s.snapshotPath + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %q: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close() // the write error is the one to report
		return fmt.Errorf("write %q: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the sync error is the one to report
		return fmt.Errorf("sync %q: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %q: %w", tmp, err)
	}
	if err := os.Rename(tmp, s.snapshotPath); err != nil {
		return fmt.Errorf("rename %q: %w", tmp, err)
	}
	return nil
}

// restoreSchemas seeds the registry from the snapshot file, in id order so
// references resolve.
func (s *Stack) restoreSchemas() (err error) {
	data, err := os.ReadFile(s.snapshotPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read schema snapshot: %w", err)
	}
	var snap snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("decode schema snapshot %q: %w", s.snapshotPath, err)
	}
	sort.SliceStable(snap.Schemas, func(i, j int) bool { return snap.Schemas[i].ID < snap.Schemas[j].ID })
	seen := make(map[int]bool, len(snap.Schemas))
	for _, ss := range snap.Schemas {
		if err := s.seed(ss, seen[ss.ID]); err != nil {
			return fmt.Errorf("restore schema %q version %d id %d from %q: %w", ss.Subject, ss.Version, ss.ID, s.snapshotPath, err)
		}
		seen[ss.ID] = true
	}
	return nil
}

// seed inserts one schema. srfake.SeedSchema panics on a bad slot or
// refuses a second subject for the same id; the panic is turned into an
// error here, and a schema id shared by several subjects is added through
// RegisterSchema (which reuses the id of an identical schema).
func (s *Stack) seed(ss sr.SubjectSchema, idSeen bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("seed schema: %v", r)
		}
	}()
	if idSeen {
		id, _, err := s.registry.RegisterSchema(ss.Subject, ss.Schema)
		if err != nil {
			return fmt.Errorf("register shared schema: %w", err)
		}
		if id != ss.ID {
			return fmt.Errorf("shared schema got id %d", id)
		}
		return nil
	}
	s.registry.SeedSchema(ss.Subject, ss.Version, ss.ID, ss.Schema)
	return nil
}

// kfakeLogger bridges kfake's logger to zap at warn level and above.
type kfakeLogger struct{ log *zap.Logger }

func (l kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		l.log.Error(fmt.Sprintf(format, args...))
	case kfake.LogLevelWarn:
		l.log.Warn(fmt.Sprintf(format, args...))
	}
}
