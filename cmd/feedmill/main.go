// Command feedmill is the feedmill processor and its tools: run, dev,
// broker, gen, validate and bench (docs/contract.md, Commands).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const usage = `feedmill turns marketplace change events into marketing feeds.

Usage:
  feedmill run -config FILE        the always-on processor
  feedmill dev [flags]             broker, registry, synthetic catalog and processor on this machine
  feedmill broker [flags]          the embedded Kafka-protocol broker and schema registry alone
  feedmill gen [flags]             produce a synthetic catalog and change stream to any Kafka
  feedmill validate -config FILE   check config, filters and templates
  feedmill explain -offer ID       an offer's stored state, or why it is in a feed or not (-feed F), asked of a running instance
  feedmill dry-run -feed FILE      what a feed would hold, asked of a running instance
  feedmill bench [flags]           the performance harness (matching, drain, latency, full pass, RSS)

Run "feedmill <command> -h" for a command's flags. Config keys, topics, records
and HTTP endpoints: docs/contract.md in the feedmill repository.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:], stderr)
	case "dev":
		err = cmdDev(ctx, args[1:], stdout, stderr)
	case "broker":
		err = cmdBroker(ctx, args[1:], stdout, stderr)
	case "gen":
		err = cmdGen(ctx, args[1:], stdout, stderr)
	case "bench":
		err = cmdBench(ctx, args[1:], stdout, stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "explain":
		err = cmdExplain(ctx, args[1:], stdout, stderr)
	case "dry-run":
		err = cmdDryRun(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "feedmill: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, errUsage) {
			return 2
		}
		fmt.Fprintf(stderr, "feedmill %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// errUsage reports a flag error already printed by the flag package.
var errUsage = errors.New("usage")

// newLogger returns a JSON logger (console when dev) at level.
func newLogger(level string, console bool, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	var enc zapcore.Encoder
	if console {
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)), nil
}
