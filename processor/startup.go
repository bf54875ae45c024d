package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/state"
)

// recordOverheadBytes is what a produce batch adds around one record
// (batch header, record framing): the producer's batch limit is
// processor.max_event_bytes plus this.
const recordOverheadBytes = 512

// producerBatchBytes is the producer's batch limit: one record of
// max_event_bytes always fits, and the topics are checked to accept it.
func (p *Pipeline) producerBatchBytes() int32 {
	return int32(p.cfg.Processor.MaxEventBytes + recordOverheadBytes)
}

// changelogBatchBytes bounds a changelog record: an offer's stored value
// and membership (bounded by the size rule) and its last event.
func (p *Pipeline) changelogBatchBytes() int32 {
	return int32(2*p.cfg.Processor.MaxEventBytes + 64<<10)
}

// checkCluster runs before anything is consumed. It waits (while ctx
// lasts) until the input topics exist, then refuses a state dir built for
// another cluster, group, topics or partition counts (state.CheckIdentity)
// and output topics that cannot take a record of max_event_bytes.
func (p *Pipeline) checkCluster(ctx context.Context, base []kgo.Opt) error {
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	t := p.cfg.Kafka.Topics
	// Input roles as named in kafka.topics: offers and each joined table
	// input (sellers, ratings, ...).
	roles := []string{"offers"}
	inputs := map[string]string{"offers": t.Offers}
	for _, in := range TableInputs(t) {
		role := in.Joined.String() + "s"
		roles = append(roles, role)
		inputs[role] = in.Topic
	}
	var md kadm.Metadata
	var lastLog time.Time
	for {
		md, err = adm.Metadata(ctx, append([]string{t.Offers}, p.tableTopics()...)...)
		if err == nil {
			for _, role := range roles {
				td, ok := md.Topics[inputs[role]]
				if !ok || td.Err != nil || len(td.Partitions) == 0 {
					cause := "no partitions"
					if td.Err != nil {
						cause = td.Err.Error()
					}
					err = fmt.Errorf("input topic %q (kafka.topics.%s) is not available: %s", inputs[role], role, cause)
					break
				}
			}
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(lastLog) > 30*time.Second {
			p.logger.Warn("waiting for Kafka and the input topics", zap.Error(err))
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	want := state.Identity{
		FormatVersion: state.FormatVersion,
		ClusterID:     md.Cluster,
		GroupID:       p.cfg.Kafka.GroupID,
		Topics:        map[string]string{"events": t.Events, "rejects": t.Rejects},
		Partitions:    map[string]int32{},
	}
	for role, topic := range inputs {
		want.Topics[role] = topic
		want.Partitions[role] = int32(len(md.Topics[topic].Partitions))
	}
	p.offersTotal.Store(want.Partitions["offers"])
	if err := p.store.CheckIdentity(p.cfg.State.Dir, want); err != nil {
		return err
	}
	if err := p.ensureChangelog(ctx, adm, want.Partitions["offers"]); err != nil {
		return err
	}
	if err := p.ensureGroupTopics(ctx, adm, want.Partitions["offers"]); err != nil {
		return err
	}
	return p.checkMessageBytes(ctx, adm)
}

// ensureChangelog creates the changelog topic (compacted, as many
// partitions as the offers topic) when it is missing, and refuses one
// whose partition count differs: changelog partition p is the replica of
// offers partition p.
func (p *Pipeline) ensureChangelog(ctx context.Context, adm *kadm.Client, partitions int32) error {
	// min.compaction.lag.ms keeps the records of an unfinished batch
	// (which a restore skips) from compacting away the last whole value
	// of their keys before the partition's next owner supersedes them.
	compact, maxBytes, lag := "compact", strconv.Itoa(int(p.changelogBatchBytes())), "3600000"
	return p.ensureTopic(ctx, adm, "changelog", p.cfg.Kafka.Topics.Changelog, partitions, map[string]*string{
		"cleanup.policy": &compact, "max.message.bytes": &maxBytes, "min.compaction.lag.ms": &lag})
}

// ensureGroupTopics creates the grouped feeds' two topics (as many
// partitions as the offers topic: group partition g and offers partition
// g are one task) when missing, and refuses them with another count.
// They are compacted: a record's key names what it is the latest word on
// (an offer's candidacy in a group, a group's decision about an offer),
// so no retention can delete a record a stopped task has yet to read,
// and what compaction drops a reader would ignore by sequence anyway.
func (p *Pipeline) ensureGroupTopics(ctx context.Context, adm *kadm.Client, partitions int32) error {
	t := p.cfg.Kafka.Topics
	compact := "compact"
	for _, tp := range []struct{ key, topic string }{{"group_candidates", t.GroupCandidates}, {"group_decisions", t.GroupDecisions}} {
		if err := p.ensureTopic(ctx, adm, tp.key, tp.topic, partitions, map[string]*string{"cleanup.policy": &compact}); err != nil {
			return err
		}
	}
	return nil
}

// ensureTopic creates topic (kafka.topics.<key>) with partitions
// partitions and configs when it is missing, and refuses one whose
// partition count differs from the offers topic's.
func (p *Pipeline) ensureTopic(ctx context.Context, adm *kadm.Client, key, topic string, partitions int32, configs map[string]*string) error {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return fmt.Errorf("read topic %q (kafka.topics.%s): %w", topic, key, err)
	}
	if td, ok := md.Topics[topic]; ok && td.Err == nil {
		if n := int32(len(td.Partitions)); n != partitions {
			return fmt.Errorf("topic %q (kafka.topics.%s) has %d partitions, the offers topic %d: they must be equal "+
				"(delete it to have it created again, or set kafka.topics.%s)", topic, key, n, partitions, key)
		}
		return nil
	}
	resp, err := adm.CreateTopic(ctx, partitions, -1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %q (kafka.topics.%s, %d partitions): %w; create it, or grant feedmill the right to", topic, key, partitions, err)
	}
	p.logger.Info("created a topic", zap.String("topic", topic), zap.String("role", key), zap.Int32("partitions", partitions))
	return nil
}

// checkMessageBytes refuses an events, rejects or changelog topic whose
// max.message.bytes is below what the producer may send to it. A topic
// that does not exist yet, or configs we may not read, are logged and
// passed.
func (p *Pipeline) checkMessageBytes(ctx context.Context, adm *kadm.Client) error {
	t := p.cfg.Kafka.Topics
	need := map[string]int64{t.Events: int64(p.producerBatchBytes()), t.Rejects: int64(p.producerBatchBytes()),
		t.Changelog: int64(p.changelogBatchBytes())}
	rcs, err := adm.DescribeTopicConfigs(ctx, t.Events, t.Rejects, t.Changelog)
	if err != nil {
		p.logger.Warn("cannot read the output topics' max.message.bytes; not checked", zap.Error(err))
		return nil
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			p.logger.Warn("cannot read a topic's config; max.message.bytes not checked", zap.String("topic", rc.Name), zap.Error(rc.Err))
			continue
		}
		for _, c := range rc.Configs {
			if c.Key != "max.message.bytes" || c.Value == nil {
				continue
			}
			n, err := strconv.ParseInt(*c.Value, 10, 64)
			if err != nil {
				return fmt.Errorf("topic %q: max.message.bytes %q: %w", rc.Name, *c.Value, err)
			}
			if n < need[rc.Name] {
				return fmt.Errorf("topic %q accepts records of at most %d bytes (max.message.bytes), "+
					"but feedmill may send %d bytes to it (processor.max_event_bytes %d; a changelog record holds an offer and its event): "+
					"raise the topic's max.message.bytes or lower processor.max_event_bytes",
					rc.Name, n, need[rc.Name], p.cfg.Processor.MaxEventBytes)
			}
		}
	}
	return nil
}
