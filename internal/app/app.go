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
	"github.com/feedmill/feedmill/connectors"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/processor"
	"github.com/feedmill/feedmill/state"
)

// Options are optional hooks for Run. Zero values take defaults.
type Options struct {
	// Listening is called with the HTTP server's address once it listens.
	Listening func(addr string)
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
	// processor.DefaultChunkWriteTimeout). The server has no overall
	// WriteTimeout, so a big feed streams to a slow but steady client.
	ChunkWrite time.Duration
	// MaxBodyBytes bounds request bodies (default processor.MaxBodyBytes);
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
		l.ChunkWrite = processor.DefaultChunkWriteTimeout
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = processor.MaxBodyBytes
	}
	return l
}

// newServer returns the processor's HTTP server: admin auth and body
// bounds around mux, and the slow-client timeouts of l. WriteTimeout
// stays 0; feed files bound each chunk instead.
func newServer(cfg config.HTTP, l HTTPLimits, mux http.Handler) *http.Server {
	return &http.Server{
		Handler:           processor.AdminAuth(cfg.AdminToken, processor.LimitBodies(l.MaxBodyBytes, mux)),
		ReadHeaderTimeout: l.ReadHeader,
		ReadTimeout:       l.Read,
		IdleTimeout:       l.Idle,
	}
}

// ErrShutdownTimeout is returned by Run when its parts did not stop
// within Options.ShutdownGrace after ctx ended; the caller should exit.
var ErrShutdownTimeout = errors.New("processor did not stop within the shutdown grace period")

// Run runs the processor described by cfg until ctx ends. It returns nil
// on a clean shutdown. It refuses to start with a config that does not
// validate (an empty http.admin_token on a non-loopback listen without
// http.allow_anonymous_admin among others) and, returning a
// *DiskSpaceError, when the state dir has less free space than
// state.min_free_bytes. A fatal state store error (a full disk) stops
// every part and is returned. Once ctx ends Run returns within
// Options.ShutdownGrace, with ErrShutdownTimeout if a part hangs (its
// goroutine is then left to the exiting process).
func Run(ctx context.Context, cfg *config.Config, logger *zap.Logger, o Options) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if cfg.HTTP.AdminToken == "" && !config.IsLoopbackListen(cfg.HTTP.Listen) {
		logger.Warn("the admin API is open to anyone who reaches the listen address: http.admin_token is empty and http.allow_anonymous_admin is true; anyone can start, approve and reject runs",
			zap.String("listen", cfg.HTTP.Listen))
	}
	if o.FreeBytes == nil {
		o.FreeBytes = statfsFree
	}
	if err := checkFreeSpace(cfg.State.Dir, cfg.State.MinFreeBytes, o.FreeBytes); err != nil {
		return err
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 25 * time.Second
	}
	return boundedShutdown(ctx, o.ShutdownGrace, func() error { return run(ctx, cfg, logger, o) })
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

func run(ctx context.Context, cfg *config.Config, logger *zap.Logger, o Options) error {
	limits := o.HTTP.withDefaults()
	set, err := feeds.Compile(cfg.Feeds, cfg.Templates)
	if err != nil {
		return fmt.Errorf("compile feeds: %w", err)
	}
	kopts, err := connectors.KafkaOpts(cfg.Kafka)
	if err != nil {
		return err
	}
	srcl, err := connectors.RegistryClient(cfg.SchemaRegistry)
	if err != nil {
		return err
	}
	serde := records.NewSerde(srcl)
	store, err := state.Open(filepath.Join(cfg.State.Dir, "state"), serde, state.Options{}, logger)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			logger.Error("close state", zap.Error(err))
		}
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := processor.NewMetrics(reg)

	pipe, err := processor.NewPipeline(ctx, processor.PipelineDeps{
		Config: cfg, Store: store, Feeds: set, Serde: serde, Metrics: metrics,
		Logger: logger, KafkaOpts: kopts, Now: o.Now,
	})
	if err != nil {
		return err
	}
	files, err := processor.NewFeedFiles(filepath.Join(cfg.State.Dir, "feeds"), set, logger)
	if err != nil {
		return err
	}
	files.ChunkWriteTimeout = limits.ChunkWrite
	pass, err := processor.NewFullPass(processor.FullPassDeps{
		Config: cfg.FullPass, Store: store, Feeds: set, Files: files, Exec: pipe.Exec, MaxEventBytes: cfg.Processor.MaxEventBytes,
		Registry: reg, Logger: logger, Now: o.Now, Ready: pipe.Ready,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	api := &processor.API{Store: store, Feeds: set, Registry: reg, Ready: pipe.Ready, Logger: logger.Named("http"), LastRun: pass.LastRun}
	api.Register(mux)
	files.Register(mux)
	pass.Register(mux)

	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", cfg.HTTP.Listen, err)
	}
	srv := newServer(cfg.HTTP, limits, mux)
	logger.Info("processor started", zap.String("http", ln.Addr().String()),
		zap.Strings("brokers", cfg.Kafka.Brokers), zap.Int("feeds", len(set.Feeds())), zap.String("state", cfg.State.Dir))
	if o.Listening != nil {
		o.Listening(ln.Addr().String())
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return pipe.Run(gctx) })
	g.Go(func() error { return pass.Run(gctx) })
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
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
		case <-store.Failed():
			return store.Err()
		}
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			// Connections still busy after 5 s are cut.
			logger.Warn("http shutdown: closing connections still busy", zap.Error(err))
			_ = srv.Close() // the connections are being abandoned anyway
		}
		return nil
	})
	err = g.Wait()
	logger.Info("processor stopped", zap.Error(err))
	return err
}
