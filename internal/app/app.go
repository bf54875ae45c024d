package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/clients"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/processor/admin"
	"github.com/feedmill/feedmill/processor/api"
	"github.com/feedmill/feedmill/processor/dryrun"
	"github.com/feedmill/feedmill/processor/feedchange"
	"github.com/feedmill/feedmill/processor/feedlog"
	"github.com/feedmill/feedmill/processor/feedstore"
	"github.com/feedmill/feedmill/processor/fullpass"
	"github.com/feedmill/feedmill/processor/runlog"
	"github.com/feedmill/feedmill/state"
)

// Deps are an App's dependencies and hooks beyond its config. Zero values
// take defaults.
type Deps struct {
	// Logger is the root logger (default: a no-op logger).
	Logger *zap.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// HTTP bounds slow clients; tests use small values.
	HTTP HTTPLimits
	// FreeBytes returns the bytes available on the file system holding
	// a directory (default statfs); tests inject it.
	FreeBytes func(dir string) (uint64, error)
	// ShutdownGrace bounds how long Run waits for its parts once ctx
	// has ended (default 25 s, within the deploy's 30 s stop grace).
	ShutdownGrace time.Duration
	// State tunes Pebble (tests use small caches).
	State state.Options
	// OnPartition, when set, is called by a full pass after it has read
	// each partition (tests interrupt a pass midway with it).
	OnPartition func(ctx context.Context, p int32)
}

// HTTPLimits bound what one client can hold on the HTTP server.
type HTTPLimits struct {
	// ReadHeader bounds reading a request's headers (default 5 s).
	ReadHeader time.Duration
	// Read bounds reading a whole request, body included (default 10 s):
	// a trickled body is cut.
	Read time.Duration
	// Idle closes a keep-alive connection with no request for this long
	// (default 30 s).
	Idle time.Duration
	// ChunkWrite bounds writing each 64 KiB chunk of a feed file (default
	// feedstore.DefaultChunkWriteTimeout). The server has no overall
	// WriteTimeout, so a big feed streams to a slow but steady client.
	ChunkWrite time.Duration
	// MaxBodyBytes bounds request bodies (default api.MaxBodyBytes);
	// larger ones get 413.
	MaxBodyBytes int64
}

func (l HTTPLimits) withDefaults() HTTPLimits {
	if l.ReadHeader <= 0 {
		l.ReadHeader = 5 * time.Second
	}
	if l.Read <= 0 {
		l.Read = 10 * time.Second
	}
	if l.Idle <= 0 {
		l.Idle = 30 * time.Second
	}
	if l.ChunkWrite <= 0 {
		l.ChunkWrite = feedstore.DefaultChunkWriteTimeout
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = api.MaxBodyBytes
	}
	return l
}

// newServer returns the processor's HTTP server: admin auth and body
// bounds around mux, and the slow-client timeouts of l. WriteTimeout
// stays 0; feed files bound each chunk instead.
func newServer(cfg config.HTTP, l HTTPLimits, mux http.Handler) *http.Server {
	return &http.Server{
		Handler:           api.AdminAuth(cfg.AdminToken, api.LimitBodies(l.MaxBodyBytes, mux)),
		ReadHeaderTimeout: l.ReadHeader,
		ReadTimeout:       l.Read,
		IdleTimeout:       l.Idle,
	}
}

// App is one processor instance: state, streaming pipeline, full pass,
// feed files and the HTTP server, wired from one config. New builds it
// (and listens); Run runs it until its context ends and then closes
// everything. Its fields are for tests and commands to inspect; they are
// owned by the App.
type App struct {
	Config   *config.Config
	Feeds    *feeds.Set
	Serde    *records.Serde
	Store    *state.Store
	Pipeline *processor.Pipeline
	Pass     *fullpass.FullPass
	Files    *feedstore.Store
	RunLog   *runlog.Kafka
	Registry *prometheus.Registry
	// FeedLog and Changer keep the feed set in force (live feed
	// changes); Feeds is the config file's set the app started with.
	FeedLog *feedlog.Log
	Changer *feedchange.Changer
	dryRuns *dryrun.Runner // one dry run at a time: the API's and the guard's estimates

	logger *zap.Logger
	deps   Deps
	ln     net.Listener
	srv    *http.Server
	closed bool
}

// New validates cfg and builds the App: it refuses a config that does not
// validate (an empty http.admin_token on a non-loopback listen without
// http.allow_anonymous_admin among others) and, returning a
// *DiskSpaceError, a state dir with less free space than
// state.min_free_bytes. It opens the state and listens on http.listen;
// nothing is consumed before Run. On error everything opened is closed.
func New(cfg *config.Config, d Deps) (a *App, err error) {
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.FreeBytes == nil {
		d.FreeBytes = statfsFree
	}
	if d.ShutdownGrace <= 0 {
		d.ShutdownGrace = 25 * time.Second
	}
	d.HTTP = d.HTTP.withDefaults()
	logger := d.Logger
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if cfg.HTTP.AdminToken == "" && !config.IsLoopbackListen(cfg.HTTP.Listen) {
		logger.Warn("the admin API is open to anyone who reaches the listen address: http.admin_token is empty and http.allow_anonymous_admin is true; anyone can start, approve and reject runs",
			zap.String("listen", cfg.HTTP.Listen))
	}
	if err := checkFreeSpace(cfg.State.Dir, cfg.State.MinFreeBytes, d.FreeBytes); err != nil {
		return nil, err
	}
	set, err := feeds.Compile(cfg.Feeds, cfg.Templates)
	if err != nil {
		return nil, fmt.Errorf("compile feeds: %w", err)
	}
	kopts, err := clients.KafkaOpts(cfg.Kafka)
	if err != nil {
		return nil, err
	}
	srcl, err := clients.Registry(cfg.SchemaRegistry)
	if err != nil {
		return nil, err
	}
	a = &App{Config: cfg, Feeds: set, Serde: records.NewSerde(srcl), logger: logger, deps: d}
	a.Store, err = state.Open(filepath.Join(cfg.State.Dir, "state"), a.Serde, d.State, logger)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	a.Registry = prometheus.NewRegistry()
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.Pipeline, err = processor.NewPipeline(processor.PipelineDeps{
		Config: cfg, Store: a.Store, Feeds: set, Serde: a.Serde, Metrics: processor.NewMetrics(a.Registry),
		Logger: logger, KafkaOpts: kopts, Now: d.Now,
	})
	if err != nil {
		return nil, err
	}
	a.FeedLog, err = feedlog.OpenKafka(kopts, cfg.Kafka.Topics.Feeds, logger)
	if err != nil {
		return nil, err
	}
	a.dryRuns = &dryrun.Runner{Store: a.Store, Serde: a.Serde, Coverage: a.Pipeline.Coverage, MaxEventBytes: cfg.Processor.MaxEventBytes, Now: d.Now}
	a.Changer = feedchange.New(feedchange.Deps{
		Log: a.FeedLog, Stream: a.Pipeline, Guard: cfg.FullPass.Guard, Templates: cfg.Templates,
		OnSet: a.onFeedSet, Estimate: a.estimate, Logger: logger,
	})
	storeURL := cfg.FullPass.Store
	if storeURL == "" {
		dir, err := filepath.Abs(filepath.Join(cfg.State.Dir, "feeds"))
		if err != nil {
			return nil, fmt.Errorf("feed files dir: %w", err)
		}
		storeURL = "file://" + filepath.ToSlash(dir)
	}
	octx, ocancel := context.WithTimeout(context.Background(), 30*time.Second)
	a.Files, err = feedstore.Open(octx, storeURL, filepath.Join(cfg.State.Dir, "spool"), set, logger)
	ocancel()
	if err != nil {
		return nil, fmt.Errorf("full_pass.store: %w", err)
	}
	a.Files.ChunkWriteTimeout = d.HTTP.ChunkWrite
	a.Files.CompressionLevel = cfg.FullPass.CompressionLevel
	a.RunLog, err = runlog.OpenKafka(kopts, cfg.Kafka.Topics.Runs, logger)
	if err != nil {
		return nil, err
	}
	instance, err := a.Pipeline.InstanceID()
	if err != nil {
		return nil, err
	}
	a.Pass, err = fullpass.New(fullpass.Deps{
		Config: cfg.FullPass, Store: a.Store, Feeds: set, Files: a.Files, Log: a.RunLog.Log, Instance: instance,
		Workers: cfg.Processor.Workers, FeedSet: fullpass.FeedSetFingerprint(cfg.Feeds, cfg.Templates), Serde: a.Serde, Stream: a.Pipeline,
		MaxEventBytes: cfg.Processor.MaxEventBytes, Registry: a.Registry, Logger: logger, Now: d.Now,
		Ready: a.Pipeline.Ready, OnPartition: d.OnPartition,
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	(&api.API{Store: a.Store, Feeds: a.currentFeeds, Registry: a.Registry, Ready: a.Pipeline.Ready, Logger: logger.Named("http"), LastRun: a.Pass.LastRun, Owns: a.Pipeline.Owns, Errors: a.Pipeline.FeedErrors, Lint: func(s *feeds.Set) []feeds.Warning {
		// The warnings of the definitions s was compiled from: the feed
		// log's set in force, or the config file's before it.
		if cur, defs := a.Changer.Set(); cur == s {
			return feeds.Lint(defs, a.Changer.Templates())
		}
		if s == a.Feeds {
			return feeds.Lint(cfg.Feeds, cfg.Templates)
		}
		return nil // a set no longer in force
	}}).Register(mux)
	a.Files.Register(mux)
	(&api.RunsAPI{Runs: a.Pass, Logger: logger.Named("http")}).Register(mux)
	(&api.FeedChangesAPI{Changer: a.Changer, Log: a.FeedLog, Backfill: a.backfill, Logger: logger.Named("http")}).Register(mux)
	(&api.OffersAPI{Store: a.Store, Feeds: a.currentFeeds, Coverage: a.Pipeline.Coverage, Join: func(b *state.Batch, o *records.Offer, v *feeds.View) error {
		return processor.NewJoiner(a.Serde, 0).Join(b, o, v)
	}, RefreshAfter: cfg.FullPass.RefreshAfter, RefreshPhaseMs: processor.RefreshPhaseMs, RefreshDue: processor.RefreshDue, Now: d.Now, Logger: logger.Named("http")}).Register(mux)
	(&api.DryRunAPI{Runner: a.dryRuns, Feeds: a.currentFeeds, Templates: a.Changer.Templates, Logger: logger.Named("http")}).Register(mux)
	(&admin.Page{Token: cfg.HTTP.AdminToken, Feeds: func() (*feeds.Set, []config.Feed, []config.Template) {
		if set, defs := a.Changer.Set(); set != nil {
			return set, defs, a.Changer.Templates()
		}
		return a.Feeds, cfg.Feeds, cfg.Templates
	}, Counts: func() (map[string]int64, error) { return a.Store.Counts(a.Pipeline.Owns) }, Coverage: a.Pipeline.Coverage,
		Errors: a.Pipeline.FeedErrors, Backfill: a.backfill, SetErr: a.Changer.Err, Runs: a.Pass, Changes: a.FeedLog,
		DryRun: a.dryRuns, API: mux, Now: d.Now, Logger: logger.Named("admin")}).Register(mux)
	a.ln, err = net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http listen %s: %w", cfg.HTTP.Listen, err)
	}
	a.srv = newServer(cfg.HTTP, d.HTTP, mux)
	return a, nil
}

// currentFeeds returns the feed set in force: the feed log's once it is
// in force, the config file's before.
func (a *App) currentFeeds() *feeds.Set {
	if set, _ := a.Changer.Set(); set != nil {
		return set
	}
	return a.Feeds
}

// onFeedSet hands a feed set put in force to the readers of the set.
func (a *App) onFeedSet(set *feeds.Set, defs []config.Feed) {
	a.Files.SetFeeds(set)
	a.Pass.SetFeeds(set, defs, a.Changer.Templates())
}

// estimateTimeout bounds the dry run that estimates a feed change's size
// for the guard (the change waits for it).
const estimateTimeout = 20 * time.Second

// estimate counts feed f's members on this instance's partitions under
// its new definition and under the one in force (the guard compares the
// two), with a dry run.
func (a *App) estimate(ctx context.Context, f config.Feed) (next, current int64, err error) {
	set, err := dryrun.Compile(f, a.Changer.Templates())
	if err != nil {
		return 0, 0, err
	}
	res, err := a.dryRuns.Run(ctx, set, a.currentFeeds(), dryrun.Options{Timeout: estimateTimeout, Samples: -1})
	if err != nil {
		return 0, 0, err
	}
	if res.Current != nil {
		current = res.Current.Members
	}
	return res.Members, current, nil
}

// backfill reports the backfill of feed changes in this instance's
// partitions: per feed, the partitions still being re-evaluated.
func (a *App) backfill() (map[string]int, int64) {
	b := a.Pipeline.Backfill()
	return b.Partitions, b.Offers
}

// Reload proposes cfg's feeds and templates (a config reload: SIGHUP).
// Other keys take effect at the next start.
func (a *App) Reload(ctx context.Context, cfg *config.Config) error {
	return a.Changer.ProposeConfig(ctx, cfg.Feeds, cfg.Templates)
}

// Addr is the HTTP server's address (useful with http.listen port 0).
func (a *App) Addr() string { return a.ln.Addr().String() }

// close releases what New opened; safe to call twice.
func (a *App) close() {
	if a.closed {
		return
	}
	a.closed = true
	if a.ln != nil {
		_ = a.ln.Close() // Serve closed it already, or it never served
	}
	if a.FeedLog != nil {
		a.FeedLog.Close()
	}
	if a.RunLog != nil {
		a.RunLog.Close()
	}
	if a.Files != nil {
		if err := a.Files.Close(); err != nil {
			a.logger.Error("close feed store", zap.Error(err))
		}
	}
	if err := a.Store.Close(); err != nil {
		a.logger.Error("close state", zap.Error(err))
	}
}

// Close releases an App whose Run was never called.
func (a *App) Close() { a.close() }

// ErrShutdownTimeout is returned by Run when its parts did not stop
// within Deps.ShutdownGrace after ctx ended; the caller should exit.
var ErrShutdownTimeout = errors.New("processor did not stop within the shutdown grace period")

// Run runs the App until ctx ends or a part fails, then closes it. It
// returns nil on a clean shutdown. A fatal state store error (a full disk)
// stops every part and is returned. Once ctx ends Run returns within
// Deps.ShutdownGrace, with ErrShutdownTimeout if a part hangs (its
// goroutine is then left to the exiting process). Run is called once.
func (a *App) Run(ctx context.Context) error {
	// rctx also ends when a part fails, so the grace period bounds the
	// shutdown then too (a failed store may hang the parts still writing).
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return boundedShutdown(rctx, a.deps.ShutdownGrace, func() error {
		defer a.close()
		return a.run(rctx, cancel)
	})
}

// boundedShutdown runs fn and returns its error, or ErrShutdownTimeout
// when fn has not returned grace after ctx ended.
func boundedShutdown(ctx context.Context, grace time.Duration, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("%w (%s)", ErrShutdownTimeout, grace)
	}
}

func (a *App) run(ctx context.Context, failed context.CancelFunc) error {
	logger := a.logger
	logger.Info("processor started", zap.String("http", a.Addr()),
		zap.Strings("brokers", a.Config.Kafka.Brokers), zap.Int("feeds", len(a.Feeds.Feeds())), zap.String("state", a.Config.State.Dir))
	g, gctx := errgroup.WithContext(ctx)
	context.AfterFunc(gctx, failed)
	g.Go(func() error { return a.FeedLog.Run(gctx) })
	g.Go(func() error { return a.Changer.Run(gctx, a.Config.Feeds) })
	g.Go(func() error {
		// Nothing is consumed before the group's feed set is in force.
		select {
		case <-gctx.Done():
			return nil
		case <-a.Changer.Ready():
		}
		return a.Pipeline.Run(gctx)
	})
	g.Go(func() error { return a.RunLog.Run(gctx) })
	g.Go(func() error { return a.Pass.Run(gctx) })
	g.Go(func() error {
		if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		// A fatal store error (a full disk) stops every part: commits
		// fail from then on, and a restart checks the free space.
		select {
		case <-gctx.Done():
			return nil
		case <-a.Store.Failed():
			return a.Store.Err()
		}
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.srv.Shutdown(sctx); err != nil {
			// Connections still busy after 5 s are cut.
			logger.Warn("http shutdown: closing connections still busy", zap.Error(err))
			_ = a.srv.Close() // the connections are being abandoned anyway
		}
		return nil
	})
	err := g.Wait()
	logger.Info("processor stopped", zap.Error(err))
	return err
}
