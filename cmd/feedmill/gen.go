package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/clients"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
)

func newRegistryClient(r config.SchemaRegistry) (*sr.Client, error) {
	return clients.Registry(r)
}

func cmdGen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("gen", flag.ContinueOnError)
	fl.SetOutput(stderr)
	cfgPath := fl.String("config", "", "optional config file for kafka (TLS, SASL, topics) and schema_registry settings")
	brokers := fl.String("brokers", "", "comma-separated brokers (overrides the config; default 127.0.0.1:9092)")
	registry := fl.String("registry", "", "schema registry URL (overrides the config; default http://127.0.0.1:8081)")
	offers := fl.Int("offers", 50000, "catalog size")
	count := fl.Int("count", 0, "changes after the catalog (0 = endless, -1 = none)")
	rate := fl.Float64("rate", 100, "changes per second (0 = as fast as possible)")
	seed := fl.Int64("seed", 1, "seed of the synthetic data")
	initial := fl.Bool("initial", true, "produce the whole catalog first")
	if err := fl.Parse(args); err != nil {
		return errUsage
	}
	cfg := config.Default()
	if *cfgPath != "" {
		loaded, err := config.Load(*cfgPath, os.Environ())
		if err != nil {
			return err
		}
		cfg = *loaded
	}
	if *brokers != "" {
		cfg.Kafka.Brokers = strings.Split(*brokers, ",")
	}
	if *registry != "" {
		cfg.SchemaRegistry.URL = *registry
	}
	kopts, err := clients.KafkaOpts(cfg.Kafka)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(kopts, kgo.MaxBufferedRecords(100000))...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
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
	gen, err := synth.New(*seed, synth.Options{Offers: *offers, VersionBase: time.Now().UnixMicro()})
	if err != nil {
		return err
	}
	start := time.Now()
	err = prod.Run(ctx, gen, synth.RunOptions{Initial: *initial, Count: *count, Rate: *rate,
		Progress: func(sent int, r float64) {
			fmt.Fprintf(stdout, "%s sent %d records (%.0f/s)\n", time.Since(start).Truncate(time.Second), sent, r)
		}})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "done in %s\n", time.Since(start).Truncate(time.Millisecond))
	return nil
}
