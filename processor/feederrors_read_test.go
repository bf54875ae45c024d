package processor

import (
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestPipelineFeedErrors(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	p := &Pipeline{metrics: m}
	m.feedErrors.WithLabelValues("phones", "filter").Add(3)
	m.feedErrors.WithLabelValues("phones", "budget").Add(1)
	m.feedErrors.WithLabelValues("other", "template").Add(5)
	tests := []struct {
		feed string
		want map[string]float64
	}{
		{"phones", map[string]float64{"filter": 3, "template": 0, "budget": 1}},
		{"other", map[string]float64{"filter": 0, "template": 5, "budget": 0}},
		{"unknown", map[string]float64{"filter": 0, "template": 0, "budget": 0}},
	}
	for _, tc := range tests {
		if got := p.FeedErrors(tc.feed); !maps.Equal(got, tc.want) {
			t.Errorf("FeedErrors(%q) = %v, want %v", tc.feed, got, tc.want)
		}
	}
}
