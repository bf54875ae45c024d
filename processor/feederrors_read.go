package processor

import (
	dto "github.com/prometheus/client_model/go"

	"github.com/feedmill/feedmill/feeds"
)

// FeedErrors returns this instance's feedmill_feed_errors_total of the
// feed by kind ("filter", "template", "budget"): the run-time failures of
// its evaluations since the process started, by the pipeline and the full
// passes (what has been synced to the metric; see evalErrors). Every kind
// is present. It reads the metric, whatever feed set is in force: the
// series of each feed exists from when its set was put in force, and
// another id's is created at 0. Safe for concurrent use.
func (p *Pipeline) FeedErrors(feedID string) map[string]float64 {
	out := make(map[string]float64, feeds.NumErrorKinds)
	for k := range feeds.NumErrorKinds {
		kind := feeds.ErrorKind(k).String()
		var m dto.Metric
		if err := p.metrics.feedErrors.WithLabelValues(feedID, kind).Write(&m); err != nil {
			// A counter's Write fails only for a bad exemplar, which
			// these never carry; report the kind as 0 then.
			out[kind] = 0
			continue
		}
		out[kind] = m.GetCounter().GetValue()
	}
	return out
}
