package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/app"
	"github.com/feedmill/feedmill/internal/devstack"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
)

func allTopics(t config.Topics) []string {
	return []string{t.Offers, t.Sellers, t.Ratings, t.Events, t.Rejects}
}

func cmdDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("dev", flag.ContinueOnError)
	fl.SetOutput(stderr)
	dir := fl.String("dir", ".feedmill-dev", "where broker data, registry schemas and processor state live; reused on restart")
	offers := fl.Int("offers", 50000, "size of the synthetic catalog produced on the first start")
	rate := fl.Float64("rate", 50, "synthetic changes per second after the catalog (0 = no change stream)")
	seed := fl.Int64("seed", 1, "seed of the synthetic data")
	kafkaPort := fl.Int("kafka-port", 19092, "embedded broker port on 127.0.0.1")
	regPort := fl.Int("registry-port", 18081, "embedded schema registry port on 127.0.0.1")
	listen := fl.String("http", "127.0.0.1:8080", "HTTP listen address of the processor")
	cfgPath := fl.String("config", "", "optional config file whose feeds/templates/full_pass replace the examples (kafka, registry and state are set by dev)")
	level := fl.String("log-level", "info", "debug, info, warn or error")
	if err := fl.Parse(args); err != nil {
		return errUsage
	}
	logger, err := newLogger(*level, true, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }() // nothing to do if stderr cannot sync

	cfg := config.Default()
	if *cfgPath != "" {
		loaded, err := config.Load(*cfgPath, os.Environ())
		if err != nil {
			return err
		}
		cfg = *loaded
	} else {
		cfg.Feeds, cfg.Templates = synth.ExampleFeeds()
		// One grouped feed: the cheapest offer of each product.
		cfg.Feeds = append(cfg.Feeds, synth.GroupedFeeds()[0])
		cfg.FullPass.Interval = 10 * time.Minute
	}
	stack, err := devstack.Start(ctx, devstack.Options{
		DataDir: filepath.Join(*dir, "broker"), KafkaPort: *kafkaPort, RegistryPort: *regPort,
		Topics: allTopics(cfg.Kafka.Topics), Logger: logger.Named("broker"),
	})
	if err != nil {
		return fmt.Errorf("start embedded broker: %w", err)
	}
	defer func() {
		if err := stack.Close(); err != nil {
			logger.Error("close embedded broker", zap.Error(err))
		}
	}()
	cfg.Kafka.Brokers = stack.Brokers()
	cfg.SchemaRegistry.URL = stack.RegistryURL()
	cfg.State.Dir = filepath.Join(*dir, "processor")
	cfg.HTTP.Listen = *listen

	a, err := app.New(&cfg, app.Deps{Logger: logger})
	if err != nil {
		return err
	}
	addr := a.Addr()
	fmt.Fprintf(stdout, `
feedmill dev is running (Ctrl-C stops it; data in %s, reused on restart)
  kafka brokers    %s
  schema registry  %s
  HTTP             http://%s
    feeds          http://%s/api/feeds
    metrics        http://%s/metrics
    readiness      http://%s/readyz
    a feed file    http://%s/feeds/<feed-id>.xml
  consume events   topic %q (Avro, registry above)

`, *dir, stack.Brokers()[0], stack.RegistryURL(), addr, addr, addr, addr, addr, cfg.Kafka.Topics.Events)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.Run(gctx) })
	g.Go(func() error { return devStream(gctx, &cfg, *dir, *offers, *rate, *seed, logger) })
	err = g.Wait()
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		logger.Info("feedmill dev stopped")
		return nil
	}
	return err
}

// devStream produces the synthetic catalog on the first start (a marker
// file records it) and then a continuous change stream.
func devStream(ctx context.Context, cfg *config.Config, dir string, offers int, rate float64, seed int64, logger *zap.Logger) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...))
	if err != nil {
		return fmt.Errorf("generator client: %w", err)
	}
	defer cl.Close()
	srcl, err := newRegistryClient(cfg.SchemaRegistry)
	if err != nil {
		return err
	}
	prod, err := synth.NewProducer(ctx, cl, records.NewSerde(srcl), cfg.Kafka.Topics)
	if err != nil {
		return err
	}
	// Versions above anything an earlier run produced: changes after a
	// restart must not look like late arrivals.
	gen, err := synth.New(seed, synth.Options{Offers: offers, VersionBase: time.Now().UnixMicro()})
	if err != nil {
		return err
	}
	marker := filepath.Join(dir, "catalog-produced")
	initial := true
	if _, err := os.Stat(marker); err == nil {
		initial = false
	}
	log := logger.Named("generator")
	if initial {
		log.Info("producing the synthetic catalog", zap.Int("offers", offers))
		if err := prod.Run(ctx, gen, synth.RunOptions{Initial: true, Count: -1}); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if err := os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", marker, err)
		}
		log.Info("synthetic catalog produced")
	}
	if rate <= 0 {
		<-ctx.Done()
		return nil
	}
	log.Info("change stream started", zap.Float64("per_second", rate))
	return prod.Run(ctx, gen, synth.RunOptions{Rate: rate, Progress: func(sent int, r float64) {
		if sent%10000 < int(rate)+1 {
			log.Info("change stream", zap.Int("sent", sent), zap.Float64("per_second", r))
		}
	}})
}
