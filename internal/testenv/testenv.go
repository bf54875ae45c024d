package testenv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/feedmill/feedmill/internal/devstack"
)

// Partitions is the partition count of topics New creates.
const Partitions int32 = 4

// setupTimeout bounds each administrative call testenv makes.
const setupTimeout = 30 * time.Second

// Env is a running broker and registry for one test. Its methods may be
// called from several goroutines.
type Env struct {
	Stack       *devstack.Stack
	Brokers     []string
	RegistryURL string
}

// New starts an in-memory devstack with topics created (Partitions
// partitions each) and closes it when the test ends. It fails the test on
// any start-up error.
func New(t testing.TB, topics ...string) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	s, err := devstack.Start(ctx, devstack.Options{Partitions: Partitions, Topics: topics})
	if err != nil {
		t.Fatalf("testenv: start devstack: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("testenv: close devstack: %v", err)
		}
	})
	return &Env{Stack: s, Brokers: s.Brokers(), RegistryURL: s.RegistryURL()}
}

// Client returns a kgo client seeded with the env's brokers plus opts,
// closed when the test ends.
func (e *Env) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := append([]kgo.Opt{kgo.SeedBrokers(e.Brokers...)}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		t.Fatalf("testenv: new kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Registry returns a schema registry client for the env's registry.
func (e *Env) Registry(t testing.TB) *sr.Client {
	t.Helper()
	rc, err := sr.NewClient(sr.URLs(e.RegistryURL))
	if err != nil {
		t.Fatalf("testenv: new registry client: %v", err)
	}
	return rc
}

// CreateTopic creates topics with the given partition count; a topic that
// already exists is not an error.
func (e *Env) CreateTopic(t testing.TB, partitions int32, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Brokers...))
	if err != nil {
		t.Fatalf("testenv: new admin client: %v", err)
	}
	defer cl.Close()
	resps, err := kadm.NewClient(cl).CreateTopics(ctx, partitions, 1, nil, topics...)
	if err != nil {
		t.Fatalf("testenv: create topics %v: %v", topics, err)
	}
	for _, r := range resps.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			t.Fatalf("testenv: create topic %q: %v", r.Topic, r.Err)
		}
	}
}
