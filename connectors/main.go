package connectors

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/feedmill/feedmill/config"
)

// Builder builds a binary's Partner from the loaded connector config. The
// config has passed Validate and ValidatePartner.
type Builder func(cfg config.Connector, log *zap.Logger) (Partner, error)

// Main is the whole main function of a feedmill-connector-<partner>
// binary: flags (-config FILE, -validate), config from the file and
// FEEDMILL_* environment, JSON logs, the runtime and the HTTP listener for
// /metrics and /healthz, stopped cleanly by SIGINT or SIGTERM. It returns
// the process exit code.
func Main(partner string, args, environ []string, stderr io.Writer, build Builder) int {
	fs := flag.NewFlagSet("feedmill-connector-"+partner, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "connector.yaml", "connector config `file` (keys may be overridden by FEEDMILL_<PATH> env vars)")
	validate := fs.Bool("validate", false, "check the config and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.LoadConnector(*path, environ)
	if err == nil {
		err = cfg.ValidatePartner(partner)
	}
	if err != nil {
		fmt.Fprintf(stderr, "feedmill-connector-%s: %v\n", partner, err)
		return 2
	}
	if *validate {
		fmt.Fprintf(stderr, "feedmill-connector-%s: %s is valid\n", partner, *path)
		return 0
	}
	log, err := zap.NewProduction()
	if err != nil {
		fmt.Fprintf(stderr, "feedmill-connector-%s: logger: %v\n", partner, err)
		return 1
	}
	defer func() { _ = log.Sync() }() // stderr sync errors are meaningless
	log = log.Named("feedmill-connector-" + partner)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := Serve(ctx, *cfg, partner, log, build); err != nil {
		log.Error("connector failed", zap.Error(err))
		return 1
	}
	return 0
}

// Serve runs a connector until ctx ends: it builds the partner, the
// Runtime (metrics on a fresh registry with Go and process collectors) and
// the HTTP listener, and joins them. It returns the first error.
func Serve(ctx context.Context, cfg config.Connector, partner string, log *zap.Logger, build Builder) error {
	p, err := build(cfg, log.Named(partner))
	if err != nil {
		return fmt.Errorf("build %s partner: %w", partner, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rt, err := New(cfg, p, Deps{Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("listen http.listen %s: %w", cfg.HTTP.Listen, err)
	}
	srv := &http.Server{Handler: Handler(reg), ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving", zap.String("http", ln.Addr().String()), zap.Strings("destinations", cfg.Destinations))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return rt.Run(gctx) })
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return g.Wait()
}
