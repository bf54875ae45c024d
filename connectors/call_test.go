package connectors

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/records"
)

// partnerFunc adapts a function to Partner.
type partnerFunc func(ctx context.Context, items []Item) []Result

func (f partnerFunc) Send(ctx context.Context, items []Item) []Result { return f(ctx, items) }

func newTestRuntime(t *testing.T, p Partner, timeout, grace time.Duration) *Runtime {
	t.Helper()
	cfg := config.DefaultConnector()
	cfg.Destinations = []string{"d"}
	cfg.Retry.Timeout = timeout
	r, err := New(cfg, p, Deps{Serde: records.NewSerde(nil)})
	if err != nil {
		t.Fatal(err)
	}
	r.grace = grace
	return r
}

func TestCallBoundsPartnerCalls(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	tests := []struct {
		name         string
		partner      partnerFunc
		ctx          func() context.Context
		wantReturned bool
		wantOutcome  Outcome
	}{
		{"answers", func(context.Context, []Item) []Result {
			return All(1, Result{Outcome: Acked, Status: 200})
		}, context.Background, true, Acked},
		{"honours its deadline", func(ctx context.Context, items []Item) []Result {
			<-ctx.Done()
			return All(len(items), ErrorResult(ctx.Err()))
		}, context.Background, true, Retryable},
		{"finishes after the run is stopped", func(ctx context.Context, items []Item) []Result {
			time.Sleep(20 * time.Millisecond)
			if ctx.Err() != nil {
				return All(len(items), ErrorResult(ctx.Err()))
			}
			return All(len(items), Result{Outcome: Acked, Status: 200})
		}, func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, true, Acked},
		{"ignores its deadline", func(context.Context, []Item) []Result {
			<-release // a blocking call without a deadline
			return All(1, Result{Outcome: Acked})
		}, context.Background, false, Retryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRuntime(t, tt.partner, 50*time.Millisecond, 100*time.Millisecond)
			start := time.Now()
			res, returned := r.call(tt.ctx(), []Item{{OfferID: "o-1", Op: OpDelete}})
			if took := time.Since(start); took > 10*time.Second {
				t.Fatalf("call took %s", took)
			}
			if returned != tt.wantReturned || len(res) != 1 || res[0].Outcome != tt.wantOutcome {
				t.Fatalf("call = %+v, %v; want outcome %v, returned %v", res, returned, tt.wantOutcome, tt.wantReturned)
			}
		})
	}
}

func TestCallGrace(t *testing.T) {
	for _, tt := range []struct{ timeout, want time.Duration }{
		{300 * time.Millisecond, minCallGrace},
		{30 * time.Second, 30 * time.Second},
	} {
		if got := callGrace(tt.timeout); got != tt.want {
			t.Errorf("callGrace(%s) = %s, want %s", tt.timeout, got, tt.want)
		}
	}
}

func TestDeadLetterRecordLayout(t *testing.T) {
	src := &kgo.Record{
		Topic: "feed-events", Partition: 3, Offset: 42,
		Key:   []byte("o-1"),
		Value: []byte{0, 0, 0, 0, 7, 0xff, 0x01},
		Headers: []kgo.RecordHeader{
			{Key: HeaderDestination, Value: []byte("d")},
			{Key: records.HeaderError, Value: []byte("stale error from upstream")},
			{Key: records.HeaderSourceOffset, Value: []byte("1")},
		},
	}
	dl := deadLetterRecord(config.DefaultDeadLetterTopic, src, "partner status 400: bad title")
	if dl.Topic != "feedmill-rejects" || !bytes.Equal(dl.Key, src.Key) || !bytes.Equal(dl.Value, src.Value) {
		t.Fatalf("dead letter %s key %q value %x, want feedmill-rejects with the original bytes", dl.Topic, dl.Key, dl.Value)
	}
	want := map[string]string{
		HeaderDestination:             "d",
		records.HeaderError:           "partner status 400: bad title",
		records.HeaderSourceTopic:     "feed-events",
		records.HeaderSourcePartition: "3",
		records.HeaderSourceOffset:    "42",
	}
	got := map[string]string{}
	for _, h := range dl.Headers {
		if _, dup := got[h.Key]; dup {
			t.Errorf("header %q appears twice", h.Key)
		}
		got[h.Key] = string(h.Value)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("header %q = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("headers %v, want %v", got, want)
	}
}
