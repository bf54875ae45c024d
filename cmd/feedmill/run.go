package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

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
	if err := a.Run(ctx); err != nil {
		logger.Error("processor failed", zap.Error(err))
		return err
	}
	return nil
}
