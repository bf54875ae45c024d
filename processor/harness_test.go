package processor_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/app"
	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/testenv"
)

var allTopics = []string{"offers", "sellers", "ratings", "feed-events", "feedmill-rejects"}

// testConfig is a default config pointed at env (apptest.Config).
func testConfig(t testing.TB, env *testenv.Env, fs []config.Feed, ts []config.Template) *config.Config {
	t.Helper()
	return apptest.Config(t, env, fs, ts)
}

// startPipeline runs a whole app on cfg until it is stopped (or the test
// ends).
func startPipeline(t testing.TB, _ *testenv.Env, cfg *config.Config, logger *zap.Logger) *apptest.App {
	t.Helper()
	return apptest.Start(t, cfg, app.Deps{Logger: logger})
}

// waitCaughtUp waits until every input record is applied, every seller
// job is done and the outbox is empty.
func waitCaughtUp(t testing.TB, env *testenv.Env, r *apptest.App, _ config.Topics) {
	t.Helper()
	apptest.WaitCaughtUp(t, env, r)
}

func consumeAll(t testing.TB, env *testenv.Env, topic string) []*kgo.Record {
	t.Helper()
	return apptest.ConsumeAll(t, env, topic)
}

func testLogger(t testing.TB) *zap.Logger { return apptest.Logger(t) }
