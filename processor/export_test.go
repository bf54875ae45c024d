package processor

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Hooks for the tests of package processor_test that drive a Pipeline's
// tasks without a consumer group (tasks_test.go).

// SetEventSchemaID sets the FeedEvent schema id (Run registers it).
func (p *Pipeline) SetEventSchemaID(id int) { p.tableApplier.eventID = id }

// SetTasks gains the partitions in add and loses those in remove, as the
// group's assignment callbacks do.
func (p *Pipeline) SetTasks(add, remove []int32) error { return p.setTasks(add, remove) }

// ApplyTables applies table records as the table consumer does.
func (p *Pipeline) ApplyTables(ctx context.Context, recs []*kgo.Record) error {
	return p.applyTables(ctx, recs)
}

// ApplyOffers applies offers records (of owned partitions) as one poll.
func (p *Pipeline) ApplyOffers(ctx context.Context, recs []*kgo.Record) error {
	byPart := map[int32][]*kgo.Record{}
	var parts []int32
	for _, r := range recs {
		if _, ok := byPart[r.Partition]; !ok {
			parts = append(parts, r.Partition)
		}
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	var fetch kgo.Fetch
	ft := kgo.FetchTopic{Topic: p.cfg.Kafka.Topics.Offers}
	for _, part := range parts {
		ft.Partitions = append(ft.Partitions, kgo.FetchPartition{Partition: part, Records: byPart[part]})
	}
	fetch.Topics = append(fetch.Topics, ft)
	return p.applyOffers(ctx, kgo.Fetches{fetch})
}

// RunJobChunks runs one job chunk on every owned task with pending jobs
// and reports whether any job is pending afterwards.
func (p *Pipeline) RunJobChunks(ctx context.Context) (bool, error) {
	pending := false
	for _, t := range p.ownedTasks() {
		if t.jobs.Load() == 0 {
			continue
		}
		if _, err := p.runTask(ctx, t, func(a *Applier) error { _, err := a.RunJobChunk(); return err }); err != nil {
			return false, err
		}
		pending = pending || t.jobs.Load() > 0
	}
	return pending, nil
}

// StandbyChoice is standbyChoice (standby.go).
var StandbyChoice = standbyChoice
