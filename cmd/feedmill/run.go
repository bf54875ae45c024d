package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/app"
)

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fl := flag.NewFlagSet("run", flag.ContinueOnError)
	fl.SetOutput(stderr)
	path := fl.String("config", "feedmill.yaml", "config file (keys: docs/contract.md, Config keys); FEEDMILL_* env vars override it")
	level := fl.String("log-level", "info", "debug, info, warn or error")
	if err := fl.Parse(args); err != nil {
		return errUsage
	}
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		return err
	}
	if _, err := feeds.Compile(cfg.Feeds, cfg.Templates); err != nil {
		return fmt.Errorf("config %s: %w", *path, err)
	}
	logger, err := newLogger(*level, false, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }() // nothing to do if stderr cannot sync
	a, err := app.New(cfg, app.Deps{Logger: logger})
	if err != nil {
		logger.Error("processor failed to start", zap.Error(err))
		return err
	}
	// SIGHUP reloads the config file's feeds and templates (other keys
	// take effect at the next start).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload(ctx, a, *path, logger)
			}
		}
	}()
	if err := a.Run(ctx); err != nil {
		logger.Error("processor failed", zap.Error(err))
		return err
	}
	return nil
}

// reload reads the config file again and proposes its feeds: a file that
// does not load, or whose feeds do not compile, changes nothing.
func reload(ctx context.Context, a *app.App, path string, logger *zap.Logger) {
	cfg, err := config.Load(path, os.Environ())
	if err == nil {
		_, err = feeds.Compile(cfg.Feeds, cfg.Templates)
	}
	if err == nil {
		err = a.Reload(ctx, cfg)
	}
	if err != nil {
		logger.Error("config reload (SIGHUP) refused; the feeds in force stay", zap.String("config", path), zap.Error(err))
		return
	}
	logger.Info("config reloaded (SIGHUP): its feeds and templates are proposed; other keys take effect at the next start", zap.String("config", path))
}
