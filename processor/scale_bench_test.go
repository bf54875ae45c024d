package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"golang.org/x/time/rate"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/apptest"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
	"github.com/feedmill/feedmill/processor/runlog"
	"github.com/feedmill/feedmill/state"
)

// Scale benchmarks (issue 10): the figures behind docs/capacity.md.
//
// Each runs feedmill binaries (`feedmill run`, built from this tree) as
// child processes against an in-process kfake broker and srfake registry,
// over a synthetic catalog of FEEDMILL_SCALE_OFFERS offers (default
// 200,000) produced before the processor starts. They are benchmarks, not
// tests: they assert nothing about speed and report their figures with
// b.ReportMetric. The work measured runs once per b.N; run them with
// -benchtime 1x (or Nx to repeat the measured phase N times) and -v (Go
// cuts benchmark logs short without it), e.g.
//
//	FEEDMILL_SCALE_OFFERS=1000000 go test ./processor -run '^$' -v -benchtime 1x -timeout 120m \
//	  -bench 'BenchmarkRestore$|BenchmarkFullPassScale$|BenchmarkKillToProcessing$|BenchmarkDrainInstances$'
//
// docs/capacity.md has the figures measured and the commands per size.
// The child's RSS is its peak resident set (VmHWM) and its CPU time is
// read from /proc; the broker, registry and producer run in the test
// process and are not counted in them. They are skipped under -short.

// scalePartitions is the offers partition count of the scale benchmarks
// (the kill benchmark uses 3): divisible by 1, 2 and 3 instances.
const scalePartitions = 6

// scaleFeeds is the realistic feed set of the benchmarks: n synthetic
// feeds (synth.FeedSet, the set `feedmill bench` uses).
func scaleFeeds(n int) []config.Feed { return synth.FeedSet(n, 1) }

func scaleSkip(b *testing.B) {
	b.Helper()
	if testing.Short() {
		b.Skip("scale benchmark: minutes of work")
	}
}

// scaleSetup is a broker with a catalog loaded and a built binary.
type scaleSetup struct {
	bin    string
	env    *testenv.Env
	topics config.Topics
	cat    apptest.ScaleCatalog
}

func newScaleSetup(b *testing.B, partitions int32) *scaleSetup {
	b.Helper()
	s := &scaleSetup{bin: apptest.BuildFeedmill(b), topics: config.Default().Kafka.Topics}
	s.env = apptest.ScaleEnv(b, s.topics, partitions)
	b.Cleanup(func() {
		b.Logf("test process (broker, registry, producer) peak RSS so far: %.0f MiB", mib(apptest.SelfPeakRSS()))
	})
	n := apptest.ScaleOffers(b)
	s.cat = apptest.ProduceScaleCatalog(b, s.env, s.topics, n, 1)
	b.Logf("catalog: %d offers, %d sellers, %d ratings (%d input records, %d offers partitions) produced in %s",
		s.cat.Offers, s.cat.Sellers, s.cat.Ratings, s.cat.Records, partitions, s.cat.Took.Round(time.Millisecond))
	return s
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// ingest starts one instance on a fresh state dir, waits until it has
// drained the catalog and returns it with the drain time.
func (s *scaleSetup) ingest(b *testing.B, name string, cfg *config.Config) (*apptest.Proc, time.Duration) {
	b.Helper()
	selfCPU := apptest.SelfCPU()
	p := apptest.StartProc(b, s.bin, name, cfg)
	took := apptest.WaitProcsIdle(b, s.env, time.Hour, p)
	b.Logf("%s drained %d input records in %s (%.0f records/s), peak RSS %.0f MiB; CPU: feedmill %.2f cores, test process %.2f cores",
		name, s.cat.Records, took.Round(time.Millisecond), float64(s.cat.Records)/took.Seconds(), mib(p.PeakRSS()),
		p.CPU().Seconds()/took.Seconds(), (apptest.SelfCPU()-selfCPU).Seconds()/took.Seconds())
	return p, took
}

// BenchmarkRestore ingests the catalog into one instance (instance id
// "scale-a", a fresh state dir), stops it, reads the changelog, then
// starts an instance with the same instance id on an EMPTY state dir: it
// is given every partition at once and restores each from the changelog.
// Figures: the restore rate from the restore log lines (offers / time
// inside the restores, which run one partition after another) and from
// the wall clock (start to every partition owned, as its log says; start
// to caught up, which adds the re-evaluation of every restored offer
// against the new instance's tables), changelog bytes per offer (everything in the log, as kfake
// never compacts; and the last record of each key, as compaction would
// leave it), state dir bytes per offer and peak RSS.
func BenchmarkRestore(b *testing.B) {
	scaleSkip(b)
	for _, nFeeds := range []int{10, 1300} {
		b.Run(fmt.Sprintf("feeds=%d", nFeeds), func(b *testing.B) { benchRestore(b, nFeeds) })
	}
}

func benchRestore(b *testing.B, nFeeds int) {
	s := newScaleSetup(b, scalePartitions)
	cfg := apptest.ScaleConfig(b, s.env, scaleFeeds(nFeeds))
	cfg.Kafka.InstanceID = "scale-a"
	a, ingestTook := s.ingest(b, "ingest", cfg)
	ingestRSS := a.PeakRSS()
	a.Interrupt()
	n := float64(s.cat.Offers)
	stateBytes := apptest.DirBytes(b, filepath.Join(cfg.State.Dir, "state"))

	t0 := time.Now()
	cl := apptest.ReadTopicStats(b, s.env, s.topics.Changelog)
	b.Logf("changelog: %d records, %.1f MiB; live (last record per key with a value): %d keys, %.1f MiB; by kind %s; live by kind %s; largest record %d bytes; read in %s",
		cl.Records, mib(cl.Bytes), cl.LiveKeys, mib(cl.LiveBytes), kindSizes(cl.ByKind, nil), kindSizes(cl.LiveByKind, cl.LiveKeysByKind),
		cl.MaxRecordBytes, time.Since(t0).Round(time.Millisecond))
	if cl.LiveKeysByKind['o'] != int64(s.cat.Offers) {
		rejects := apptest.ReadTopicStats(b, s.env, s.topics.Rejects)
		b.Errorf("changelog: %d offers have a record with a value, %d a last record without one; of %d offers (%d records in %s)",
			cl.LiveKeysByKind['o'], cl.DeadKeysByKind['o'], s.cat.Offers, rejects.Records, s.topics.Rejects)
	}
	t0 = time.Now()
	in := apptest.ReadTopicStats(b, s.env, s.topics.Offers)
	b.Logf("offers topic: %d records, %.1f MiB (%.0f bytes/record); read in %s", in.Records, mib(in.Bytes),
		float64(in.Bytes)/float64(in.Records), time.Since(t0).Round(time.Millisecond))

	var ownedS, idleS, logOffers, logSecs, restoreRSS, restoredBytes float64
	b.ResetTimer()
	for i := range b.N {
		rc := *cfg
		rc.State.Dir = b.TempDir()
		rc.HTTP.Listen = apptest.FreeAddr(b)
		began := time.Now()
		p := apptest.StartProc(b, s.bin, fmt.Sprintf("restore-%d", i), &rc)
		// Owned: every partition restored and owned (its log says so).
		// /readyz is read too: it should turn 200 only then.
		var ready, owned time.Duration
		for owned == 0 {
			if !p.Running() {
				b.Fatal("restoring instance exited")
			}
			if time.Since(began) > time.Hour {
				b.Fatal("not every partition restored within an hour")
			}
			time.Sleep(20 * time.Millisecond)
			if ready == 0 && p.Ready() {
				ready = time.Since(began)
			}
			if parts, at := p.Owned(); len(parts) == scalePartitions {
				owned = at.Sub(began)
			}
		}
		if ready < owned {
			b.Logf("restore %d: /readyz answered 200 %s after the start, before the partitions were restored and owned (%s)",
				i, ready.Round(time.Millisecond), owned.Round(time.Millisecond))
		}
		apptest.WaitProcsIdle(b, s.env, time.Hour, p)
		idle := time.Since(began)
		var offers int64
		var took time.Duration
		parts := p.Restores()
		for _, r := range parts {
			offers += r.Offers
			took += r.Took
		}
		b.Logf("restore %d: %d partitions, %d offers restored in %s inside the restores; all owned after %s, caught up after %s; peak RSS %.0f MiB",
			i, len(parts), offers, took.Round(time.Millisecond), owned.Round(time.Millisecond), idle.Round(time.Millisecond), mib(p.PeakRSS()))
		for _, r := range parts {
			b.Logf("  partition %d: %d offers, %d memberships, %d events requeued, %.1f MiB read, %s (%.0f offers/s)",
				r.Partition, r.Offers, r.Memberships, r.Event, mib(r.Bytes), r.Took.Round(time.Millisecond), float64(r.Offers)/r.Took.Seconds())
		}
		if len(parts) != scalePartitions || offers != int64(s.cat.Offers) {
			b.Errorf("restore %d: %d partitions and %d offers restored, want %d and %d", i, len(parts), offers, scalePartitions, s.cat.Offers)
		}
		ownedS += owned.Seconds()
		idleS += idle.Seconds()
		logOffers += float64(offers)
		logSecs += took.Seconds()
		restoreRSS = max(restoreRSS, float64(p.PeakRSS()))
		p.Interrupt()
		restoredBytes = float64(apptest.DirBytes(b, filepath.Join(rc.State.Dir, "state")))
	}
	b.StopTimer()
	runs := float64(b.N)
	b.ReportMetric(logOffers/logSecs, "restore_offers/s")
	b.ReportMetric(n*runs/ownedS, "to_owned_offers/s")
	b.ReportMetric(ownedS/runs, "to_owned_s")
	b.ReportMetric(idleS/runs, "to_caughtup_s")
	b.ReportMetric(float64(cl.Bytes)/n, "changelog_B/offer")
	b.ReportMetric(float64(cl.LiveBytes)/n, "changelog_live_B/offer")
	b.ReportMetric(float64(in.Bytes)/float64(in.Records), "input_B/record")
	b.ReportMetric(float64(stateBytes)/n, "state_B/offer")
	b.ReportMetric(restoredBytes/n, "restored_state_B/offer")
	b.ReportMetric(float64(s.cat.Records)/ingestTook.Seconds(), "ingest_records/s")
	b.ReportMetric(mib(ingestRSS), "ingest_rss_MiB")
	b.ReportMetric(restoreRSS/(1<<20), "restore_rss_MiB")
}

// kindSizes prints sizes by changelog key kind ('o' offer, 'e' event,
// 'c' offset, 'a' acknowledged watermark), with key counts when given.
func kindSizes(bytes, keys map[byte]int64) string {
	var ks []byte
	for k := range bytes {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	var parts []string
	for _, k := range ks {
		p := fmt.Sprintf("%q %.1f MiB", k, mib(bytes[k]))
		if keys != nil {
			p += fmt.Sprintf(" (%d keys)", keys[k])
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// BenchmarkKillToProcessing runs one instance with the default config (no
// kafka.instance_id: static membership through the id persisted in the
// state dir; session timeout 45 s) over 3 offers partitions and 1300
// feeds, with a change stream of scaleKillRate changes/s flowing. It
// SIGKILLs the instance and starts it again at once, and measures from
// the kill until every partition is processing again: its committed
// offset moves past where it was at the kill (processing), and reaches
// the end offset the partition had at the kill (caught up with what was
// written before the kill).
//
// dir=same restarts on the same state dir (a process crash: the same
// member rejoins and gets its partitions back at once). dir=empty
// restarts on an empty state dir (the machine and its disk are lost): a
// new member, which gets the partitions only once the killed member's
// session has timed out, then restores them from the changelog.
func BenchmarkKillToProcessing(b *testing.B) {
	scaleSkip(b)
	for _, dir := range []string{"same", "empty"} {
		b.Run("dir="+dir, func(b *testing.B) { benchKill(b, dir == "empty") })
	}
}

// scaleKillRate is the change stream's rate (about 2x the 463/s average
// of 40M changes a day).
const scaleKillRate = 1000

func benchKill(b *testing.B, emptyDir bool) {
	s := newScaleSetup(b, 3)
	cfg := apptest.ScaleConfig(b, s.env, scaleFeeds(1300))
	if cfg.Kafka.InstanceID != "" || cfg.Kafka.SessionTimeout != 45*time.Second {
		b.Fatalf("not the default membership config: instance id %q, session timeout %s", cfg.Kafka.InstanceID, cfg.Kafka.SessionTimeout)
	}
	p, _ := s.ingest(b, "kill-0", cfg)

	// The change stream, until the benchmark ends.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var streamErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		lim := rate.NewLimiter(scaleKillRate, scaleKillRate/10)
		for ctx.Err() == nil {
			if lim.Wait(ctx) != nil {
				return
			}
			if err := s.cat.Producer.Produce(ctx, s.cat.Gen.Next()); err != nil && ctx.Err() == nil {
				streamErr = err
				return
			}
		}
	}()
	defer func() {
		stop()
		wg.Wait()
		if streamErr != nil {
			b.Errorf("change stream: %v", streamErr)
		}
	}()

	adm := kadm.NewClient(s.env.Client(b))
	topic, group := s.topics.Offers, cfg.Kafka.GroupID
	offsets := func() (committed, ends map[int32]int64) {
		b.Helper()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := apptest.Committed(cctx, adm, group, topic)
		if err != nil {
			b.Fatal(err)
		}
		e, err := apptest.Ends(cctx, adm, topic)
		if err != nil {
			b.Fatal(err)
		}
		return c, e
	}

	var toReady, toProcessing, toCaughtUp, worstProcessing, restored float64
	b.ResetTimer()
	for i := range b.N {
		time.Sleep(5 * time.Second) // the stream flows, the instance keeps up
		p.Kill()
		killed := time.Now()
		c0, e0 := offsets()
		rc := *cfg
		if emptyDir {
			rc.State.Dir = b.TempDir()
		} else {
			// Why the restart will (or will not) restore: read the killed
			// instance's state dir. The time this takes is not counted.
			d0 := time.Now()
			b.Logf("kill %d: %s", i, killedStateReport(b, s.env, cfg, c0))
			killed = killed.Add(time.Since(d0))
		}
		p = apptest.StartProc(b, s.bin, fmt.Sprintf("kill-%d", i+1), &rc)
		processing := map[int32]time.Duration{}
		caught := map[int32]time.Duration{}
		var ready time.Duration
		for len(caught) < len(e0) || ready == 0 {
			if time.Since(killed) > 10*time.Minute {
				b.Fatalf("kill %d: not processing every partition 10 minutes after the kill: processing %v, caught up %v", i, processing, caught)
			}
			if !p.Running() {
				b.Fatalf("kill %d: the restarted instance exited", i)
			}
			time.Sleep(20 * time.Millisecond)
			if ready == 0 && p.Ready() {
				ready = time.Since(killed)
			}
			c, _ := offsets()
			at := time.Since(killed)
			for part, end := range e0 {
				if _, ok := processing[part]; !ok && c[part] > c0[part] {
					processing[part] = at
				}
				if _, ok := caught[part]; !ok && c[part] >= end {
					caught[part] = at
					if _, ok := processing[part]; !ok {
						processing[part] = at
					}
				}
			}
		}
		last := func(m map[int32]time.Duration) time.Duration {
			var d time.Duration
			for _, v := range m {
				d = max(d, v)
			}
			return d
		}
		b.Logf("kill %d: ready %s after the kill; processing (committed past the kill's offset) %v; caught up with the kill's end offsets %v; restored %d partitions",
			i, ready.Round(time.Millisecond), roundAll(processing), roundAll(caught), len(p.Restores()))
		toReady += ready.Seconds()
		toProcessing += last(processing).Seconds()
		toCaughtUp += last(caught).Seconds()
		worstProcessing = max(worstProcessing, last(processing).Seconds())
		restored += float64(len(p.Restores()))
	}
	b.StopTimer()
	runs := float64(b.N)
	b.ReportMetric(toReady/runs, "kill_to_ready_s")
	b.ReportMetric(toProcessing/runs, "kill_to_processing_s")
	b.ReportMetric(worstProcessing, "worst_kill_to_processing_s")
	b.ReportMetric(toCaughtUp/runs, "kill_to_caughtup_s")
	b.ReportMetric(restored/runs, "restored_partitions")
}

// killedStateReport describes, per offers partition, what a restart on
// the killed instance's state dir compares to decide on a restore (see
// processor/restore.go, restoreAssigned): the stored offset, the last
// changelog offset the dir recorded as written by itself, whether a
// restore was left unfinished, the changelog's end and the group's
// committed offset.
func killedStateReport(b *testing.B, env *testenv.Env, cfg *config.Config, committed map[int32]int64) string {
	b.Helper()
	store, err := state.Open(filepath.Join(cfg.State.Dir, "state"), records.NewSerde(nil), state.Options{CacheBytes: 8 << 20}, testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	stored, err := store.Offsets(cfg.Kafka.Topics.Offers)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	clEnds, err := apptest.Ends(ctx, kadm.NewClient(env.Client(b)), cfg.Kafka.Topics.Changelog)
	if err != nil {
		b.Fatal(err)
	}
	parts := slices.Sorted(maps.Keys(clEnds))
	var out []string
	for _, part := range parts {
		written, hasWritten, err := store.ChangelogWritten(part)
		if err != nil {
			b.Fatal(err)
		}
		partial, err := store.RestoreIncomplete(part)
		if err != nil {
			b.Fatal(err)
		}
		othersWrote := clEnds[part] > 0 && (!hasWritten || clEnds[part] > written+1)
		out = append(out, fmt.Sprintf("p%d: stored offset %d, committed %d, changelog end %d, written by this dir %d (%v), unfinished restore %v => changelog looks written by another instance: %v",
			part, stored[part], committed[part], clEnds[part], written, hasWritten, partial, othersWrote))
	}
	return strings.Join(out, "; ")
}

func roundAll(m map[int32]time.Duration) string {
	var parts []int32
	for p := range m {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	var out []string
	for _, p := range parts {
		out = append(out, fmt.Sprintf("%d:%s", p, m[p].Round(10*time.Millisecond)))
	}
	return "[" + strings.Join(out, " ") + "]"
}

// BenchmarkFullPassScale ingests the catalog with 1300 feeds (about one
// in five publishes a file) into one instance, then runs full passes
// through the HTTP API (POST /api/runs, polling GET /api/runs/{id}) and
// reports the pass time, offers/s and file items written.
func BenchmarkFullPassScale(b *testing.B) {
	scaleSkip(b)
	s := newScaleSetup(b, scalePartitions)
	cfg := apptest.ScaleConfig(b, s.env, scaleFeeds(1300))
	p, _ := s.ingest(b, "pass", cfg)
	rssBefore := p.PeakRSS()
	base := "http://" + cfg.HTTP.Listen

	var secs, items float64
	b.ResetTimer()
	for i := range b.N {
		began := time.Now()
		resp, err := http.Post(base+"/api/runs", "application/json", nil)
		if err != nil {
			b.Fatal(err)
		}
		var started struct {
			ID string `json:"id"`
		}
		err = json.NewDecoder(resp.Body).Decode(&started)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusAccepted {
			b.Fatalf("POST /api/runs: %d %v", resp.StatusCode, err)
		}
		var run runlog.Run
		for {
			time.Sleep(100 * time.Millisecond)
			resp, err := http.Get(base + "/api/runs/" + started.ID)
			if err != nil {
				b.Fatal(err)
			}
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("GET /api/runs/%s: %d %v", started.ID, resp.StatusCode, err)
			}
			if err := json.Unmarshal(raw, &run); err != nil {
				b.Fatal(err)
			}
			if run.Status != runlog.StatusRunning {
				break
			}
		}
		took := time.Since(began)
		var members int64
		fileFeeds := 0
		files := map[string]bool{}
		for _, f := range cfg.Feeds {
			files[f.ID] = f.File
		}
		for _, f := range run.Feeds {
			if files[f.ID] {
				members += f.Members
				fileFeeds++
			}
		}
		b.Logf("pass %d (%s): %s in %s, %d offers scanned, %d file items in %d file feeds, %d corrections, %d refreshes, %d parts of %d",
			i, run.ID, run.Status, took.Round(time.Millisecond), run.Scanned, members, fileFeeds, run.Corrections, run.Refreshes, len(run.Parts), run.PartitionsTotal)
		if run.Status != runlog.StatusPublished {
			b.Errorf("pass %d: status %s (%s)", i, run.Status, run.Reason)
		}
		secs += took.Seconds()
		items += float64(members)
	}
	b.StopTimer()
	rssPass := p.PeakRSS()
	feedBytes := apptest.DirBytes(b, filepath.Join(cfg.State.Dir, "feeds"))
	p.Interrupt()
	runs := float64(b.N)
	b.ReportMetric(secs/runs, "pass_s")
	b.ReportMetric(float64(s.cat.Offers)*runs/secs, "offers/s")
	b.ReportMetric(items/secs, "file_items/s")
	b.ReportMetric(items/runs/float64(s.cat.Offers), "file_items/offer")
	b.ReportMetric(float64(feedBytes)/float64(s.cat.Offers), "feed_files_B/offer")
	b.ReportMetric(mib(rssBefore), "ingest_rss_MiB")
	b.ReportMetric(mib(rssPass), "pass_rss_MiB")
}

// BenchmarkDrainInstances drains the pre-loaded catalog (input records/s
// from start until every partition is committed at its end, the outbox is
// empty and no job is pending) with one instance at 10 feeds and, at 1300
// feeds, one instance with processor.workers 1 and 2 and three instances
// in one group (default workers each), and one instance at 1300 feeds of
// which 100 are grouped (groupedFeedSet). Every instance starts on a fresh
// state dir at the same time; with three, partitions assigned first to
// one instance move during the first rebalances (and are restored from
// the changelog) as the others join.
func BenchmarkDrainInstances(b *testing.B) {
	scaleSkip(b)
	cases := []struct {
		name             string
		feeds, instances int
		workers          int // 0: default (GOMAXPROCS)
		grouped          int // of the feeds, with a group (groupedFeedSet)
	}{
		{"feeds=10/instances=1", 10, 1, 0, 0},
		{"feeds=1300/instances=1/workers=1", 1300, 1, 1, 0},
		{"feeds=1300/instances=1/workers=2", 1300, 1, 2, 0},
		{"feeds=1300/instances=3", 1300, 3, 0, 0},
		{"feeds=1300/grouped=100/instances=1", 1300, 1, 0, 100},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			s := newScaleSetup(b, scalePartitions)
			var secs, restored, cpuPerRecord float64
			var rss int64
			b.ResetTimer()
			for i := range b.N {
				// A new group (and changelog) per run: each drains the
				// whole catalog from the start.
				var procs []*apptest.Proc
				group := fmt.Sprintf("drain-%d", i)
				var cfgs []*config.Config
				for k := range c.instances {
					cfg := apptest.ScaleConfig(b, s.env, groupedFeedSet(c.feeds, c.grouped))
					cfg.Kafka.GroupID = group
					cfg.Kafka.Topics.Changelog = group + "-changelog"
					cfg.Kafka.Topics.GroupCandidates = group + "-group-candidates"
					cfg.Kafka.Topics.GroupDecisions = group + "-group-decisions"
					cfg.Kafka.InstanceID = fmt.Sprintf("%s-%d", group, k)
					if c.workers > 0 {
						cfg.Processor.Workers = c.workers
					}
					cfgs = append(cfgs, cfg)
				}
				began, selfCPU := time.Now(), apptest.SelfCPU()
				for _, cfg := range cfgs {
					procs = append(procs, apptest.StartProc(b, s.bin, cfg.Kafka.InstanceID, cfg))
				}
				apptest.WaitProcsIdle(b, s.env, time.Hour, procs...)
				took := time.Since(began)
				harnessCPU := apptest.SelfCPU() - selfCPU
				secs += took.Seconds()
				var notes []string
				var childCPU time.Duration
				for _, p := range procs {
					childCPU += p.CPU()
					var n int64
					for _, r := range p.Restores() {
						n += r.Offers
					}
					restored += float64(n)
					rss = max(rss, p.PeakRSS())
					notes = append(notes, fmt.Sprintf("%s: peak RSS %.0f MiB, CPU %.0f s, %d offers restored", p.Name, mib(p.PeakRSS()), p.CPU().Seconds(), n))
				}
				sort.Strings(notes)
				b.Logf("run %d: %d input records in %s (%.0f records/s); CPU: feedmill %.2f cores, test process (broker, registry) %.2f cores, of %d; %s",
					i, s.cat.Records, took.Round(time.Millisecond), float64(s.cat.Records)/took.Seconds(),
					childCPU.Seconds()/took.Seconds(), harnessCPU.Seconds()/took.Seconds(), runtime.NumCPU(), strings.Join(notes, "; "))
				cpuPerRecord += childCPU.Seconds() / float64(s.cat.Records)
				for _, p := range procs {
					p.Interrupt()
				}
			}
			b.StopTimer()
			runs := float64(b.N)
			b.ReportMetric(float64(s.cat.Records)*runs/secs, "records/s")
			b.ReportMetric(secs/runs, "drain_s")
			b.ReportMetric(restored/runs, "restored_offers")
			b.ReportMetric(mib(rss), "max_rss_MiB")
			b.ReportMetric(cpuPerRecord/runs*1e6, "feedmill_cpu_us/record")
		})
	}
}
