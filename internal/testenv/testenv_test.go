package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
)

func TestProduceConsume(t *testing.T) {
	env := New(t, "in")
	env.CreateTopic(t, 2, "extra", "in")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	prod := env.Client(t)
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "in", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cons := env.Client(t, kgo.ConsumeTopics("in"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fs := cons.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Key) != "k" || string(recs[0].Value) != "v" {
		t.Fatalf("consumed %d records, want the one produced", len(recs))
	}

	details, err := kadm.NewClient(prod).ListTopics(ctx, "in", "extra")
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]int{"in": int(Partitions), "extra": 2} {
		if got := len(details[topic].Partitions); got != want {
			t.Errorf("topic %s: %d partitions, want %d", topic, got, want)
		}
	}

	rc := env.Registry(t)
	if _, err := rc.CreateSchema(ctx, "in-value", sr.Schema{Schema: `"string"`}); err != nil {
		t.Fatal(err)
	}
}
