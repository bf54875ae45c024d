package records_test

import (
	"testing"

	"github.com/feedmill/feedmill/internal/records"
)

// header is a record header type of its own, as kgo.RecordHeader and
// state.Header are.
type header struct {
	Key   string
	Value []byte
}

func TestAppendRejectHeaders(t *testing.T) {
	dst := []header{{Key: "keep", Value: []byte("me")}}
	got := records.AppendRejectHeaders(dst, "decode offer: bad magic", "offers", 3, 42)
	want := []header{
		{"keep", []byte("me")},
		{records.HeaderError, []byte("decode offer: bad magic")},
		{records.HeaderSourceTopic, []byte("offers")},
		{records.HeaderSourcePartition, []byte("3")},
		{records.HeaderSourceOffset, []byte("42")},
	}
	if len(got) != len(want) {
		t.Fatalf("%d headers, want %d: %q", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Key != want[i].Key || string(got[i].Value) != string(want[i].Value) {
			t.Errorf("header %d = %s=%q, want %s=%q", i, got[i].Key, got[i].Value, want[i].Key, want[i].Value)
		}
	}
	if want := []string{"error", "source-topic", "source-partition", "source-offset"}; records.HeaderError != want[0] ||
		records.HeaderSourceTopic != want[1] || records.HeaderSourcePartition != want[2] || records.HeaderSourceOffset != want[3] {
		t.Errorf("header names differ from docs/contract.md, Topics: %v", want)
	}
}
