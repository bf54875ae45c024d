package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// groupInputs consumes the grouped feeds' two topics for the owned
// partitions (docs/grouped-feeds.md): partition g of the candidacy and
// decision topics is an input of task g, like offers partition g. The
// consumer group assigns the offers partitions; this client, outside the
// group, follows that assignment (co-partitioning by construction), from
// the offsets the task's state holds.
type groupInputs struct {
	p      *Pipeline
	cl     *kgo.Client
	topics []string // candidacies, decisions
	mu     sync.Mutex
	parts  map[int32]bool // partitions being consumed
}

// newGroupInputs creates the client (it consumes nothing until add).
func newGroupInputs(p *Pipeline, base []kgo.Opt) (*groupInputs, error) {
	cl, err := kgo.NewClient(append(slices.Clone(base),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("group topics client: %w", err)
	}
	t := p.cfg.Kafka.Topics
	return &groupInputs{p: p, cl: cl, topics: []string{t.GroupCandidates, t.GroupDecisions}, parts: map[int32]bool{}}, nil
}

// change starts consuming the partitions in add (from the offsets the
// store holds for them, or the start of the topics) and stops consuming
// those in remove. Called with the partitions' tasks in place (add) or
// gone (remove).
func (gi *groupInputs) change(add, remove []int32) error {
	gi.mu.Lock()
	defer gi.mu.Unlock()
	if len(remove) > 0 {
		rm := map[string][]int32{}
		for _, part := range remove {
			if gi.parts[part] {
				delete(gi.parts, part)
				for _, t := range gi.topics {
					rm[t] = append(rm[t], part)
				}
			}
		}
		gi.cl.RemoveConsumePartitions(rm)
	}
	if len(add) == 0 {
		return nil
	}
	offs := map[string]map[int32]kgo.Offset{}
	for _, t := range gi.topics {
		stored, err := gi.p.store.Offsets(t)
		if err != nil {
			return err
		}
		offs[t] = map[int32]kgo.Offset{}
		for _, part := range add {
			if gi.parts[part] {
				continue
			}
			if off, ok := stored[part]; ok {
				offs[t][part] = kgo.NewOffset().At(off)
				gi.p.metrics.committed.WithLabelValues(t, strconv.Itoa(int(part))).Set(float64(off))
			} else {
				offs[t][part] = kgo.NewOffset().AtStart()
			}
		}
	}
	for _, part := range add {
		gi.parts[part] = true
	}
	gi.cl.AddConsumePartitions(offs)
	return nil
}

// run applies what the client fetches, each partition's records on its
// task, until ctx ends or a task fails.
func (gi *groupInputs) run(ctx context.Context) error {
	defer gi.cl.Close()
	for {
		fs := gi.cl.PollRecords(ctx, gi.p.maxPoll())
		if ctx.Err() != nil {
			return nil
		}
		if err := logFetchErrors(gi.p.logger, fs); err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
				return nil
			}
			return err
		}
		if fs.Empty() {
			continue
		}
		gi.p.updateLag(fs)
		byPart := map[int32][]*kgo.Record{}
		fs.EachRecord(func(r *kgo.Record) { byPart[r.Partition] = append(byPart[r.Partition], r) })
		g, gctx := errgroup.WithContext(ctx)
		for part, recs := range byPart {
			t := gi.p.task(part)
			if t == nil {
				continue // revoked meanwhile: its next owner applies them
			}
			g.Go(func() error {
				_, err := gi.p.runTask(gctx, t, func(a *Applier) error { return a.Apply(gctx, recs) })
				return err
			})
		}
		if err := g.Wait(); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			gi.p.logger.Error("applying the group topics failed", zap.Error(err))
			return err
		}
	}
}

// groupTopics are the group topics, in the order the changelog's offset
// record carries their offsets (after the offers topic's).
func (p *Pipeline) groupTopics() []string {
	return []string{p.cfg.Kafka.Topics.GroupCandidates, p.cfg.Kafka.Topics.GroupDecisions}
}

// partitionerFor partitions the records of the manual topics by the
// partition they name and the others as kgo does by default (by key).
func partitionerFor(manual ...string) kgo.Partitioner {
	return topicPartitioner{manual: manual, def: kgo.UniformBytesPartitioner(64<<10, true, true, nil)}
}

type topicPartitioner struct {
	manual []string
	def    kgo.Partitioner
}

func (t topicPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if slices.Contains(t.manual, topic) {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	return t.def.ForTopic(topic)
}
