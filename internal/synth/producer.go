package synth

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/records"
)

// Producer writes Changes to the input topics in the Confluent wire
// format: key = record id, value = Avro record under the schema registered
// as <topic>-value, or nil for a tombstone. Produce is asynchronous; the
// first delivery error is kept and returned by the following Produce, Flush
// or Run. Safe for concurrent use.
type Producer struct {
	cl     *kgo.Client
	serde  *records.Serde
	topics [3]string // by Kind
	ids    [3]int    // schema ids by Kind

	mu  sync.Mutex
	err error
}

// NewProducer registers the Offer, Seller and Rating schemas under
// <topic>-value of topics.Offers, Sellers and Ratings and returns a
// Producer writing through cl. The client and serde stay owned by the
// caller.
func NewProducer(ctx context.Context, cl *kgo.Client, serde *records.Serde, topics config.Topics) (*Producer, error) {
	p := &Producer{cl: cl, serde: serde}
	for _, k := range []struct {
		kind  Kind
		rec   records.Kind
		topic string
	}{
		{KindOffers, records.KindOffer, topics.Offers},
		{KindSellers, records.KindSeller, topics.Sellers},
		{KindRatings, records.KindRating, topics.Ratings},
	} {
		if k.topic == "" {
			return nil, fmt.Errorf("new producer: no topic for %s", k.kind)
		}
		id, err := serde.Register(ctx, k.topic+"-value", k.rec)
		if err != nil {
			return nil, fmt.Errorf("new producer: %w", err)
		}
		p.topics[k.kind] = k.topic
		p.ids[k.kind] = id
	}
	return p, nil
}

// SchemaID returns the registered schema id of a kind's topic.
func (p *Producer) SchemaID(k Kind) int { return p.ids[k] }

// Produce encodes ch and hands it to the client without waiting for the
// broker. It returns an encoding error, or the first delivery error of an
// earlier record. The record is failed if ctx ends before it is sent.
func (p *Producer) Produce(ctx context.Context, ch Change) error {
	if err := p.Err(); err != nil {
		return err
	}
	if ch.Topic > KindRatings {
		return fmt.Errorf("produce %q: unknown topic kind %d", ch.Key, ch.Topic)
	}
	rec := &kgo.Record{Topic: p.topics[ch.Topic], Key: []byte(ch.Key)}
	if !ch.Tombstone {
		var err error
		id := p.ids[ch.Topic]
		switch {
		case ch.Offer != nil:
			rec.Value, err = p.serde.AppendOffer(make([]byte, 0, 512), id, ch.Offer)
		case ch.Seller != nil:
			rec.Value, err = p.serde.AppendSeller(make([]byte, 0, 128), id, ch.Seller)
		case ch.Rating != nil:
			rec.Value, err = p.serde.AppendRating(make([]byte, 0, 64), id, ch.Rating)
		default:
			return fmt.Errorf("produce %s %q: change has no record and is not a tombstone", ch.Topic, ch.Key)
		}
		if err != nil {
			return fmt.Errorf("produce %s %q: %w", ch.Topic, ch.Key, err)
		}
	}
	p.cl.Produce(ctx, rec, p.promise)
	return nil
}

func (p *Producer) promise(r *kgo.Record, err error) {
	if err == nil {
		return
	}
	p.mu.Lock()
	if p.err == nil {
		p.err = fmt.Errorf("produce to %s key %q: %w", r.Topic, r.Key, err)
	}
	p.mu.Unlock()
}

// Err returns the first delivery error seen, if any.
func (p *Producer) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Flush waits until every produced record is acknowledged or failed, and
// returns the first delivery error.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush producer: %w", err)
	}
	return p.Err()
}

// RunOptions configures Run.
type RunOptions struct {
	// Count is the number of stream changes after the initial catalog;
	// 0 produces until ctx ends, a negative Count produces none (only the
	// initial catalog).
	Count int
	// Rate limits stream changes per second; 0 is as fast as possible.
	// The initial catalog is not rate limited.
	Rate float64
	// Initial produces the whole catalog (Generator.Initial) first.
	Initial bool
	// Progress, when set, is called about once a second with the number of
	// records sent so far and the send rate (records per second) since the
	// previous call, and once at the end.
	Progress func(sent int, rate float64)
}

// flushTimeout bounds the final flush of Run after ctx ends.
const flushTimeout = 10 * time.Second

// Run produces g's initial catalog (when o.Initial) and then o.Count
// stream changes (or until ctx ends), then flushes. It returns nil when
// every record was delivered or ctx ended, and the first produce or
// delivery error otherwise. Records already handed to the client when ctx
// ends are still flushed (for at most flushTimeout).
func (p *Producer) Run(ctx context.Context, g *Generator, o RunOptions) error {
	// Records outlive ctx so a cancelled run still delivers what it sent.
	sendCtx := context.WithoutCancel(ctx)
	var lim *rate.Limiter
	if o.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(o.Rate), max(1, int(o.Rate/10)))
	}
	sent, lastSent := 0, 0
	last := time.Now()
	report := func(force bool) {
		if o.Progress == nil {
			return
		}
		now := time.Now()
		el := now.Sub(last)
		if !force && el < time.Second {
			return
		}
		r := 0.0
		if el > 0 {
			r = float64(sent-lastSent) / el.Seconds()
		}
		o.Progress(sent, r)
		last, lastSent = now, sent
	}
	send := func(ch Change) error {
		if err := p.Produce(sendCtx, ch); err != nil {
			return err
		}
		sent++
		report(false)
		return nil
	}

	err := p.run(ctx, g, o, lim, send)
	fctx, cancel := context.WithTimeout(sendCtx, flushTimeout)
	defer cancel()
	ferr := p.Flush(fctx)
	report(true)
	switch {
	case err != nil && ctx.Err() == nil:
		return err
	case ferr != nil:
		return ferr
	}
	return nil
}

func (p *Producer) run(ctx context.Context, g *Generator, o RunOptions, lim *rate.Limiter, send func(Change) error) error {
	if o.Initial {
		err := g.Initial(func(ch Change) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return send(ch)
		})
		if err != nil {
			return err
		}
	}
	if o.Count < 0 {
		return nil
	}
	for i := 0; o.Count == 0 || i < o.Count; i++ {
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				return err
			}
		} else if err := ctx.Err(); err != nil {
			return err
		}
		if err := send(g.Next()); err != nil {
			return err
		}
	}
	return nil
}
