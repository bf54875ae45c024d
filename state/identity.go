package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// FormatVersion is the version of the key layout and value encodings this
// build reads and writes. A state dir written with another version is
// refused (IdentityMismatchError) rather than misread.
const FormatVersion = 2

// Identity says what a state dir belongs to: the state only means
// something for the cluster, group, topics and partition counts it was
// built from (offer keys carry the offers partition).
type Identity struct {
	FormatVersion int    `json:"format_version"`
	ClusterID     string `json:"cluster_id"`
	GroupID       string `json:"group_id"`
	// Topics maps a role (offers, sellers, ratings, events, rejects) to
	// the topic name.
	Topics map[string]string `json:"topics"`
	// Partitions maps each input topic's role to its partition count.
	Partitions map[string]int32 `json:"partitions"`
}

// IdentityMismatchError is returned by CheckIdentity when the state dir
// belongs to something else. Differences lists each differing fact as
// "what: stored X, now Y".
type IdentityMismatchError struct {
	Dir         string
	Differences []string
}

func (e *IdentityMismatchError) Error() string {
	return fmt.Sprintf("state dir %q was built for another configuration (%s); "+
		"point state.dir at an empty directory to rebuild the state from the topics, "+
		"or restore the configuration it was built for",
		e.Dir, strings.Join(e.Differences, "; "))
}

var identityKey = []byte{prefixMeta, 'i'}

// CheckIdentity compares want with the identity stored in the state dir.
// A state dir without one is stamped with want: when it is empty, and when
// it was written by a build that did not stamp state dirs (same format).
// dir names the state dir in the error.
func (s *Store) CheckIdentity(dir string, want Identity) error {
	var have Identity
	found, err := s.get(identityKey, func(v []byte) error { return json.Unmarshal(v, &have) })
	if err != nil {
		return fmt.Errorf("read state identity: %w", err)
	}
	if !found {
		b, err := json.Marshal(want)
		if err != nil {
			return fmt.Errorf("encode state identity: %w", err)
		}
		if err := s.db.Set(identityKey, b, pebble.Sync); err != nil {
			return fmt.Errorf("stamp state identity: %w", err)
		}
		return nil
	}
	if d := have.diff(want); len(d) > 0 {
		return &IdentityMismatchError{Dir: dir, Differences: d}
	}
	return nil
}

// Identity returns the stored identity (ok false when none is stored).
func (s *Store) Identity() (id Identity, ok bool, err error) {
	ok, err = s.get(identityKey, func(v []byte) error { return json.Unmarshal(v, &id) })
	return id, ok, err
}

// ErrIdentity matches an *IdentityMismatchError with errors.Is.
var ErrIdentity = errors.New("state dir identity mismatch")

// Is makes errors.Is(err, ErrIdentity) true.
func (e *IdentityMismatchError) Is(target error) bool { return target == ErrIdentity }

func (have Identity) diff(want Identity) []string {
	var out []string
	add := func(what string, h, w any) { out = append(out, fmt.Sprintf("%s: stored %v, now %v", what, h, w)) }
	if have.FormatVersion != want.FormatVersion {
		add("state format version", have.FormatVersion, want.FormatVersion)
	}
	if have.ClusterID != want.ClusterID {
		add("Kafka cluster id", quote(have.ClusterID), quote(want.ClusterID))
	}
	if have.GroupID != want.GroupID {
		add("kafka.group_id", quote(have.GroupID), quote(want.GroupID))
	}
	for _, role := range roles(have.Topics, want.Topics) {
		if have.Topics[role] != want.Topics[role] {
			add("kafka.topics."+role, quote(have.Topics[role]), quote(want.Topics[role]))
		}
	}
	for _, role := range roles(have.Partitions, want.Partitions) {
		if have.Partitions[role] != want.Partitions[role] {
			add("partitions of "+role+" topic", have.Partitions[role], want.Partitions[role])
		}
	}
	return out
}

// roles returns the keys of a and b, sorted.
func roles[V any](a, b map[string]V) []string {
	out := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

var instanceKey = []byte{prefixMeta, 'n'}

// InstanceID returns the consumer group instance id stored in the state
// dir, storing newID() on first use. The id belongs to the state: a
// process restarted on the same dir rejoins the group as the same static
// member and gets its partitions back at once.
func (s *Store) InstanceID(newID func() string) (string, error) {
	var id string
	found, err := s.get(instanceKey, func(v []byte) error { id = string(v); return nil })
	if err != nil {
		return "", fmt.Errorf("read instance id: %w", err)
	}
	if found {
		return id, nil
	}
	id = newID()
	if err := s.db.Set(instanceKey, []byte(id), pebble.Sync); err != nil {
		return "", fmt.Errorf("store instance id: %w", err)
	}
	return id, nil
}
