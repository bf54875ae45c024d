package processor_test

import (
	"bufio"
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.yaml.in/yaml/v3"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
	"github.com/feedmill/feedmill/state"
)

// buildFeedmill builds the feedmill binary once per test binary run.
func buildFeedmill(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "feedmill")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/feedmill")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build feedmill: %v", err)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// metricValue sums the samples of a metric family from /metrics.
func metricValue(addr, name string) (float64, bool) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// TestCrashRecovery SIGKILLs the processor binary at random points while it
// ingests, restarts it on the same state directory, and checks that the
// events a seq-deduping consumer sees give exactly the final membership,
// with no delivery-semantics violation.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	// With kafka.instance_id set, and with the default: the instance id
	// persisted in the state dir. The change stream flips sellers and
	// moves ratings across thresholds inside the kill window.
	for _, id := range []string{"crash-test", ""} {
		name := "instance_id=" + id
		if id == "" {
			name = "instance_id from the state dir"
		}
		t.Run(name, func(t *testing.T) { crashRecovery(t, id) })
	}
}

func crashRecovery(t *testing.T, instanceID string) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FEEDMILL_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (set FEEDMILL_CRASH_SEED to replay)", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	bin := buildFeedmill(t)
	ctx := context.Background()
	env := testenv.New(t, allTopics...)

	example, templates := synth.ExampleFeeds()
	cfg := testConfig(t, env, append(append(example, synth.FeedSet(40, 3)...), synth.GroupedFeeds()...), templates)
	cfg.HTTP.Listen = freePort(t)
	cfg.FullPass.Interval = 0
	// Static membership (configured, or by default persisted in the
	// state dir): a restarted instance gets its partitions back at once
	// instead of waiting for the killed member's session to end.
	cfg.Kafka.InstanceID = instanceID
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "feedmill.yaml")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(cfgPath, nil); err != nil {
		t.Fatalf("written config does not load: %v", err)
	}

	gen, prod, serde := apptest.ProduceCatalog(t, env, cfg.Kafka.Topics, int64(seed), synth.Options{Offers: 8000, Sellers: 30, Products: 500})
	ops := map[synth.Op]int{}
	produce := func(n int) {
		for range n {
			ch := gen.Next()
			ops[ch.Op]++
			if err := prod.Produce(ctx, ch); err != nil {
				t.Fatal(err)
			}
		}
		if err := prod.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	produce(3000)

	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "-config", cfgPath, "-log-level", "warn")
		// The seed variable is the test's: the child would refuse it as an
		// unknown FEEDMILL_ config key.
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "FEEDMILL_CRASH_SEED=") })
		cmd.Stderr = &testWriter{t: t}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	const kills = 12
	for range kills {
		cmd := start()
		// Kill at a random instant: some during start-up and table
		// loading, most mid-ingest.
		time.Sleep(time.Duration(20+rng.IntN(480)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait() // killed: the exit status is the signal
		produce(1500 + rng.IntN(1500))
	}

	if ops[synth.OpSellerStatus] == 0 || ops[synth.OpRatingCross] == 0 {
		t.Fatalf("no seller flip or rating crossing in the kill window: %v", ops)
	}
	t.Logf("seller flips %d, rating changes %d, rating crossings %d in the kill window",
		ops[synth.OpSellerStatus], ops[synth.OpRating], ops[synth.OpRatingCross])

	// Final run: let it catch up, stop it cleanly, verify from its state.
	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			t.Fatal("processor did not catch up after 5 runs")
		}
		cmd := start()
		waitChildIdle(t, env, cfg)
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("processor exit after SIGINT: %v", err)
		}
		if caughtUpOnDisk(t, env, cfg) {
			break
		}
	}

	model, set := replayEvents(t, env, cfg, serde, nil)
	t.Logf("events %d, re-sends after crashes %d, entries %v", model.events, model.resends, model.actions)
	model.checkGenerated(t, set, gen)
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("child: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitChildIdle waits until the child's consumer group has committed the
// offers end offsets and its outbox and seller jobs are empty.
func waitChildIdle(t *testing.T, env *testenv.Env, cfg *config.Config) {
	t.Helper()
	adm := kadm.NewClient(env.Client(t))
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ends, err1 := adm.ListEndOffsets(ctx, cfg.Kafka.Topics.Offers)
		committed, err2 := adm.FetchOffsets(ctx, cfg.Kafka.GroupID)
		cancel()
		if err1 != nil || err2 != nil {
			continue
		}
		ok := true
		ends.Each(func(o kadm.ListedOffset) {
			c, found := committed.Lookup(o.Topic, o.Partition)
			if o.Offset > 0 && (!found || c.At < o.Offset) {
				ok = false
			}
		})
		depth, f1 := metricValue(cfg.HTTP.Listen, "feedmill_outbox_depth")
		jobs, f2 := metricValue(cfg.HTTP.Listen, "feedmill_seller_jobs_pending")
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		groups, _ := apptest.GroupTopicsConsumed(ctx, adm, cfg.Kafka.Topics, cfg.HTTP.Listen)
		cancel()
		if ok && f1 && f2 && depth == 0 && jobs == 0 && groups {
			return
		}
	}
	t.Fatal("child did not become idle within 2 minutes")
}

// caughtUpOnDisk opens the stopped child's state and checks every input
// partition is applied, no job is pending and the outbox is empty.
func caughtUpOnDisk(t *testing.T, env *testenv.Env, cfg *config.Config) bool {
	t.Helper()
	store, err := state.Open(filepath.Join(cfg.State.Dir, "state"), records.NewSerde(nil), state.Options{CacheBytes: 8 << 20}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	adm := kadm.NewClient(env.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topics := cfg.Kafka.Topics
	ends, err := adm.ListEndOffsets(ctx, topics.Offers, topics.Sellers, topics.Ratings, topics.GroupCandidates, topics.GroupDecisions)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := store.CaughtUp(apptest.EndMap(ends))
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
