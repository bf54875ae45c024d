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

// Options are optional hooks for Run.
type Options struct {
	// Listening is called with the HTTP server's address once it listens.
	Listening func(addr string)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Run runs the processor described by cfg until ctx ends. It returns nil
// on a clean shutdown.
func Run(ctx context.Context, cfg *config.Config, logger *zap.Logger, o Options) error {
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
	srv := &http.Server{Handler: processor.AdminAuth(cfg.HTTP.AdminToken, mux), ReadHeaderTimeout: 10 * time.Second}
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
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	err = g.Wait()
	logger.Info("processor stopped", zap.Error(err))
	return err
}
