package apptest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"net"
	"net/http"
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
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/internal/synth"
	"github.com/feedmill/feedmill/internal/testenv"
)

// Helpers of the scale benchmarks (processor/scale_bench_test.go): a
// catalog of any size produced without holding it in memory, feedmill
// binaries run as child processes, and what the figures read (group
// offsets, metrics, topic and state dir sizes, peak RSS).

// ScaleOffersEnv sets the catalog size of the scale benchmarks
// (default DefaultScaleOffers). It is read by the test binary only:
// StartProc removes every FEEDMILL_* variable from a child's environment,
// since feedmill refuses one that names no config key.
const ScaleOffersEnv = "FEEDMILL_SCALE_OFFERS"

// ScaleLogEnv, when set, passes every log line of the children to the
// test log (by default only warnings and errors).
const ScaleLogEnv = "FEEDMILL_SCALE_LOG"

// DefaultScaleOffers is the catalog size when ScaleOffersEnv is unset.
const DefaultScaleOffers = 200_000

// ScaleOffers returns the catalog size the scale benchmarks use.
func ScaleOffers(tb testing.TB) int {
	tb.Helper()
	s := os.Getenv(ScaleOffersEnv)
	if s == "" {
		return DefaultScaleOffers
	}
	n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive number of offers", ScaleOffersEnv, s)
	}
	return n
}

// ScaleEnv starts a broker and registry with the input, events and
// rejects topics of topics created with partitions partitions each (the
// changelog is created by feedmill, with the offers topic's count).
func ScaleEnv(tb testing.TB, topics config.Topics, partitions int32) *testenv.Env {
	tb.Helper()
	env := testenv.New(tb)
	env.CreateTopic(tb, partitions, topics.Offers, topics.Sellers, topics.Ratings, topics.Events, topics.Rejects)
	return env
}

// ScaleConfig is the default config (production batch sizes and seller
// chunks, unlike Config) pointed at env, with a fresh state dir, an HTTP
// listener on a free loopback port, no periodic full pass and no free
// space check.
func ScaleConfig(tb testing.TB, env *testenv.Env, fs []config.Feed) *config.Config {
	tb.Helper()
	cfg := config.Default()
	cfg.Kafka.Brokers = env.Brokers
	cfg.SchemaRegistry.URL = env.RegistryURL
	cfg.State.Dir = tb.TempDir()
	cfg.State.MinFreeBytes = 0
	cfg.HTTP.Listen = FreeAddr(tb)
	cfg.FullPass.Interval = 0
	cfg.Feeds = fs
	if err := cfg.Validate(); err != nil {
		tb.Fatalf("scale config: %v", err)
	}
	return &cfg
}

// FreeAddr returns a loopback address with a port free right now.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scaleChunk is how many offers one generator makes: a catalog is made
// chunk by chunk so that only one chunk is held in memory.
const scaleChunk = 100_000

// ScaleCatalog is what ProduceScaleCatalog produced.
type ScaleCatalog struct {
	Offers, Sellers, Ratings int
	Records                  int64 // input records, all three topics
	Took                     time.Duration
	Gen                      *synth.Generator // the first chunk's generator: a change stream over its offers
	Producer                 *synth.Producer
}

// ProduceScaleCatalog produces a catalog of n offers (ids o00000001...)
// with n/100 sellers and their ratings, flushed. It is generated in
// chunks of 100,000 offers, each from its own synth generator (seed
// seed+chunk) with the same seller ids; the sellers and ratings produced
// are the first chunk's. The returned Gen is the first chunk's generator:
// its change stream updates and deletes the offers of the first chunk
// (same ids) and changes the sellers and ratings; the offers it creates
// take the ids after the first chunk's, which are the second chunk's
// when n > 100,000 (such a create then updates that offer, or is ignored
// as stale).
func ProduceScaleCatalog(tb testing.TB, env *testenv.Env, topics config.Topics, n int, seed int64) ScaleCatalog {
	tb.Helper()
	ctx := context.Background()
	began := time.Now()
	serde := records.NewSerde(env.Registry(tb))
	cl := env.Client(tb, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), kgo.MaxBufferedRecords(100_000),
		kgo.ProducerLinger(5*time.Millisecond))
	prod, err := synth.NewProducer(ctx, cl, serde, topics)
	if err != nil {
		tb.Fatal(err)
	}
	sellers := max(1, n/100)
	out := ScaleCatalog{Offers: n, Sellers: sellers, Producer: prod}
	next := 0
	for c := 0; next < n; c++ {
		gen, err := synth.New(seed+int64(c), synth.Options{Offers: min(scaleChunk, n-next), Sellers: sellers})
		if err != nil {
			tb.Fatal(err)
		}
		if c == 0 {
			out.Gen = gen
		}
		err = gen.Initial(func(ch synth.Change) error {
			switch ch.Topic {
			case synth.KindSellers, synth.KindRatings:
				if c > 0 {
					return nil
				}
			case synth.KindOffers:
				next++
				o := *ch.Offer
				o.ID = fmt.Sprintf("o%08d", next)
				ch.Offer, ch.Key = &o, o.ID
			}
			out.Records++
			return prod.Produce(ctx, ch)
		})
		if err != nil {
			tb.Fatal(err)
		}
		if c == 0 {
			st := gen.State()
			out.Sellers, out.Ratings = len(st.Sellers), len(st.Ratings)
		}
		if err := prod.Flush(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	out.Took = time.Since(began)
	return out
}

// BuildFeedmill builds cmd/feedmill into a temp dir and returns its path.
func BuildFeedmill(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "feedmill")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/feedmill/feedmill/cmd/feedmill")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("build feedmill: %v", err)
	}
	return bin
}

// WriteConfig writes cfg as YAML into a temp dir, checks that it loads
// back and returns its path.
func WriteConfig(tb testing.TB, cfg *config.Config) string {
	tb.Helper()
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "feedmill.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	if _, err := config.Load(path, nil); err != nil {
		tb.Fatalf("written config does not load: %v", err)
	}
	return path
}

// RestoreLog is one "restored a partition from the changelog" log line.
type RestoreLog struct {
	Partition          int32
	Offers, Bytes      int64
	Memberships, Event int64
	Took               time.Duration
}

// Proc is a `feedmill run` child process.
type Proc struct {
	Name string
	Cfg  *config.Config

	tb      testing.TB
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error

	mu       sync.Mutex
	buf      []byte
	restores []RestoreLog
	owned    []int32
	ownedAt  time.Time
	peakRSS  int64
	cpu      time.Duration
}

// StartProc runs `feedmill run` on cfg (written to a temp file) with
// info logs: warnings and errors go to the test log, partition restores
// are kept (Restores). Every FEEDMILL_* variable is removed from its
// environment. It is killed, if still running, when the test ends.
func StartProc(tb testing.TB, bin, name string, cfg *config.Config) *Proc {
	tb.Helper()
	path := WriteConfig(tb, cfg)
	cmd := exec.Command(bin, "run", "-config", path, "-log-level", "info")
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "FEEDMILL_") })
	p := &Proc{Name: name, Cfg: cfg, tb: tb, cmd: cmd, exited: make(chan struct{})}
	cmd.Stderr = p
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	go p.sampleRSS()
	tb.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill() // the test ended first; the exit does not matter
			<-p.exited
		}
	})
	return p
}

// Write takes the child's JSON log lines.
func (p *Proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := p.buf[:i]
		var e struct {
			Level       string  `json:"level"`
			Msg         string  `json:"msg"`
			Partition   int32   `json:"partition"`
			Offers      int64   `json:"offers"`
			Memberships int64   `json:"memberships"`
			Events      int64   `json:"events_requeued"`
			Bytes       int64   `json:"bytes"`
			Took        float64 `json:"took"`
			Assigned    []int32 `json:"assigned"`
			Revoked     []int32 `json:"revoked"`
		}
		if json.Unmarshal(line, &e) == nil {
			if e.Msg == "offers partitions changed" {
				p.owned = append(p.owned, e.Assigned...)
				p.owned = slices.DeleteFunc(p.owned, func(x int32) bool { return slices.Contains(e.Revoked, x) })
				slices.Sort(p.owned)
				p.owned = slices.Compact(p.owned)
				p.ownedAt = time.Now()
			}
			if e.Msg == "restored a partition from the changelog" {
				p.restores = append(p.restores, RestoreLog{Partition: e.Partition, Offers: e.Offers, Bytes: e.Bytes,
					Memberships: e.Memberships, Event: e.Events, Took: time.Duration(e.Took * float64(time.Second))})
			}
			if e.Level == "warn" || e.Level == "error" || os.Getenv(ScaleLogEnv) != "" {
				p.tb.Logf("%s: %s", p.Name, line)
			}
		} else {
			p.tb.Logf("%s: %s", p.Name, line)
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// Owned returns the offers partitions the child owns, as its log says
// ("offers partitions changed": after a gained partition is restored),
// and when that last changed.
func (p *Proc) Owned() ([]int32, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.owned), p.ownedAt
}

// Restores returns the partition restores the child has logged.
func (p *Proc) Restores() []RestoreLog {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.restores)
}

// sampleRSS keeps the child's peak resident set (VmHWM) and CPU time
// until it exits.
func (p *Proc) sampleRSS() {
	for {
		v, cpu := vmHWM(p.cmd.Process.Pid), procCPU(p.cmd.Process.Pid)
		p.mu.Lock()
		p.peakRSS = max(p.peakRSS, v)
		p.cpu = max(p.cpu, cpu)
		p.mu.Unlock()
		select {
		case <-p.exited:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// PeakRSS returns the highest resident set size seen of the child, in
// bytes (sampled from /proc every 200 ms, and now).
func (p *Proc) PeakRSS() int64 {
	if p.Running() {
		if v := vmHWM(p.cmd.Process.Pid); v > 0 {
			p.mu.Lock()
			p.peakRSS = max(p.peakRSS, v)
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peakRSS
}

// CPU returns the CPU time (user + system) the child has used, sampled
// from /proc every 200 ms, and now.
func (p *Proc) CPU() time.Duration {
	if p.Running() {
		cpu := procCPU(p.cmd.Process.Pid)
		p.mu.Lock()
		p.cpu = max(p.cpu, cpu)
		p.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cpu
}

// procCPU reads a process's user + system CPU time from /proc (0 when
// unknown; clock ticks taken as 100 per second, the Linux USER_HZ).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from the ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// SelfCPU returns the CPU time (user + system) this process has used.
func SelfCPU() time.Duration { return procCPU(os.Getpid()) }

// SelfPeakRSS returns this process's peak resident set size in bytes:
// in the benchmarks, the broker, the registry and the producer.
func SelfPeakRSS() int64 { return vmHWM(os.Getpid()) }

// vmHWM reads a process's peak RSS from /proc (0 when unknown).
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0
			}
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Running reports whether the child has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Kill SIGKILLs the child and waits for it.
func (p *Proc) Kill() {
	p.tb.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		p.tb.Fatal(err)
	}
	<-p.exited // killed: the exit status is the signal
}

// Interrupt stops the child with SIGINT and fails the test unless it
// exits cleanly within two minutes.
func (p *Proc) Interrupt() {
	p.tb.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		p.tb.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(2 * time.Minute):
		p.tb.Fatalf("%s did not exit within two minutes of SIGINT", p.Name)
	}
	if p.waitErr != nil {
		p.tb.Errorf("%s exit after SIGINT: %v", p.Name, p.waitErr)
	}
}

// Metric sums the samples of a metric family from the child's /metrics
// (false: not served).
func (p *Proc) Metric(name string) (float64, bool) { return MetricValue(p.Cfg.HTTP.Listen, name) }

// Ready reports whether the child's /readyz answers 200.
func (p *Proc) Ready() bool {
	resp, err := http.Get("http://" + p.Cfg.HTTP.Listen + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// MetricValue sums the samples of a metric family from addr's /metrics.
func MetricValue(addr, name string) (float64, bool) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
			found = true
		}
	}
	return sum, found
}

// Committed returns the group's committed offsets of topic by partition.
func Committed(ctx context.Context, adm *kadm.Client, group, topic string) (map[int32]int64, error) {
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out, nil
}

// Ends returns the end offsets of topic by partition.
func Ends(ctx context.Context, adm *kadm.Client, topic string) (map[int32]int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// WaitProcsIdle waits until the procs together own every offers
// partition (by their logs), the group has committed the end offset of
// every one, and every proc is ready with an empty outbox and no pending
// seller job (each proc counts only the partitions it relays and the jobs
// it can run), and returns how long it waited.
func WaitProcsIdle(tb testing.TB, env *testenv.Env, timeout time.Duration, procs ...*Proc) time.Duration {
	tb.Helper()
	adm := kadm.NewClient(env.Client(tb))
	cfg := procs[0].Cfg
	began := time.Now()
	deadline := began.Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, why := procsIdle(adm, cfg, procs)
		if ok {
			return time.Since(began)
		}
		last = why
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("not idle within %s: %s", timeout, last)
	return 0
}

// GroupTopicsConsumed reports whether every partition of the grouped
// feeds' two topics is consumed to its end by its owner: the largest
// feedmill_committed_offset the processes at addrs report for it (a
// partition's owner reports its offset, restored or consumed). A topic
// not created yet counts as not consumed.
func GroupTopicsConsumed(ctx context.Context, adm *kadm.Client, topics config.Topics, addrs ...string) (bool, string) {
	for _, topic := range []string{topics.GroupCandidates, topics.GroupDecisions} {
		ends, err := Ends(ctx, adm, topic)
		if err != nil {
			return false, err.Error()
		}
		for part, end := range ends {
			if end <= 0 {
				continue
			}
			best := -1.0
			for _, addr := range addrs {
				if v, ok := MetricValue(addr, fmt.Sprintf("feedmill_committed_offset{partition=%q,topic=%q}", strconv.Itoa(int(part)), topic)); ok {
					best = max(best, v)
				}
			}
			if best < float64(end) {
				return false, fmt.Sprintf("%s partition %d: consumed %v of %d", topic, part, best, end)
			}
		}
	}
	return true, ""
}

func procsIdle(adm *kadm.Client, cfg *config.Config, procs []*Proc) (bool, string) {
	for _, p := range procs {
		if !p.Running() {
			return false, fmt.Sprintf("%s exited: %v", p.Name, p.waitErr)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := Ends(ctx, adm, cfg.Kafka.Topics.Offers)
	if err != nil {
		return false, err.Error()
	}
	committed, err := Committed(ctx, adm, cfg.Kafka.GroupID, cfg.Kafka.Topics.Offers)
	if err != nil {
		return false, err.Error()
	}
	owners := map[int32]int{}
	for _, p := range procs {
		owned, _ := p.Owned()
		for _, part := range owned {
			owners[part]++
		}
	}
	for part, end := range ends {
		if owners[part] != 1 {
			return false, fmt.Sprintf("offers partition %d owned by %d procs", part, owners[part])
		}
		if c, ok := committed[part]; end > 0 && (!ok || c < end) {
			return false, fmt.Sprintf("offers partition %d: committed %d of %d", part, c, end)
		}
	}
	addrs := make([]string, len(procs))
	for i, p := range procs {
		addrs[i] = p.Cfg.HTTP.Listen
	}
	if ok, why := GroupTopicsConsumed(ctx, adm, cfg.Kafka.Topics, addrs...); !ok {
		return false, why
	}
	for _, p := range procs {
		depth, f1 := p.Metric("feedmill_outbox_depth")
		jobs, f2 := p.Metric("feedmill_seller_jobs_pending")
		if !f1 || !f2 || !p.Ready() {
			return false, p.Name + ": not ready"
		}
		if depth != 0 || jobs != 0 {
			return false, fmt.Sprintf("%s: outbox depth %v, seller jobs %v", p.Name, depth, jobs)
		}
	}
	return true, ""
}

// TopicStats sums a topic's records: all of them, and (as compaction
// would leave them) the last record of each key that is not a tombstone.
type TopicStats struct {
	Records, Bytes         int64 // every record: key + value bytes
	LiveKeys, LiveBytes    int64 // the last record of each key, when it has a value
	ByKind                 map[byte]int64
	LiveByKind             map[byte]int64 // live bytes by the key's first byte
	LiveKeysByKind         map[byte]int64
	DeadKeysByKind         map[byte]int64 // keys whose last record has no value
	MaxRecordBytes         int64
	TombstonesOrNilRecords int64
}

// ReadTopicStats reads topic from the start to its current end offsets
// and sums its sizes (keys are hashed: no record is kept).
func ReadTopicStats(tb testing.TB, env *testenv.Env, topic string) TopicStats {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	adm := kadm.NewClient(env.Client(tb))
	ends, err := Ends(ctx, adm, topic)
	if err != nil {
		tb.Fatal(err)
	}
	need := map[int32]int64{}
	for p, o := range ends {
		if o > 0 {
			need[p] = o
		}
	}
	type last struct {
		kind byte
		size int32
		live bool
	}
	seed := maphash.MakeSeed()
	keys := map[uint64]last{}
	st := TopicStats{ByKind: map[byte]int64{}, LiveByKind: map[byte]int64{}, LiveKeysByKind: map[byte]int64{}, DeadKeysByKind: map[byte]int64{}}
	cl := env.Client(tb, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))
	defer cl.Close()
	for len(need) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			tb.Fatalf("read %s: %v (missing %v)", topic, ctx.Err(), need)
		}
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				tb.Fatalf("read %s: %v", topic, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := need[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			size := int64(len(r.Key) + len(r.Value))
			st.Records++
			st.Bytes += size
			st.MaxRecordBytes = max(st.MaxRecordBytes, size)
			var kind byte
			if len(r.Key) > 0 {
				kind = r.Key[0]
			}
			st.ByKind[kind] += size
			if r.Value == nil {
				st.TombstonesOrNilRecords++
			}
			var h maphash.Hash
			h.SetSeed(seed)
			h.Write([]byte{byte(r.Partition >> 24), byte(r.Partition >> 16), byte(r.Partition >> 8), byte(r.Partition)})
			h.Write(r.Key)
			keys[h.Sum64()] = last{kind: kind, size: int32(size), live: r.Value != nil}
			if r.Offset+1 >= end {
				delete(need, r.Partition)
			}
		})
	}
	for _, l := range keys {
		if l.live {
			st.LiveKeys++
			st.LiveBytes += int64(l.size)
			st.LiveByKind[l.kind] += int64(l.size)
			st.LiveKeysByKind[l.kind]++
		} else {
			st.DeadKeysByKind[l.kind]++
		}
	}
	return st
}

// DirBytes returns the total size of the regular files under dir.
func DirBytes(tb testing.TB, dir string) int64 {
	tb.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
