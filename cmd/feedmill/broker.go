package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/devstack"
)

func cmdBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("broker", flag.ContinueOnError)
	fl.SetOutput(stderr)
	dir := fl.String("dir", ".feedmill-broker", `data directory ("" keeps everything in memory)`)
	kafkaPort := fl.Int("kafka-port", 9092, "broker port on 127.0.0.1")
	regPort := fl.Int("registry-port", 8081, "schema registry port on 127.0.0.1")
	partitions := fl.Int("partitions", 4, "partitions of the topics it creates")
	level := fl.String("log-level", "info", "debug, info, warn or error")
	if err := fl.Parse(args); err != nil {
		return errUsage
	}
	logger, err := newLogger(*level, true, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }() // nothing to do if stderr cannot sync
	def := config.Default()
	stack, err := devstack.Start(ctx, devstack.Options{
		DataDir: *dir, KafkaPort: *kafkaPort, RegistryPort: *regPort, Partitions: int32(*partitions),
		Topics: allTopics(def.Kafka.Topics), Logger: logger.Named("broker"),
	})
	if err != nil {
		return fmt.Errorf("start embedded broker: %w", err)
	}
	fmt.Fprintf(stdout, "kafka brokers    %s\nschema registry  %s\n(Ctrl-C stops)\n", stack.Brokers()[0], stack.RegistryURL())
	<-ctx.Done()
	if err := stack.Close(); err != nil {
		logger.Error("close embedded broker", zap.Error(err))
		return err
	}
	return nil
}
