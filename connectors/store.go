package connectors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/internal/records"
)

// offerState is what the connector remembers of one offer: the seq of the
// last event it applied and the (feed, destination) pairs of its own
// destinations the offer is in, sorted.
type offerState struct {
	known bool // a record exists in the store
	seq   int64
	feeds []records.FeedEntry // Action unused
}

// member reports whether the offer is in at least one of the feeds.
func (s *offerState) member() bool { return len(s.feeds) > 0 }

// apply applies one entry to the membership: REMOVE leaves the feed, every
// other action (ADD, UPDATE, REFRESH) means the offer is in it.
func (s *offerState) apply(e records.FeedEntry) {
	i, found := slices.BinarySearchFunc(s.feeds, e, cmpPair)
	if e.Action == records.ActionRemove {
		if found {
			s.feeds = slices.Delete(s.feeds, i, i+1)
		}
		return
	}
	if !found {
		s.feeds = slices.Insert(s.feeds, i, records.FeedEntry{FeedID: e.FeedID, Destination: e.Destination})
	}
}

func cmpPair(a, b records.FeedEntry) int {
	if c := strings.Compare(a.FeedID, b.FeedID); c != 0 {
		return c
	}
	return strings.Compare(a.Destination, b.Destination)
}

// pebbleLogger routes Pebble's messages to zap: its routine notes at
// debug level, errors at error level.
type pebbleLogger struct{ s *zap.SugaredLogger }

func (l pebbleLogger) Infof(format string, args ...any)  { l.s.Debugf(format, args...) }
func (l pebbleLogger) Errorf(format string, args ...any) { l.s.Errorf(format, args...) }
func (l pebbleLogger) Fatalf(format string, args ...any) { l.s.Fatalf(format, args...) }

// store keeps offerState per offer in Pebble under the state directory.
type store struct {
	db *pebble.DB
}

func openStore(dir string, log *zap.Logger) (*store, error) {
	if dir == "" {
		return nil, errors.New("state_dir: empty")
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{log.Sugar()}})
	if err != nil {
		return nil, fmt.Errorf("open connector state %s: %w", dir, err)
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

func stateKey(dst []byte, offerID string) []byte {
	dst = append(dst, 's')
	return append(dst, offerID...)
}

// get loads the state of offerID into dst (reusing dst.feeds).
func (s *store) get(key []byte, dst *offerState) error {
	dst.known, dst.seq, dst.feeds = false, 0, dst.feeds[:0]
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read offer state: %w", err)
	}
	defer closer.Close()
	if err := decodeState(v, dst); err != nil {
		return fmt.Errorf("offer state %q: %w", key[1:], err)
	}
	return nil
}

var errCorruptState = errors.New("corrupt connector state")

func appendState(dst []byte, st *offerState) []byte {
	dst = binary.AppendVarint(dst, st.seq)
	dst = binary.AppendUvarint(dst, uint64(len(st.feeds)))
	for _, f := range st.feeds {
		dst = binary.AppendUvarint(dst, uint64(len(f.FeedID)))
		dst = append(dst, f.FeedID...)
		dst = binary.AppendUvarint(dst, uint64(len(f.Destination)))
		dst = append(dst, f.Destination...)
	}
	return dst
}

func decodeState(v []byte, dst *offerState) error {
	seq, n := binary.Varint(v)
	if n <= 0 {
		return errCorruptState
	}
	v = v[n:]
	count, n := binary.Uvarint(v)
	if n <= 0 || count > uint64(len(v)) {
		return errCorruptState
	}
	v = v[n:]
	str := func() (string, bool) {
		l, n := binary.Uvarint(v)
		if n <= 0 || uint64(len(v)-n) < l {
			return "", false
		}
		s := string(v[n : n+int(l)])
		v = v[n+int(l):]
		return s, true
	}
	for range count {
		f, ok1 := str()
		d, ok2 := str()
		if !ok1 || !ok2 {
			return errCorruptState
		}
		dst.feeds = append(dst.feeds, records.FeedEntry{FeedID: f, Destination: d})
	}
	if len(v) != 0 {
		return errCorruptState
	}
	dst.known, dst.seq = true, seq
	return nil
}
