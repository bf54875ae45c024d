package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/internal/records"
	"github.com/feedmill/feedmill/state"
)

// errRetry marks a failure that is not the data's fault (schema registry
// unreachable): the batch is discarded and applied again.
type errRetry struct{ err error }

func (e errRetry) Error() string { return e.err.Error() }
func (e errRetry) Unwrap() error { return e.err }

// Applier turns input records into state changes and outgoing events. It is
// the only writer of offer state and memberships: every method must be
// called from one goroutine (the Pipeline's). Each applied input batch is
// one state.Batch holding state, offsets and outbox records.
type Applier struct {
	store   *state.Store
	set     *feeds.Set
	serde   *records.Serde
	topics  config.Topics
	proc    config.Processor
	retain  time.Duration
	eventID int // schema id of FeedEvent
	now     func() time.Time
	metrics *Metrics
	logger  *zap.Logger

	eval        *feeds.Evaluator
	outageLimit time.Duration
	evalErrors  *evalErrors      // feedmill_feed_errors_total and its log (feederrors.go)
	evalSrc     *EvalErrorSource // what of eval's counts evalErrors has
	budget      EventBudget
	member      []bool
	prevMember  []bool
	oldIdx      []int32
	fp          []uint64
	fpValid     []bool
	counts      []int64
	delta       []int64

	mem, next state.Membership
	offer     records.Offer
	prev      records.Offer
	view      feeds.View
	prevView  feeds.View
	hasher    *fieldHasher
	hashes    []uint32
	entries   []records.FeedEntry
	changed   []string
	headers   []state.Header
	event     records.FeedEvent
	enc       []byte
	intern    state.Interner

	tables [feeds.NumJoined]TableInput
	// changelog is the changelog topic ("" for none); touched lists the
	// offers the batch being built changed, with the event it emitted for
	// each, for their changelog records (stageChangelog).
	changelog  string
	touched    []touchedOffer
	touchedIdx map[touchKey]int
	clBuf      []byte
	clKey      []byte
	clParts    []int32
	joiner     *Joiner // joined table records, by key, as of the batch being built

	partitions  []int32 // owned offers partitions, sorted
	storedParts []int32 // partitions with a stored offset at start (lazily read)
	partsBuf    []int32
	jobs        map[string]*state.Job // pending seller jobs
	jobOrder    []string
	jobStarts   []state.Job // jobs started by the batch being built

	pendingActions [4]int64
	offsetsSeen    []tp
}

type tp struct {
	topic     string
	partition int32
	next      int64
}

type touchKey struct {
	p  int32
	id string
}

type touchedOffer struct {
	touchKey
	events []touchedEvent // the events the batch emitted for the offer, in order
}

type touchedEvent struct {
	seq uint64 // outbox sequence
	enc []byte // encoded outbox record (batch-owned)
}

// ApplierDeps are what an Applier needs.
type ApplierDeps struct {
	Store         *state.Store
	Feeds         *feeds.Set
	Serde         *records.Serde
	Topics        config.Topics
	Processor     config.Processor
	Retention     time.Duration
	EventSchemaID int
	Now           func() time.Time
	Metrics       *Metrics
	Logger        *zap.Logger
	// RegistryOutageLimit overrides RegistryOutageLimit (tests).
	RegistryOutageLimit time.Duration
}

// NewApplier loads the live counts and pending jobs from the store.
func NewApplier(d ApplierDeps) (*Applier, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	n := len(d.Feeds.Feeds())
	a := &Applier{
		store: d.Store, set: d.Feeds, serde: d.Serde, topics: d.Topics, proc: d.Processor,
		retain: d.Retention, eventID: d.EventSchemaID, now: d.Now, metrics: d.Metrics,
		logger: d.Logger.Named("applier"), outageLimit: d.RegistryOutageLimit,
		eval: d.Feeds.NewEvaluator(), member: make([]bool, n), prevMember: make([]bool, n), oldIdx: make([]int32, n),
		fp: make([]uint64, len(d.Feeds.Templates())), fpValid: make([]bool, len(d.Feeds.Templates())),
		counts: make([]int64, n), delta: make([]int64, n),
		hasher: newFieldHasher(),
		tables: TableInputs(d.Topics), joiner: NewJoiner(d.Serde, 0),
		changelog: d.Topics.Changelog, touchedIdx: map[touchKey]int{},
		jobs: map[string]*state.Job{},
	}
	for i := range a.oldIdx {
		a.oldIdx[i] = -1
	}
	a.evalErrors = newEvalErrors(d.Metrics, d.Feeds, a.logger)
	a.evalSrc = NewEvalErrorSource(a.eval, d.Feeds)
	var err error
	if a.budget, err = NewEventBudget(d.Processor.MaxEventBytes, d.Feeds); err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, f := range d.Feeds.Feeds() {
		names[f.ID] = f.ID
		for _, dst := range f.Destinations {
			names[dst] = dst
		}
	}
	a.intern = func(b []byte) string {
		if s, ok := names[string(b)]; ok {
			return s
		}
		return string(b)
	}
	counts, err := d.Store.Counts()
	if err != nil {
		return nil, err
	}
	for _, f := range d.Feeds.Feeds() {
		a.counts[f.Index] = counts[f.ID]
		a.metrics.members.WithLabelValues(f.ID).Set(float64(a.counts[f.Index]))
	}
	jobs, err := d.Store.Jobs()
	if err != nil {
		return nil, err
	}
	for i := range jobs {
		if jobs[i].All {
			if err := a.expandJob(&jobs[i]); err != nil {
				return nil, err
			}
		}
		a.putJob(jobs[i])
	}
	return a, nil
}

// expandJob turns a job stored by an older version into one part per
// partition holding the seller's offers.
func (a *Applier) expandJob(j *state.Job) error {
	b := a.store.NewBatch() // read-only
	defer b.Close()
	parts, err := a.sellerPartitions(b, j.SellerID)
	if err != nil {
		return err
	}
	j.All = false
	j.Parts = j.Parts[:0]
	for _, p := range parts {
		j.Parts = append(j.Parts, state.JobPart{Partition: p})
	}
	return nil
}

// SetPartitions sets the offers partitions this instance owns.
func (a *Applier) SetPartitions(ps []int32) {
	a.partitions = slices.Clone(ps)
	slices.Sort(a.partitions)
	// A partition once owned may hold state from then on: later table
	// changes must reach it when it is owned again.
	if _, err := a.knownPartitions(); err == nil {
		for _, p := range a.partitions {
			if !slices.Contains(a.storedParts, p) {
				a.storedParts = append(a.storedParts, p)
			}
		}
	}
}

func (a *Applier) owns(p int32) bool {
	_, ok := slices.BinarySearch(a.partitions, p)
	return ok
}

// runnable reports whether j has a part in an owned partition.
func (a *Applier) runnable(j *state.Job) bool {
	for _, p := range j.Parts {
		if a.owns(p.Partition) {
			return true
		}
	}
	return false
}

// jobPending reports whether seller has a job part in partition p.
func (a *Applier) jobPending(seller string, p int32) bool {
	j, ok := a.jobs[seller]
	if !ok {
		return false
	}
	return slices.ContainsFunc(j.Parts, func(jp state.JobPart) bool { return jp.Partition == p })
}

// Counts returns the live member count per feed index (a copy).
func (a *Applier) Counts() []int64 { return slices.Clone(a.counts) }

// PendingJobs reports how many seller re-evaluation jobs can progress
// now (they have a part in an owned partition).
func (a *Applier) PendingJobs() int {
	n := 0
	for _, s := range a.jobOrder {
		if a.runnable(a.jobs[s]) {
			n++
		}
	}
	return n
}

// StoredJobs reports how many seller re-evaluation jobs are stored,
// including those waiting for a partition this instance does not own.
func (a *Applier) StoredJobs() int { return len(a.jobOrder) }

func (a *Applier) putJob(j state.Job) {
	if _, ok := a.jobs[j.SellerID]; !ok {
		a.jobOrder = append(a.jobOrder, j.SellerID)
	}
	jj := j
	a.jobs[j.SellerID] = &jj
}

func (a *Applier) dropJob(seller string) {
	delete(a.jobs, seller)
	if i := slices.Index(a.jobOrder, seller); i >= 0 {
		a.jobOrder = slices.Delete(a.jobOrder, i, i+1)
	}
}

// resetCaches forgets everything derived from uncommitted writes.
func (a *Applier) resetCaches() {
	a.joiner.Reset()
	a.clearTouched()
	clear(a.delta)
	a.jobStarts = a.jobStarts[:0]
	a.pendingActions = [4]int64{}
	a.offsetsSeen = a.offsetsSeen[:0]
}

// Apply applies recs (from any input topic) in batches of at most
// Processor.MaxBatchRecords records, each committed atomically with its
// offsets and outbox records. A registry outage is retried with backoff
// for RegistryOutageLimit, then returned; a state error is returned.
func (a *Applier) Apply(ctx context.Context, recs []*kgo.Record) error {
	max := a.proc.MaxBatchRecords
	if max <= 0 {
		max = 2000
	}
	for len(recs) > 0 {
		n := min(len(recs), max)
		if err := a.applyWithRetry(ctx, recs[:n]); err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

// RegistryOutageLimit is how long the applier retries an input batch it
// cannot decode because the schema registry does not answer. Past it the
// outage is a broken dependency: Apply returns the error and the
// processor stops (a restart serves feeds and waits for the registry).
const RegistryOutageLimit = 2 * time.Minute

func (a *Applier) applyWithRetry(ctx context.Context, recs []*kgo.Record) error {
	backoff := 100 * time.Millisecond
	limit := a.outageLimit
	if limit <= 0 {
		limit = RegistryOutageLimit
	}
	var since time.Time
	for attempt := 0; ; attempt++ {
		err := a.applyOnce(ctx, recs)
		if err == nil {
			return nil
		}
		a.resetCaches()
		var r errRetry
		if !errors.As(err, &r) {
			return err
		}
		if attempt == 0 {
			since = time.Now()
		} else if time.Since(since) >= limit {
			return fmt.Errorf("schema registry unavailable for %s: %w; check schema_registry.url and the registry", limit, r.err)
		}
		if attempt == 0 || attempt%20 == 0 {
			a.logger.Warn("input batch not applied, retrying", zap.Error(err), zap.Int("attempt", attempt))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (a *Applier) applyOnce(ctx context.Context, recs []*kgo.Record) error {
	b := a.store.NewBatch()
	defer b.Close()
	now := a.now()
	for _, r := range recs {
		var err error
		if r.Topic == a.topics.Offers {
			err = a.applyOffer(ctx, b, r, now)
		} else if in, ok := a.tableOf(r.Topic); ok {
			err = a.applyTable(ctx, b, r, now, in)
		} else {
			err = fmt.Errorf("record of unexpected topic %q", r.Topic)
		}
		if err != nil {
			return err
		}
		a.noteOffset(r.Topic, r.Partition, r.Offset+1)
	}
	for _, o := range a.offsetsSeen {
		if err := b.SetOffset(o.topic, o.partition, o.next); err != nil {
			return err
		}
	}
	for _, j := range a.jobStarts {
		if err := b.PutJob(&j); err != nil {
			return err
		}
	}
	return a.commit(b, now)
}

func (a *Applier) noteOffset(topic string, p int32, next int64) {
	for i := range a.offsetsSeen {
		if a.offsetsSeen[i].partition == p && a.offsetsSeen[i].topic == topic {
			a.offsetsSeen[i].next = next
			return
		}
	}
	a.offsetsSeen = append(a.offsetsSeen, tp{topic, p, next})
}

// commit writes the counts that changed, commits b, then publishes
// what the batch did to memory and metrics.
func (a *Applier) commit(b *state.Batch, now time.Time) error {
	feedsList := a.set.Feeds()
	for i, d := range a.delta {
		if d != 0 {
			if err := b.SetCount(feedsList[i].ID, a.counts[i]+d); err != nil {
				return err
			}
		}
	}
	outboxN := b.OutboxLen()
	if err := a.stageChangelog(b); err != nil {
		return err
	}
	// A batch that emits events or rejects is durable before the relay
	// can send them. One that emits nothing need not wait for the disk:
	// if a crash loses it, re-applying its input gives the same state and
	// emits nothing either (and a later synced commit makes it durable
	// too). Its changelog records may reach Kafka first: then the state
	// dir is behind the changelog, and the partition is restored from it.
	if err := b.Commit(outboxN > 0); err != nil {
		return err
	}
	a.clearTouched()
	for i, d := range a.delta {
		if d != 0 {
			a.counts[i] += d
			a.metrics.members.WithLabelValues(feedsList[i].ID).Set(float64(a.counts[i]))
		}
	}
	clear(a.delta)
	a.evalErrors.sync(a.evalSrc, now)
	for _, j := range a.jobStarts {
		a.putJob(j)
	}
	a.jobStarts = a.jobStarts[:0]
	for i, n := range a.pendingActions {
		if n > 0 {
			a.metrics.eventsEntries.WithLabelValues(actionNames[i]).Add(float64(n))
		}
	}
	a.pendingActions = [4]int64{}
	for _, o := range a.offsetsSeen {
		a.metrics.committed.WithLabelValues(o.topic, strconv.Itoa(int(o.partition))).Set(float64(o.next))
	}
	a.offsetsSeen = a.offsetsSeen[:0]
	if outboxN > 0 {
		a.metrics.outboxAdded.Add(float64(outboxN))
	}
	return nil
}

var actionNames = [4]string{records.ActionAdd, records.ActionUpdate, records.ActionRemove, records.ActionRefresh}

func actionIndex(action string) int {
	switch action {
	case records.ActionAdd:
		return 0
	case records.ActionUpdate:
		return 1
	case records.ActionRemove:
		return 2
	default:
		return 3
	}
}

// reject stages the original record for the rejects topic.
func (a *Applier) reject(b *state.Batch, outboxPartition int32, r *kgo.Record, reason string) {
	b.AddOutbox(outboxPartition, &state.OutboxRecord{
		Topic:        a.topics.Rejects,
		Key:          r.Key,
		Value:        r.Value,
		Headers:      rejectHeaders(reason, r.Topic, r.Partition, r.Offset),
		SourceTimeMs: r.Timestamp.UnixMilli(),
	})
	a.metrics.rejected.WithLabelValues(r.Topic).Inc()
}

// rejectTooLarge stages a reject for an input record whose content is over
// the size rule. Its value is left out (it could not be produced either);
// the value-omitted-bytes header says how large it was.
func (a *Applier) rejectTooLarge(b *state.Batch, outboxPartition int32, r *kgo.Record, reason string) {
	h := rejectHeaders(reason, r.Topic, r.Partition, r.Offset)
	h = append(h, state.Header{Key: "value-omitted-bytes", Value: strconv.AppendInt(nil, int64(len(r.Value)), 10)})
	b.AddOutbox(outboxPartition, &state.OutboxRecord{
		Topic: a.topics.Rejects, Key: truncate(r.Key, rejectKeyMax), Headers: h, SourceTimeMs: r.Timestamp.UnixMilli(),
	})
	a.metrics.rejected.WithLabelValues(r.Topic).Inc()
}

// decodeErr sorts a decode error: reject (true), retry, or nil.
func (a *Applier) decodeErr(b *state.Batch, p int32, r *kgo.Record, err error) (bool, error) {
	if err == nil {
		return false, nil
	}
	if rej, ok := records.IsReject(err); ok {
		a.reject(b, p, r, rej.Error())
		return true, nil
	}
	return false, errRetry{fmt.Errorf("decode %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)}
}

func (a *Applier) applyOffer(ctx context.Context, b *state.Batch, r *kgo.Record, now time.Time) error {
	a.metrics.consumed.WithLabelValues(r.Topic).Inc()
	p := r.Partition
	id := string(r.Key)
	if len(r.Key) == 0 {
		a.reject(b, p, r, "missing key")
		return nil
	}
	if r.Value == nil {
		pres, _, err := b.GetOffer(p, id, &a.prev)
		if err != nil || pres != state.Live {
			return err
		}
		if err := b.DeleteIndex(p, a.prev.SellerID, id); err != nil {
			return err
		}
		if err := b.DeleteOffer(p, id, a.prev.Version, now); err != nil {
			return err
		}
		return a.evaluate(b, p, id, nil, records.CauseChange, r.Timestamp.UnixMilli(), now)
	}
	a.offer = records.Offer{}
	if rejected, err := a.decodeErr(b, p, r, a.serde.DecodeOffer(ctx, r.Value, &a.offer)); rejected || err != nil {
		return err
	}
	if err := records.ValidateOffer(r.Key, &a.offer); err != nil {
		a.reject(b, p, r, err.Error())
		return nil
	}
	a.prev = records.Offer{}
	pres, tomb, err := b.GetOffer(p, id, &a.prev)
	if err != nil {
		return err
	}
	if a.stale(r.Topic, pres, a.prev.Version, tomb, a.offer.Version, now) {
		return nil
	}
	if !a.budget.Fits(&a.offer) {
		// Too large to announce, or to keep in the changelog: reported,
		// and treated as deleted with its version (a later, smaller
		// version brings it back; an older or equal one stays out).
		a.rejectTooLarge(b, p, r, a.budget.tooLargeReason(&a.offer))
		if pres != state.Live {
			return b.DeleteOffer(p, id, a.offer.Version, now)
		}
		if err := b.DeleteIndex(p, a.prev.SellerID, id); err != nil {
			return err
		}
		if err := b.DeleteOffer(p, id, a.offer.Version, now); err != nil {
			return err
		}
		return a.evaluate(b, p, id, nil, records.CauseChange, r.Timestamp.UnixMilli(), now)
	}
	if err := b.PutOffer(p, &a.offer); err != nil {
		return err
	}
	if pres != state.Live || a.prev.SellerID != a.offer.SellerID {
		if pres == state.Live {
			if err := b.DeleteIndex(p, a.prev.SellerID, id); err != nil {
				return err
			}
		}
		if err := b.PutIndex(p, a.offer.SellerID, id); err != nil {
			return err
		}
	}
	if err := a.joiner.Join(b, &a.offer, &a.view); err != nil {
		return err
	}
	changed := feeds.FieldsAll
	if pres == state.Live {
		// Only what the change touched is re-evaluated. The seller and
		// rating are the current ones for both views: their own changes
		// are re-evaluated by seller jobs.
		a.prevView = a.view
		a.prevView.Offer = &a.prev
		changed = feeds.DiffFields(&a.prevView, &a.view)
	}
	return a.evaluateChanged(b, p, id, &a.view, changed, records.CauseChange, r.Timestamp.UnixMilli(), now)
}

// stale applies the ordering rule (docs/contract.md, Ordering rule): a record whose version is
// not greater than the stored one, or than a deleted key's remembered one
// within tombstone_retention, changes nothing. It counts what it ignores.
func (a *Applier) stale(topic string, pres state.Presence, liveVersion int64, tomb state.Tombstone, version int64, now time.Time) bool {
	ignore := (pres == state.Live && version <= liveVersion) ||
		(pres == state.Deleted && version <= tomb.Version && now.Sub(tomb.DeletedAt) < a.retain)
	if ignore {
		a.metrics.stale.WithLabelValues(topic).Inc()
	}
	return ignore
}

// startJob schedules the re-evaluation of sellerID's offers for a change
// of the fields in changed, unless no feed reads or renders any of them.
// A job already pending for the seller restarts with both changes.
func (a *Applier) startJob(b *state.Batch, sellerID string, srcMs int64, changed feeds.FieldMask) error {
	changed &^= feeds.FieldNow
	relevant := false
	for _, f := range a.set.Feeds() {
		if (f.FilterFields()|f.Template.RenderFields())&changed != 0 {
			relevant = true
			break
		}
	}
	if !relevant {
		return nil
	}
	// Every partition of this state holding the seller's offers, owned or
	// not. A seller with no offers in state has nothing to re-evaluate (on
	// a cold start the tables load before any offer): its offers will be
	// evaluated with the current seller when they arrive.
	parts, err := a.sellerPartitions(b, sellerID)
	if err != nil || len(parts) == 0 {
		return err
	}
	j := state.Job{SellerID: sellerID, SourceTimeMs: srcMs, Changed: uint64(changed)}
	for _, p := range parts {
		j.Parts = append(j.Parts, state.JobPart{Partition: p})
	}
	if pending, ok := a.jobs[sellerID]; ok {
		j.Changed |= pending.Changed
		j.SourceTimeMs = min(j.SourceTimeMs, pending.SourceTimeMs)
	}
	for i := range a.jobStarts {
		if a.jobStarts[i].SellerID == sellerID {
			j.Changed |= a.jobStarts[i].Changed
			j.SourceTimeMs = min(j.SourceTimeMs, a.jobStarts[i].SourceTimeMs)
			a.jobStarts[i] = j
			return nil
		}
	}
	a.jobStarts = append(a.jobStarts, j)
	return nil
}

// sellerPartitions lists, in increasing order, the partitions of this
// state that hold offers of sellerID.
func (a *Applier) sellerPartitions(b *state.Batch, sellerID string) ([]int32, error) {
	known, err := a.knownPartitions()
	if err != nil {
		return nil, err
	}
	var out []int32
	for _, p := range known {
		ok, err := b.HasSellerOffers(p, sellerID)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}

// knownPartitions are the offers partitions that may hold state: the
// owned ones, those with a stored offset at start and those owned since.
func (a *Applier) knownPartitions() ([]int32, error) {
	if a.storedParts == nil {
		offs, err := a.store.Offsets(a.topics.Offers)
		if err != nil {
			return nil, err
		}
		a.storedParts = []int32{}
		for p := range offs {
			a.storedParts = append(a.storedParts, p)
		}
	}
	out := append(a.partsBuf[:0], a.partitions...)
	for _, p := range a.storedParts {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	a.partsBuf = out
	return out, nil
}

// tableOf returns the joined table input read from topic.
func (a *Applier) tableOf(topic string) (TableInput, bool) {
	for _, in := range a.tables {
		if in.Topic == topic {
			return in, true
		}
	}
	return TableInput{}, false
}

// applyTable applies one record of a joined table (sellers, ratings,
// ...): the ordering rule, then the stored record, then a job that
// re-evaluates the offers joined to it for the fields that changed.
func (a *Applier) applyTable(ctx context.Context, b *state.Batch, r *kgo.Record, now time.Time, in TableInput) error {
	a.metrics.consumed.WithLabelValues(r.Topic).Inc()
	j := in.Joined
	id := string(r.Key)
	if len(r.Key) == 0 {
		a.reject(b, state.TablePartition, r, "missing key")
		return nil
	}
	var cur feeds.View
	pres, tomb, err := b.GetTable(in.State, id, func(v []byte) error { return j.Unmarshal(a.serde, v, &cur) })
	if err != nil {
		return err
	}
	var curVersion int64
	if pres == state.Live {
		curVersion = j.Version(&cur)
	}
	if r.Value == nil {
		if pres != state.Live {
			return nil
		}
		if err := b.DeleteTable(in.State, id, curVersion, now); err != nil {
			return err
		}
		a.joiner.Set(j, id, &feeds.View{})
		return a.startJob(b, id, r.Timestamp.UnixMilli(), j.Fields())
	}
	var next feeds.View
	if rejected, err := a.decodeErr(b, state.TablePartition, r, j.Decode(ctx, a.serde, r.Value, &next)); rejected || err != nil {
		return err
	}
	if err := j.Validate(r.Key, &next); err != nil {
		a.reject(b, state.TablePartition, r, err.Error())
		return nil
	}
	if n := j.SizeMax(&next); n > tableRecordMax {
		a.rejectTooLarge(b, state.TablePartition, r, fmt.Sprintf("%s too large: %d bytes, over the %d-byte bound", j, n, tableRecordMax))
		return nil
	}
	if a.stale(r.Topic, pres, curVersion, tomb, j.Version(&next), now) {
		return nil
	}
	if err := b.PutTable(in.State, id, func(dst []byte) ([]byte, error) { return j.Marshal(a.serde, dst, &next) }); err != nil {
		return err
	}
	a.joiner.Set(j, id, &next)
	var old *feeds.View
	if pres == state.Live {
		old = &cur
	}
	return a.startJob(b, id, r.Timestamp.UnixMilli(), j.Diff(old, &next))
}

// touch notes that the batch being built changes offer id of partition p.
func (a *Applier) touch(p int32, id string) *touchedOffer {
	k := touchKey{p, id}
	if i, ok := a.touchedIdx[k]; ok {
		return &a.touched[i]
	}
	a.touchedIdx[k] = len(a.touched)
	a.touched = append(a.touched, touchedOffer{touchKey: k})
	return &a.touched[len(a.touched)-1]
}

func (a *Applier) clearTouched() {
	clear(a.touchedIdx)
	clear(a.touched) // drop references to batch memory
	a.touched = a.touched[:0]
}

// stageChangelog adds the changelog records of the batch to its outbox:
// per offer it changed, the event it emitted (if any) then the offer's
// stored value and membership as the batch leaves them; then one per
// offers partition whose consumed offset it moved. The relay sends them
// before the batch's events (Relay.ChangelogTopic), in this order within
// a partition, and deletes an event's record once the event was
// acknowledged.
func (a *Applier) stageChangelog(b *state.Batch) error {
	if a.changelog == "" {
		return nil
	}
	for i := range a.touched {
		t := &a.touched[i]
		if t.p < 0 {
			continue
		}
		for _, e := range t.events {
			// The events first, each in its own record: an offer record
			// in the changelog implies the events before it are there.
			a.clKey = state.ChangelogEventKey(a.clKey[:0], e.seq)
			b.AddOutbox(t.p, &state.OutboxRecord{Topic: a.changelog, Partition: t.p, Key: a.clKey, Value: e.enc})
		}
		val, ok, err := b.AppendChangelogOffer(a.clBuf[:0], t.p, t.id, 0, nil)
		if err != nil {
			return fmt.Errorf("changelog record of offer %q: %w", t.id, err)
		}
		a.clBuf = val
		a.clKey = state.ChangelogOfferKey(a.clKey[:0], t.id)
		rec := state.OutboxRecord{Topic: a.changelog, Partition: t.p, Key: a.clKey}
		if ok {
			rec.Value = val
		}
		b.AddOutbox(t.p, &rec) // encodes a copy: the buffers are reused
	}
	// Each partition the batch wrote ends with its offset record: the
	// relay cuts its rounds after one, so a round never holds a batch's
	// events without all of its changelog records.
	parts := a.clParts[:0]
	defer func() { a.clParts = parts }()
	for i := range a.touched {
		if p := a.touched[i].p; p >= 0 && !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	for _, o := range a.offsetsSeen {
		if o.topic == a.topics.Offers && !slices.Contains(parts, o.partition) {
			parts = append(parts, o.partition)
		}
	}
	for _, p := range parts {
		next, ok := int64(0), false
		for _, o := range a.offsetsSeen {
			if o.topic == a.topics.Offers && o.partition == p {
				next, ok = o.next, true
			}
		}
		if !ok {
			var err error
			if next, ok, err = b.Offset(a.topics.Offers, p); err != nil {
				return err
			}
		}
		if ok { // a partition with offers has a stored offset
			a.clBuf = state.AppendChangelogOffset(a.clBuf[:0], next)
			b.AddOutbox(p, &state.OutboxRecord{Topic: a.changelog, Partition: p, Key: state.ChangelogOffsetKey, Value: a.clBuf})
		}
	}
	return nil
}

// SweepTombstones forgets deleted keys older than the tombstone retention,
// in committed batches of at most 1000. It returns how many it forgot.
func (a *Applier) SweepTombstones() (int, error) {
	total := 0
	for {
		b := a.store.NewBatch()
		n, err := b.SweepTombstones(a.now().Add(-a.retain), 1000)
		if err == nil && n > 0 {
			err = b.Commit(false)
		}
		_ = b.Close() // committed or discarded
		if err != nil {
			return total, fmt.Errorf("sweep tombstones: %w", err)
		}
		total += n
		if n < 1000 {
			return total, nil
		}
	}
}
