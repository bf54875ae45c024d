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
	"github.com/feedmill/feedmill/processor/grouping"
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
	// counts holds the live member count per feed index of each owned
	// partition (and of any other the applier touched); deltas what the
	// batch being built changes, delta the slice of the partition being
	// evaluated (usePartition).
	counts map[int32][]int64
	deltas map[int32][]int64
	delta  []int64
	curP   int32

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
	jobs        map[jobID]*state.Job // pending seller jobs of owned partitions
	jobOrder    []jobID
	jobStarts   []state.Job // jobs started by the batch being built
	// onJobs, when set, receives the jobs a committed batch started (the
	// pipeline hands them to the partitions' tasks); otherwise the
	// applier keeps those of the partitions it owns.
	onJobs func(jobs []state.Job)
	// onTable, when set, receives each table record a committed batch
	// changed (the pipeline updates the tasks' joiners).
	onTable      func(j feeds.Joined, key string, rec *feeds.View)
	tableChanges []tableChange

	pendingActions [4]int64
	offsetsSeen    []tp

	// Grouped feeds (docs/grouped-feeds.md): the indexes of the grouped
	// feeds, the partition count of the group topics, the decision being
	// applied (groupStage folds it), scratch buffers, and what the batch
	// being built changed in its group partitions (their changelog
	// records).
	grouped         []int
	groupParts      int32
	decision        *grouping.Decision
	memLoaded       bool    // a.mem holds the membership of the offer evaluated next
	backfilled      int64   // offers feed change jobs re-evaluated (runJobs reads and resets it)
	standingOf      []int32 // per feed index: 1 + the position of its stored standing (groupStage)
	force           []bool  // per feed index: evaluated whatever changed (a feed change job's feeds)
	forceIdx        []int   // the indexes set in force
	gkey            []byte
	gRecKey         []byte
	gRecVal         []byte
	groupTouched    []groupTouch
	groupTouchedIdx map[groupTouchKey]int
}

// groupTouchKey is a place ((feed, key, offer) of group partition g) or,
// with offer "", a winner ((feed, key)).
type groupTouchKey struct {
	g                int32
	feed, key, offer string
}

// groupTouch is a place or winner the batch being built changed, with
// the decision records it staged.
type groupTouch struct {
	groupTouchKey
	events []touchedEvent
}

// jobID names a seller job: a seller in one offers partition.
type jobID struct {
	p      int32
	seller string
}

type tableChange struct {
	j   feeds.Joined
	key string
	rec feeds.View
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
	// GroupPartitions is the partition count of the group topics (that
	// of the offers topic); 0 means 1 (an applier without Kafka).
	GroupPartitions int32
	// RegistryOutageLimit overrides RegistryOutageLimit (tests).
	RegistryOutageLimit time.Duration
	// evalErrs is the export of evaluation failures the pipeline's
	// appliers share (nil: a new one).
	evalErrs *evalErrors
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
		counts: map[int32][]int64{}, deltas: map[int32][]int64{}, curP: -1,
		hasher: newFieldHasher(),
		tables: TableInputs(d.Topics), joiner: NewJoiner(d.Serde, 0),
		changelog: d.Topics.Changelog, touchedIdx: map[touchKey]int{},
		jobs: map[jobID]*state.Job{},
	}
	for i := range a.oldIdx {
		a.oldIdx[i] = -1
	}
	for i, f := range d.Feeds.Feeds() {
		if f.Grouped() {
			a.grouped = append(a.grouped, i)
		}
	}
	a.standingOf = make([]int32, n)
	a.force = make([]bool, n)
	a.groupParts = max(1, d.GroupPartitions)
	a.evalErrors = d.evalErrs
	if a.evalErrors == nil {
		a.evalErrors = newEvalErrors(d.Metrics, d.Feeds, a.logger)
	}
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
	return a, nil
}

// SetPartitions sets the offers partitions this applier owns: it loads
// the member counts and pending jobs of those it gains (adding the counts
// to feedmill_feed_members) and forgets those of the partitions it loses.
func (a *Applier) SetPartitions(ps []int32) error {
	ps = slices.Clone(ps)
	slices.Sort(ps)
	for _, p := range a.partitions {
		if _, ok := slices.BinarySearch(ps, p); ok {
			continue
		}
		a.addMemberMetric(a.counts[p], -1)
		delete(a.counts, p)
		a.jobOrder = slices.DeleteFunc(a.jobOrder, func(id jobID) bool {
			if id.p == p {
				delete(a.jobs, id)
				return true
			}
			return false
		})
	}
	var gained []int32
	for _, p := range ps {
		if !a.owns(p) {
			gained = append(gained, p)
		}
	}
	a.partitions = ps
	for _, p := range gained {
		c, err := a.loadCounts(p)
		if err != nil {
			return err
		}
		a.addMemberMetric(c, 1)
		jobs, err := a.store.Jobs(p)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			a.putJob(j)
		}
	}
	// A partition once owned may hold state from then on: later table
	// changes must reach it when it is owned again.
	return a.NoteKnownPartitions(a.partitions)
}

// loadCounts returns partition p's member counts, reading them from the
// store the first time.
func (a *Applier) loadCounts(p int32) ([]int64, error) {
	if c, ok := a.counts[p]; ok {
		return c, nil
	}
	stored, err := a.store.PartitionCounts(p)
	if err != nil {
		return nil, err
	}
	c := make([]int64, len(a.set.Feeds()))
	for _, f := range a.set.Feeds() {
		c[f.Index] = stored[f.ID]
	}
	a.counts[p] = c
	return c, nil
}

func (a *Applier) addMemberMetric(c []int64, sign int64) {
	for i, f := range a.set.Feeds() {
		if i < len(c) && c[i] != 0 {
			a.metrics.members.WithLabelValues(f.ID).Add(float64(sign * c[i]))
		}
	}
}

// usePartition points a.delta at partition p's changes in the batch.
func (a *Applier) usePartition(p int32) error {
	if p == a.curP && a.delta != nil {
		return nil
	}
	if _, err := a.loadCounts(p); err != nil {
		return err
	}
	d, ok := a.deltas[p]
	if !ok {
		d = make([]int64, len(a.set.Feeds()))
		a.deltas[p] = d
	}
	a.curP, a.delta = p, d
	return nil
}

func (a *Applier) owns(p int32) bool {
	_, ok := slices.BinarySearch(a.partitions, p)
	return ok
}

// jobPending reports whether seller has a job in partition p.
func (a *Applier) jobPending(seller string, p int32) bool {
	_, ok := a.jobs[jobID{p, seller}]
	return ok
}

// Counts returns the live member count per feed index, summed over the
// owned partitions.
func (a *Applier) Counts() []int64 {
	out := make([]int64, len(a.set.Feeds()))
	for _, p := range a.partitions {
		for i, n := range a.counts[p] {
			out[i] += n
		}
	}
	return out
}

// PendingJobs reports how many seller re-evaluation jobs of owned
// partitions are pending.
func (a *Applier) PendingJobs() int { return len(a.jobOrder) }

// putJob keeps j if its partition is owned (a restart of a pending job
// replaces it).
func (a *Applier) putJob(j state.Job) {
	if !a.owns(j.Partition) {
		return
	}
	id := jobID{j.Partition, j.SellerID}
	if _, ok := a.jobs[id]; !ok {
		a.jobOrder = append(a.jobOrder, id)
	}
	jj := j
	a.jobs[id] = &jj
}

func (a *Applier) dropJob(id jobID) {
	delete(a.jobs, id)
	if i := slices.Index(a.jobOrder, id); i >= 0 {
		a.jobOrder = slices.Delete(a.jobOrder, i, i+1)
	}
}

// resetCaches forgets everything derived from uncommitted writes.
func (a *Applier) resetCaches() {
	a.joiner.Reset()
	a.clearTouched()
	for _, d := range a.deltas {
		clear(d)
	}
	a.jobStarts = a.jobStarts[:0]
	clear(a.tableChanges)
	a.tableChanges = a.tableChanges[:0]
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
		} else if r.Topic == a.topics.GroupCandidates || r.Topic == a.topics.GroupDecisions {
			// A record below the stored offset was applied already (a
			// fetch from before the partition was revoked and assigned
			// again): applying it again changes nothing, but its offset
			// must not move the stored one back.
			next, ok, err := a.nextOffset(b, r.Topic, r.Partition)
			if err != nil {
				return err
			}
			if ok && r.Offset < next {
				continue
			}
			if r.Topic == a.topics.GroupCandidates {
				err = a.applyCandidacy(b, r)
			} else {
				err = a.applyDecision(b, r, now)
			}
			if err != nil {
				return err
			}
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
	for p, delta := range a.deltas {
		for i, d := range delta {
			if d != 0 {
				if err := b.SetCount(p, feedsList[i].ID, a.counts[p][i]+d); err != nil {
					return err
				}
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
	for p, delta := range a.deltas {
		owned := a.owns(p)
		for i, d := range delta {
			if d != 0 {
				a.counts[p][i] += d
				if owned {
					a.metrics.members.WithLabelValues(feedsList[i].ID).Add(float64(d))
				}
			}
		}
		clear(delta)
	}
	a.evalErrors.sync(a.evalSrc, now)
	if len(a.jobStarts) > 0 {
		if a.onJobs != nil {
			a.onJobs(a.jobStarts)
		}
		for _, j := range a.jobStarts {
			a.putJob(j)
		}
		a.jobStarts = a.jobStarts[:0]
	}
	if len(a.tableChanges) > 0 {
		if a.onTable != nil {
			for i := range a.tableChanges {
				c := &a.tableChanges[i]
				a.onTable(c.j, c.key, &c.rec)
			}
		}
		clear(a.tableChanges)
		a.tableChanges = a.tableChanges[:0]
	}
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
		a.touch(p, id) // the offer's changelog record
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
		a.touch(p, id) // the offer's changelog record
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
	a.touch(p, id) // the offer's changelog record
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
		// An offer joined to another record (its seller changed) sees
		// every field of that table change.
		for _, in := range a.tables {
			if changed&in.Joined.JoinField() != 0 {
				changed |= in.Joined.Fields()
			}
		}
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
// of the fields in changed, unless no feed reads or renders any of them:
// one job per partition holding the seller's offers, owned or not. A job
// already pending for the seller in a partition restarts with both
// changes.
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
	// A seller with no offers in state has nothing to re-evaluate (on a
	// cold start the tables load before any offer): its offers will be
	// evaluated with the current seller when they arrive.
	parts, err := a.sellerPartitions(b, sellerID)
	if err != nil {
		return err
	}
	for _, p := range parts {
		j := state.Job{SellerID: sellerID, Partition: p, SourceTimeMs: srcMs, Changed: uint64(changed)}
		pending, ok, err := b.GetJob(p, sellerID)
		if err != nil {
			return err
		}
		if ok {
			j.Changed |= pending.Changed
			j.SourceTimeMs = min(j.SourceTimeMs, pending.SourceTimeMs)
		}
		if i := slices.IndexFunc(a.jobStarts, func(s state.Job) bool { return s.SellerID == sellerID && s.Partition == p }); i >= 0 {
			j.Changed |= a.jobStarts[i].Changed
			j.SourceTimeMs = min(j.SourceTimeMs, a.jobStarts[i].SourceTimeMs)
			a.jobStarts[i] = j
			continue
		}
		a.jobStarts = append(a.jobStarts, j)
	}
	return nil
}

// NoteKnownPartitions adds ps to the partitions that may hold state, so
// that table changes start jobs in them (the pipeline's table applier
// owns no partition itself).
func (a *Applier) NoteKnownPartitions(ps []int32) error {
	if _, err := a.knownPartitions(); err != nil {
		return err
	}
	for _, p := range ps {
		if !slices.Contains(a.storedParts, p) {
			a.storedParts = append(a.storedParts, p)
		}
	}
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
		a.tableChanges = append(a.tableChanges, tableChange{j: j, key: id})
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
	a.tableChanges = append(a.tableChanges, tableChange{j: j, key: id, rec: next})
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
	clear(a.groupTouched)
	a.groupTouched = a.groupTouched[:0]
	clear(a.groupTouchedIdx)
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
	if err := a.stageGroupChangelog(b); err != nil {
		return err
	}
	// Each partition the batch wrote ends with its offset record (the
	// next offsets of its offers partition and of its group topics'
	// partitions): the relay cuts its rounds after one, so a round never
	// holds a batch's events without all of its changelog records.
	parts := a.clParts[:0]
	defer func() { a.clParts = parts }()
	for i := range a.touched {
		if p := a.touched[i].p; p >= 0 && !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	for i := range a.groupTouched {
		if p := a.groupTouched[i].g; !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	for _, o := range a.offsetsSeen {
		if a.partitionInput(o.topic) && !slices.Contains(parts, o.partition) {
			parts = append(parts, o.partition)
		}
	}
	for _, p := range parts {
		var next [3]int64
		any := false
		for i, topic := range [3]string{a.topics.Offers, a.topics.GroupCandidates, a.topics.GroupDecisions} {
			n, ok, err := a.nextOffset(b, topic, p)
			if err != nil {
				return err
			}
			next[i] = -1
			if ok {
				next[i], any = n, true
			}
		}
		if any { // a partition with input has a stored offset
			a.clBuf = state.AppendChangelogOffset(a.clBuf[:0], max(next[0], 0), next[1], next[2])
			b.AddOutbox(p, &state.OutboxRecord{Topic: a.changelog, Partition: p, Key: state.ChangelogOffsetKey, Value: a.clBuf})
		}
	}
	return nil
}

// partitionInput reports whether topic is an input of the partition
// tasks (offers and the group topics), whose offsets the changelog keeps.
func (a *Applier) partitionInput(topic string) bool {
	return topic == a.topics.Offers || topic == a.topics.GroupCandidates || topic == a.topics.GroupDecisions
}

// nextOffset is the next offset of topic partition p as the batch being
// built leaves it.
func (a *Applier) nextOffset(b *state.Batch, topic string, p int32) (int64, bool, error) {
	for _, o := range a.offsetsSeen {
		if o.topic == topic && o.partition == p {
			return o.next, true, nil
		}
	}
	return b.Offset(topic, p)
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
