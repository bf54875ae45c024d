package processor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// kfakeMinSessionTimeout is the lowest session timeout kfake accepts
// (its group.min.session.timeout.ms default): a stopped static member's
// partitions move to the others this long after it stopped.
const kfakeMinSessionTimeout = 6 * time.Second

// instancesSeedEnv replays TestThreeInstances with a given seed.
const instancesSeedEnv = "FEEDMILL_INSTANCES_SEED"

// TestThreeInstances runs three feedmill binaries in one group over one
// cluster while the change stream flows: B and C join mid-stream, C is
// SIGKILLed and restarted on an empty state dir (same instance id: it
// restores its partitions from the changelog), then B stops for good and
// its partitions move to A and C. The events a seq-deduping consumer sees
// must follow the delivery rules and end at the reference membership.
func TestThreeInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(instancesSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", instancesSeedEnv, err)
		}
	}
	t.Logf("seed %d (set %s to replay)", seed, instancesSeedEnv)
	rng := rand.New(rand.NewPCG(seed, 11))
	bin := buildFeedmill(t)
	ctx := context.Background()
	env := testenv.New(t, allTopics...)

	example, templates := synth.ExampleFeeds()
	base := testConfig(t, env, append(append(example, synth.FeedSet(20, 3)...), synth.GroupedFeeds()...), templates)
	base.FullPass.Interval = 0
	base.Kafka.SessionTimeout = kfakeMinSessionTimeout

	gen, prod, serde := apptest.ProduceCatalog(t, env, base.Kafka.Topics, int64(seed), synth.Options{Offers: 6000, Sellers: 30, Products: 400})

	// produce sends n changes in flushed batches of 100, paced so that
	// the steps a phase runs happen while the stream flows. It runs on
	// its own goroutine and owns gen and ops while it does; it closes at
	// once it has sent the first mark changes.
	ops := map[synth.Op]int{}
	produced := 0
	produce := func(n, mark int, at chan<- struct{}) error {
		sent := 0
		for sent < n {
			k := min(n-sent, 100)
			for range k {
				ch := gen.Next()
				ops[ch.Op]++
				if err := prod.Produce(ctx, ch); err != nil {
					return err
				}
			}
			if err := prod.Flush(ctx); err != nil {
				return err
			}
			if sent < mark && sent+k >= mark {
				close(at)
			}
			sent += k
			produced += k
			time.Sleep(10 * time.Millisecond) // pacing, not an assert
		}
		return nil
	}
	// phase produces n changes and runs step once a random 20-60% of
	// them are sent.
	phase := func(name string, n int, step func()) {
		t.Helper()
		mark := n * (20 + rng.IntN(41)) / 100
		done, at := make(chan error, 1), make(chan struct{})
		go func() { done <- produce(n, mark, at) }()
		select {
		case <-at:
			step()
		case err := <-done:
			t.Fatalf("%s: produce: %v", name, err)
		}
		if err := <-done; err != nil {
			t.Fatalf("%s: produce: %v", name, err)
		}
		t.Logf("%s (after %d of %d changes): done, %d changes produced so far", name, mark, n, produced)
	}

	fleet := &fleet{t: t, bin: bin, env: env, base: base}
	a := fleet.add("inst-a")
	b := fleet.add("inst-b")
	c := fleet.add("inst-c")

	a.start()
	phase("A alone", 1000+rng.IntN(1000), func() { fleet.waitOwns(a, 30*time.Second) })
	phase("B joins", 1500+rng.IntN(1000), b.start)
	phase("C joins", 1500+rng.IntN(1000), func() {
		fleet.waitOwns(b, 30*time.Second)
		c.start()
	})
	var cRestart *instance
	phase("C killed, restarted on an empty state dir", 1500+rng.IntN(1000), func() {
		// Kill C once it owns partitions, at a random instant after.
		fleet.waitOwns(c, 30*time.Second)
		time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		c.logRestored("before SIGKILL")
		c.kill()
		cRestart = fleet.add("inst-c")
		cRestart.start()
	})
	phase("B stopped for good", 1500+rng.IntN(1000), func() {
		fleet.waitOwns(cRestart, 30*time.Second)
		fleet.waitOwns(b, 30*time.Second)
		time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		b.logRestored("before SIGINT")
		b.interrupt()
	})
	phase("after B stopped", 1000+rng.IntN(1000), func() {})

	if ops[synth.OpSellerStatus] == 0 || ops[synth.OpRatingCross] == 0 {
		t.Fatalf("no seller flip or rating crossing in the change stream: %v", ops)
	}
	t.Logf("changes %d: seller flips %d, rating changes %d, rating crossings %d",
		produced, ops[synth.OpSellerStatus], ops[synth.OpRating], ops[synth.OpRatingCross])

	owners := fleet.waitIdle([]*instance{a, cRestart}, 90*time.Second)
	restoredA := a.logRestored("before SIGINT")
	restoredC := cRestart.logRestored("before SIGINT")
	a.interrupt()
	cRestart.interrupt()
	switch _, logged := cRestart.log.restored(); {
	case restoredC < 0:
		t.Errorf("C restarted on an empty state dir: feedmill_restored_offers_total not served (its log reports %d offers restored)", logged)
	case restoredC == 0:
		t.Errorf("C restarted on an empty state dir restored no offer from the changelog (its log reports %d)", logged)
	}
	t.Logf("restored offers: A %v, C after restart %v", restoredA, restoredC)
	// The idle wait let outbox records stay; they must all be of
	// partitions the instance no longer owned.
	a.checkOutbox(owners[a.id])
	cRestart.checkOutbox(owners[cRestart.id])

	model, set := replayEvents(t, env, base, serde, nil)
	t.Logf("events %d, re-sends %d, entries %v, violations %d", model.events, model.resends, model.actions, len(model.violations))
	model.checkGenerated(t, set, gen)
}

// fleet is the feedmill binaries of one test, all in one group.
type fleet struct {
	t    *testing.T
	bin  string
	env  *testenv.Env
	base *config.Config
}

// instance is one feedmill process: its config (own state dir and HTTP
// listener, the fleet's group) and, once started, its process.
type instance struct {
	t       *testing.T
	bin     string
	id      string
	cfg     config.Config
	cfgPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	log     *childLog
}

// add writes the config of a new instance with kafka.instance_id id, a
// fresh state dir and a free HTTP port. It kills the process, if still
// running, when the test ends.
func (f *fleet) add(id string) *instance {
	t := f.t
	t.Helper()
	cfg := *f.base
	cfg.Kafka.InstanceID = id
	cfg.State.Dir = t.TempDir()
	cfg.HTTP.Listen = freePort(t)
	raw, err := yaml.Marshal(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "feedmill.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("written config does not load: %v", err)
	}
	if loaded.Kafka.SessionTimeout != kfakeMinSessionTimeout {
		t.Fatalf("written config: session timeout %s", loaded.Kafka.SessionTimeout)
	}
	in := &instance{t: t, bin: f.bin, id: id, cfg: cfg, cfgPath: path}
	t.Cleanup(func() {
		if in.cmd != nil {
			select {
			case <-in.exited:
			default:
				_ = in.cmd.Process.Kill() // the test ended early; its exit does not matter
				<-in.exited
			}
		}
	})
	return in
}

func (in *instance) start() {
	in.t.Helper()
	// Info: the restore of a partition is logged there, with its offers.
	cmd := exec.Command(in.bin, "run", "-config", in.cfgPath, "-log-level", "info")
	// FEEDMILL_* variables override config keys, and one that names no
	// key is an error: the test's own seed variable stays with the test.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, instancesSeedEnv+"=")
	})
	in.log = &childLog{t: in.t, name: in.id}
	cmd.Stderr = in.log
	if err := cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	in.cmd, in.exited = cmd, make(chan struct{})
	go func() {
		in.waitErr = cmd.Wait()
		close(in.exited)
	}()
	in.t.Logf("%s started (state dir %s, http %s)", in.id, in.cfg.State.Dir, in.cfg.HTTP.Listen)
}

// kill SIGKILLs the process and waits for it.
func (in *instance) kill() {
	in.t.Helper()
	if err := in.cmd.Process.Kill(); err != nil {
		in.t.Fatal(err)
	}
	<-in.exited // killed: the exit status is the signal
	in.t.Logf("%s killed", in.id)
}

// interrupt stops the process with SIGINT and fails the test unless it
// exits cleanly within a minute.
func (in *instance) interrupt() {
	in.t.Helper()
	if err := in.cmd.Process.Signal(os.Interrupt); err != nil {
		in.t.Fatal(err)
	}
	select {
	case <-in.exited:
	case <-time.After(time.Minute):
		in.t.Fatalf("%s did not exit within a minute of SIGINT", in.id)
	}
	if in.waitErr != nil {
		in.t.Errorf("%s exit after SIGINT: %v", in.id, in.waitErr)
	}
	in.t.Logf("%s stopped", in.id)
}

func (in *instance) running() bool {
	if in.cmd == nil {
		return false
	}
	select {
	case <-in.exited:
		return false
	default:
		return true
	}
}

// logRestored logs and returns the instance's feedmill_restored_offers_total
// (-1: the metric is missing), with the restores its log reported.
func (in *instance) logRestored(when string) float64 {
	in.t.Helper()
	parts, offers := in.log.restored()
	v, ok := metricValue(in.cfg.HTTP.Listen, "feedmill_restored_offers_total")
	if !ok {
		in.t.Logf("%s %s: feedmill_restored_offers_total missing from /metrics (log: %d partitions, %d offers restored)", in.id, when, parts, offers)
		return -1
	}
	in.t.Logf("%s %s: feedmill_restored_offers_total %v (log: %d partitions, %d offers restored)", in.id, when, v, parts, offers)
	return v
}

// childLog passes a child's JSON log lines to the test log and counts the
// partition restores they report. Safe for concurrent use.
type childLog struct {
	t      *testing.T
	name   string
	mu     sync.Mutex
	buf    []byte
	parts  int
	offers int64
}

func (w *childLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := w.buf[:i]
		var e struct {
			Msg    string `json:"msg"`
			Offers int64  `json:"offers"`
		}
		if json.Unmarshal(line, &e) == nil && e.Msg == "restored a partition from the changelog" {
			w.parts++
			w.offers += e.Offers
		}
		w.t.Logf("%s: %s", w.name, line)
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *childLog) restored() (parts int, offers int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.parts, w.offers
}

// groupOwners describes the fleet's group: its state and the offers
// partitions each member (by instance id) is assigned.
func (f *fleet) groupOwners(adm *kadm.Client) (string, map[string][]int32, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gs, err := adm.DescribeGroups(ctx, f.base.Kafka.GroupID)
	if err != nil {
		return "", nil, err
	}
	g, ok := gs[f.base.Kafka.GroupID]
	if !ok {
		return "", nil, fmt.Errorf("group %q not described", f.base.Kafka.GroupID)
	}
	if g.Err != nil {
		return "", nil, g.Err
	}
	owners := map[string][]int32{}
	for _, m := range g.Members {
		id := "member " + m.MemberID
		if m.InstanceID != nil {
			id = *m.InstanceID
		}
		owners[id] = nil
		if ca, ok := m.Assigned.AsConsumer(); ok {
			for _, tp := range ca.Topics {
				if tp.Topic == f.base.Kafka.Topics.Offers {
					owners[id] = append(owners[id], tp.Partitions...)
				}
			}
		}
	}
	return g.State, owners, nil
}

// waitOwns waits until the group is stable with in assigned at least one
// offers partition and in reports ready.
func (f *fleet) waitOwns(in *instance, timeout time.Duration) {
	t := f.t
	t.Helper()
	adm := kadm.NewClient(f.env.Client(t))
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if !in.running() {
			t.Fatalf("%s exited: %v", in.id, in.waitErr)
		}
		st, owners, err := f.groupOwners(adm)
		ready, _ := metricValue(in.cfg.HTTP.Listen, "feedmill_ready")
		last = fmt.Sprintf("group %s, owners %v, ready %v, err %v", st, owners, ready, err)
		if err == nil && st == "Stable" && len(owners[in.id]) > 0 && ready == 1 {
			t.Logf("%s owns %v (%s)", in.id, owners[in.id], last)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not own a partition within %s: %s", in.id, timeout, last)
}

// waitIdle waits until the group is stable with exactly the running
// instances as members and every offers partition assigned, the group's
// committed offset of every offers partition is at its end, and every
// running instance is ready with an empty outbox and no pending seller
// job, three polls in a row.
//
// An instance keeps the seller jobs and the outbox records of partitions
// it owned once and does not own now (jobs wait for it to own them again;
// the outbox is not relayed, the new owner restores from the changelog),
// and counts them in feedmill_seller_jobs_pending and feedmill_outbox_depth,
// so those gauges need not reach 0 on an instance that lost partitions.
// When they are not 0, the fleet is idle once every other condition held
// and nothing moved (the gauges, the outbox and events counters, the
// events and changelog end offsets) for quietFor.
//
// It returns the offers partitions each instance owned then.
func (f *fleet) waitIdle(running []*instance, timeout time.Duration) map[string][]int32 {
	t := f.t
	t.Helper()
	const quietFor = 3 * time.Second
	adm := kadm.NewClient(f.env.Client(t))
	var ids []string
	for _, in := range running {
		ids = append(ids, in.id)
	}
	slices.Sort(ids)
	began := time.Now()
	deadline := began.Add(timeout)
	streak := 0
	var quietSince time.Time
	var last, lastPrint string
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		for _, in := range running {
			if !in.running() {
				t.Fatalf("%s exited: %v", in.id, in.waitErr)
			}
		}
		reason, print, stored, owners, err := f.idle(adm, ids, running)
		if err != nil || reason != "" {
			streak, quietSince = 0, time.Time{}
			last = reason
			if err != nil {
				last = err.Error()
			}
			continue
		}
		streak++
		if print != lastPrint || quietSince.IsZero() {
			quietSince, lastPrint = time.Now(), print
		}
		if stored == 0 && streak >= 3 {
			t.Logf("instances %v idle after %s", ids, time.Since(began).Round(time.Millisecond))
			return owners
		}
		if time.Since(quietSince) >= quietFor {
			t.Logf("instances %v idle after %s, quiet for %s with outbox records or seller jobs still stored (%s)",
				ids, time.Since(began).Round(time.Millisecond), quietFor, print)
			return owners
		}
		last = "outbox records or seller jobs stored: " + print
	}
	t.Fatalf("instances %v not idle within %s: %s", ids, timeout, last)
	return nil
}

// idle returns why the fleet is not idle ("" when it is, apart from the
// outbox records and seller jobs stored), a print of what must stay still
// for the fleet to be quiet, and the outbox records and seller jobs the
// instances store, and the group's owners.
func (f *fleet) idle(adm *kadm.Client, ids []string, running []*instance) (reason, print string, stored float64, owners map[string][]int32, err error) {
	st, owners, err := f.groupOwners(adm)
	if err != nil {
		return "", "", 0, nil, err
	}
	members := slices.Sorted(maps.Keys(owners))
	if st != "Stable" || !slices.Equal(members, ids) {
		return fmt.Sprintf("group %s, owners %v", st, owners), "", 0, nil, nil
	}
	assigned := map[int32]bool{}
	for _, ps := range owners {
		for _, p := range ps {
			assigned[p] = true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	topics := f.base.Kafka.Topics
	ends, err := adm.ListEndOffsets(ctx, topics.Offers, topics.Events, topics.Changelog)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return "", "", 0, nil, err
	}
	committed, err := adm.FetchOffsets(ctx, f.base.Kafka.GroupID)
	if err != nil {
		return "", "", 0, nil, err
	}
	var behind []string
	outputs := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic != topics.Offers {
			outputs[o.Topic] += o.Offset
			return
		}
		if !assigned[o.Partition] {
			behind = append(behind, fmt.Sprintf("%d unassigned", o.Partition))
		}
		c, found := committed.Lookup(o.Topic, o.Partition)
		if o.Offset > 0 && (!found || c.At < o.Offset) {
			behind = append(behind, fmt.Sprintf("%d committed %d < end %d", o.Partition, c.At, o.Offset))
		}
	})
	if len(behind) > 0 {
		return fmt.Sprintf("owners %v, partitions %v", owners, behind), "", 0, nil, nil
	}
	print = fmt.Sprintf("owners %v, output ends %v", owners, outputs)
	for _, in := range running {
		ready, f0 := metricValue(in.cfg.HTTP.Listen, "feedmill_ready")
		depth, f1 := metricValue(in.cfg.HTTP.Listen, "feedmill_outbox_depth")
		jobs, f2 := metricValue(in.cfg.HTTP.Listen, "feedmill_seller_jobs_pending")
		added, f3 := metricValue(in.cfg.HTTP.Listen, "feedmill_outbox_added_total")
		sent, f4 := metricValue(in.cfg.HTTP.Listen, "feedmill_events_produced_total")
		if !f0 || !f1 || !f2 || !f3 || !f4 {
			return "", "", 0, nil, errors.New(in.id + ": metrics not served")
		}
		if ready != 1 {
			return in.id + ": not ready", "", 0, nil, nil
		}
		stored += depth + jobs
		print += fmt.Sprintf("; %s: outbox depth %v, seller jobs %v, outbox added %v, events produced %v", in.id, depth, jobs, added, sent)
	}
	return "", print, stored, owners, nil
}

// checkOutbox opens the stopped instance's state and fails the test if its
// outbox holds records of a partition in owned (or of the tables); it logs
// the records it holds of other partitions.
func (in *instance) checkOutbox(owned []int32) {
	t := in.t
	t.Helper()
	store, err := state.Open(filepath.Join(in.cfg.State.Dir, "state"), records.NewSerde(nil), state.Options{CacheBytes: 8 << 20}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	parts := store.OutboxPartitions()
	slices.Sort(parts)
	for _, p := range parts {
		n, err := store.ScanOutbox(p, 0, 1<<30, func(uint64, *state.OutboxRecord) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			continue
		}
		if p == state.TablePartition || slices.Contains(owned, p) {
			t.Errorf("%s stopped with %d outbox records of partition %d, which it owned (owned %v)", in.id, n, p, owned)
			continue
		}
		t.Logf("%s stopped with %d outbox records of partition %d, which it no longer owned (owned %v)", in.id, n, p, owned)
	}
}
