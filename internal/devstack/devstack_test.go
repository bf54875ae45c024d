package devstack

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
)

const testSchema = `{"type":"record","name":"T","namespace":"feedmill.test","fields":[{"name":"id","type":"string"}]}`

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStartIsLoopback(t *testing.T) {
	ctx := testCtx(t)
	s, err := Start(ctx, Options{Topics: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })

	for _, b := range s.Brokers() {
		host, _, err := net.SplitHostPort(b)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("broker %q is not on 127.0.0.1 (%v)", b, err)
		}
	}
	if !strings.HasPrefix(s.RegistryURL(), "http://127.0.0.1:") {
		t.Fatalf("registry url %q is not loopback", s.RegistryURL())
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	details, err := kadm.NewClient(cl).ListTopics(ctx, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range []string{"a", "b"} {
		if n := len(details[tp].Partitions); n != int(DefaultPartitions) {
			t.Fatalf("topic %s has %d partitions, want %d", tp, n, DefaultPartitions)
		}
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()

	s, err := Start(ctx, Options{DataDir: dir, Topics: []string{"offers"}, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := sr.NewClient(sr.URLs(s.RegistryURL()))
	if err != nil {
		t.Fatal(err)
	}
	// Register an unrelated schema first so the id under test is not 1.
	if _, err := rc.CreateSchema(ctx, "other-value", sr.Schema{Schema: `"string"`}); err != nil {
		t.Fatal(err)
	}
	ss, err := rc.CreateSchema(ctx, "offers-value", sr.Schema{Schema: testSchema})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "offers", Key: []byte("k1"), Value: []byte("v1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := Start(ctx, Options{DataDir: dir, Topics: []string{"offers", "sellers"}, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Close() })

	rc2, err := sr.NewClient(sr.URLs(s2.RegistryURL()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := rc2.SchemaByVersion(ctx, "offers-value", -1)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != ss.ID || got.Version != ss.Version {
		t.Fatalf("after restart schema id/version = %d/%d, want %d/%d", got.ID, got.Version, ss.ID, ss.Version)
	}
	// A new registration gets a fresh id, not a reused one.
	ns, err := rc2.CreateSchema(ctx, "sellers-value", sr.Schema{Schema: `"long"`})
	if err != nil {
		t.Fatal(err)
	}
	if ns.ID <= ss.ID {
		t.Fatalf("new schema id %d not above restored id %d", ns.ID, ss.ID)
	}

	cl2, err := kgo.NewClient(
		kgo.SeedBrokers(s2.Brokers()...),
		kgo.ConsumeTopics("offers"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	fs := cl2.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 || string(recs[0].Key) != "k1" || string(recs[0].Value) != "v1" {
		t.Fatalf("after restart got %d records, want the one produced", len(recs))
	}
	details, err := kadm.NewClient(cl2).ListTopics(ctx, "sellers")
	if err != nil {
		t.Fatal(err)
	}
	if !details.Has("sellers") {
		t.Fatal("missing topic not created on restart")
	}
}
