package records

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"golang.org/x/sync/singleflight"
)

// Reject reasons of the decoders. Reasons that name a schema id are built
// from these prefixes, e.g. "unknown schema id 42".
const (
	ReasonEmptyValue    = "empty value"
	ReasonShortValue    = "value shorter than the 5-byte wire-format header"
	ReasonBadMagic      = "bad magic byte"
	ReasonUnknownSchema = "unknown schema id"
	ReasonNotAvro       = "not an avro schema: id"
	ReasonBadWriter     = "unparsable writer schema id"
	ReasonIncompatible  = "incompatible writer schema id"
	ReasonUndecodable   = "undecodable avro body"
	ReasonTrailingBytes = "trailing bytes after avro body"
)

// DefaultUnknownSchemaTTL is how long a Serde remembers a registry's
// "schema not found" answer for an id by default. Within it, values
// naming the id are rejected without asking the registry again; after it,
// the next such value asks again, so a schema registered after a miss is
// found without a restart.
const DefaultUnknownSchemaTTL = 30 * time.Second

// SerdeOptions tunes a Serde. The zero value gives the defaults.
type SerdeOptions struct {
	// UnknownSchemaTTL is how long a "schema not found" answer is
	// remembered: 0 means DefaultUnknownSchemaTTL, a negative value
	// means it is not remembered at all. Any other answer about an id
	// (a schema, or a schema that is not Avro or does not parse) is kept
	// for the life of the Serde: ids are immutable in a registry.
	UnknownSchemaTTL time.Duration
	// Now is the clock the TTL is measured with; nil means time.Now.
	Now func() time.Time
}

const (
	headerLen            = 5
	maxCachedUnknownIDs  = 1024
	maxArrayElements     = 1 << 16
	maxStringOrBytesSize = 4 << 20
)

// Serde decodes and encodes the Confluent wire format (magic byte 0,
// big-endian schema id, Avro binary body) for feedmill's records, using a
// schema registry for writer schemas, and encodes the state form (Avro body
// of our own schema, no header).
//
// A Serde is safe for concurrent use. Writer schemas are fetched by id at
// most once (concurrent misses for one id share one request), resolved to
// feedmill's reader schema and cached for the life of the Serde; schema ids
// are immutable in a registry, so the cache is never invalidated. The one
// exception is an id the registry does not know (yet): that answer is
// remembered for SerdeOptions.UnknownSchemaTTL only.
type Serde struct {
	client     *sr.Client
	api        avro.API
	ours       *ourSchemas
	unknownTTL time.Duration // < 0: unknown ids are not remembered
	now        func() time.Time

	// resolved[kind] is a copy-on-write map schema id -> resolution, read
	// without locks on the hot path; writes hold mu.
	resolved [numKinds]atomic.Pointer[map[int]*resolution]

	mu         sync.Mutex
	writers    map[int]*writerSchema // guarded by mu
	unknownIDs int                   // guarded by mu: cached 404s
	fetches    singleflight.Group
	readerPool sync.Pool // *avro.Reader
	keysPool   sync.Pool // *[]string: attribute-key scratch of the encoders
}

// writerSchema is a fetched writer schema, or why it is unusable.
type writerSchema struct {
	schema avro.Schema
	reject *RejectError
	// expires is when an unknown-id answer stops being trusted; zero
	// for every answer that holds forever.
	expires time.Time
}

// resolution is the schema to decode one writer id into one kind, or why
// that is impossible.
type resolution struct {
	schema  avro.Schema
	reject  *RejectError
	expires time.Time // copied from the writerSchema
}

// expired reports whether an answer with expiry t must be asked again.
func (s *Serde) expired(t time.Time) bool {
	return !t.IsZero() && !s.now().Before(t)
}

// NewSerde returns a Serde that fetches writer schemas through client.
// client may be nil when only the state encoding (MarshalX/UnmarshalX) and
// the AppendX encoders are used; the wire decoders and Register then fail.
//
// NewSerde panics if the embedded schemas do not parse: that is a build
// defect caught by the package tests, never a runtime condition.
func NewSerde(client *sr.Client) *Serde {
	return NewSerdeWith(client, SerdeOptions{})
}

// NewSerdeWith is NewSerde with options.
func NewSerdeWith(client *sr.Client, opts SerdeOptions) *Serde {
	if opts.UnknownSchemaTTL == 0 {
		opts.UnknownSchemaTTL = DefaultUnknownSchemaTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ours, err := parseSchemas()
	if err != nil {
		panic("records: embedded schemas: " + err.Error())
	}
	api := avro.Config{
		TagKey:            "avro",
		MaxByteSliceSize:  maxStringOrBytesSize,
		MaxSliceAllocSize: maxArrayElements,
	}.Freeze()
	s := &Serde{
		client:     client,
		api:        api,
		ours:       ours,
		unknownTTL: opts.UnknownSchemaTTL,
		now:        opts.Now,
		writers:    make(map[int]*writerSchema),
	}
	s.readerPool.New = func() any { return avro.NewReader(nil, 0, avro.WithReaderConfig(api)) }
	s.keysPool.New = func() any { return new([]string) }
	return s
}

// DecodeOffer decodes a wire-format value into dst (overwriting all of it)
// and sets dst.Price. dst does not retain value. Errors: *RejectError when
// the value is the record's fault; any other error (registry unreachable,
// ctx done) must be retried. Safe for concurrent use with distinct dst.
func (s *Serde) DecodeOffer(ctx context.Context, value []byte, dst *Offer) error {
	*dst = Offer{}
	if err := s.decode(ctx, KindOffer, value, dst); err != nil {
		return err
	}
	DerivePrice(dst)
	return nil
}

// DecodeSeller is DecodeOffer for a Seller.
func (s *Serde) DecodeSeller(ctx context.Context, value []byte, dst *Seller) error {
	*dst = Seller{}
	return s.decode(ctx, KindSeller, value, dst)
}

// DecodeRating is DecodeOffer for a Rating.
func (s *Serde) DecodeRating(ctx context.Context, value []byte, dst *Rating) error {
	*dst = Rating{}
	return s.decode(ctx, KindRating, value, dst)
}

// DecodeFeedEvent is DecodeOffer for a FeedEvent; it sets the Price of the
// embedded offer when there is one.
func (s *Serde) DecodeFeedEvent(ctx context.Context, value []byte, dst *FeedEvent) error {
	*dst = FeedEvent{}
	if err := s.decode(ctx, KindFeedEvent, value, dst); err != nil {
		return err
	}
	if dst.Offer != nil {
		DerivePrice(&dst.Offer.Offer)
	}
	return nil
}

func (s *Serde) decode(ctx context.Context, kind Kind, value []byte, dst any) error {
	if len(value) == 0 {
		return reject(ReasonEmptyValue, nil)
	}
	if len(value) < headerLen {
		return reject(ReasonShortValue, nil)
	}
	if value[0] != 0 {
		return reject(ReasonBadMagic+" "+strconv.Itoa(int(value[0])), nil)
	}
	id := int(binary.BigEndian.Uint32(value[1:headerLen]))
	res, err := s.resolve(ctx, kind, id)
	if err != nil {
		return err
	}
	return s.unmarshal(res.schema, value[headerLen:], dst)
}

// resolve returns the resolution of writer id for kind: a lock-free map
// lookup once the id has been seen.
func (s *Serde) resolve(ctx context.Context, kind Kind, id int) (*resolution, error) {
	if m := s.resolved[kind].Load(); m != nil {
		if r, ok := (*m)[id]; ok {
			switch {
			case r.reject == nil:
				return r, nil
			case !s.expired(r.expires):
				return nil, r.reject
			}
			// An unknown id whose answer has expired: ask again.
		}
	}
	return s.resolveSlow(ctx, kind, id)
}

func (s *Serde) resolveSlow(ctx context.Context, kind Kind, id int) (*resolution, error) {
	w, err := s.writerSchema(ctx, id)
	if err != nil {
		return nil, err
	}
	r := &resolution{reject: w.reject, expires: w.expires}
	if w.schema != nil {
		reader := s.ours.parsed[kind]
		if w.schema.Fingerprint() == reader.Fingerprint() {
			r.schema = reader
		} else {
			rs, err := avro.NewSchemaCompatibility().Resolve(reader, w.schema)
			if err != nil {
				r.reject = reject(ReasonIncompatible+" "+strconv.Itoa(id)+" for "+kind.String(), err)
			} else {
				r.schema = rs
			}
		}
	}
	s.mu.Lock()
	old := s.resolved[kind].Load()
	next := make(map[int]*resolution, 1+lenMap(old))
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[id] = r
	s.resolved[kind].Store(&next)
	s.mu.Unlock()
	if r.reject != nil {
		return nil, r.reject
	}
	return r, nil
}

func lenMap(m *map[int]*resolution) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// cachedWriter returns the cached answer about id, dropping an expired
// unknown-id answer.
func (s *Serde) cachedWriter(id int) (*writerSchema, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.writers[id]
	if ok && s.expired(w.expires) {
		delete(s.writers, id)
		s.unknownIDs--
		return nil, false
	}
	return w, ok
}

// writerSchema returns the parsed writer schema of id, fetching it once
// (or again once an unknown-id answer has expired).
func (s *Serde) writerSchema(ctx context.Context, id int) (*writerSchema, error) {
	if w, ok := s.cachedWriter(id); ok {
		return w, nil
	}
	if s.client == nil {
		return nil, fmt.Errorf("fetch schema id %d: no schema registry client", id)
	}
	ch := s.fetches.DoChan(strconv.Itoa(id), func() (any, error) {
		return s.fetch(ctx, id)
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("fetch schema id %d: %w", id, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*writerSchema), nil
	}
}

// fetch asks the registry for id and caches the answer unless it is a
// transient failure; an unknown id is cached for unknownTTL. It runs once
// per id at a time (singleflight).
func (s *Serde) fetch(ctx context.Context, id int) (*writerSchema, error) {
	if w, ok := s.cachedWriter(id); ok {
		return w, nil
	}
	sch, err := s.client.SchemaByID(ctx, id)
	w := &writerSchema{}
	switch {
	case isSchemaNotFound(err):
		w.reject = reject(ReasonUnknownSchema+" "+strconv.Itoa(id), nil)
		w.expires = s.now().Add(s.unknownTTL)
		if s.unknownTTL < 0 {
			return w, nil // already expired: not worth a cache slot
		}
	case err != nil:
		return nil, fmt.Errorf("fetch schema id %d: %w", id, err)
	case sch.Type != sr.TypeAvro:
		w.reject = reject(ReasonNotAvro+" "+strconv.Itoa(id), nil)
	default:
		// A private cache: the writer's named types must not leak into, or
		// be taken from, any other parse.
		parsed, perr := avro.ParseWithCache(sch.Schema, "", &avro.SchemaCache{})
		if perr != nil {
			w.reject = reject(ReasonBadWriter+" "+strconv.Itoa(id), perr)
		} else {
			w.schema = parsed
		}
	}
	s.mu.Lock()
	if w.schema != nil || s.unknownIDs < maxCachedUnknownIDs {
		if w.schema == nil {
			s.unknownIDs++
		}
		s.writers[id] = w
	}
	s.mu.Unlock()
	return w, nil
}

// isSchemaNotFound reports a registry's definite "no such schema" answer
// (HTTP 404 with error code 40403). A bare 404 (wrong URL, proxy) is not
// treated as one: rejecting every record because of a misconfiguration
// would move all data to the rejects topic.
func isSchemaNotFound(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound &&
		re.ErrorCode == sr.ErrSchemaNotFound.Code
}

// unmarshal decodes body with schema into dst (a pointer to one of our
// record types), rejecting a body that is short, malformed or followed by
// trailing bytes.
func (s *Serde) unmarshal(schema avro.Schema, body []byte, dst any) (err error) {
	r := s.readerPool.Get().(*avro.Reader)
	r.Reset(body)
	r.Error = nil
	defer func() {
		// hamba/avro can panic on some hostile inputs (e.g. a negative
		// array block count overflowing its size check). A value that
		// crashes the decoder is the record's fault: reject it.
		if p := recover(); p != nil {
			err = reject(ReasonUndecodable, fmt.Errorf("decoder panic: %v", p))
		}
		r.Reset(nil)
		r.Error = nil
		s.readerPool.Put(r)
	}()
	r.ReadVal(schema, dst)
	if r.Error != nil {
		// Unlike avro.Unmarshal, io.EOF is not success here: hamba reports
		// a body that ends inside a value as io.EOF.
		return reject(ReasonUndecodable, r.Error)
	}
	r.Peek()
	if r.Error == nil {
		return reject(ReasonTrailingBytes, nil)
	}
	return nil
}

// Register registers feedmill's schema for kind under subject and returns
// its id. Registering the same schema again returns the same id. The id is
// remembered, so decoding values written with it needs no fetch. Errors are
// the registry's; none is a *RejectError. Safe for concurrent use.
func (s *Serde) Register(ctx context.Context, subject string, kind Kind) (int, error) {
	if kind >= numKinds {
		return 0, fmt.Errorf("register schema under %q: unknown kind %d", subject, kind)
	}
	if s.client == nil {
		return 0, fmt.Errorf("register %s under %q: no schema registry client", kind, subject)
	}
	id, err := s.client.RegisterSchema(ctx, subject, sr.Schema{
		Schema: s.ours.text[kind],
		Type:   sr.TypeAvro,
	}, -1, -1)
	if err != nil {
		return 0, fmt.Errorf("register %s under %q: %w", kind, subject, err)
	}
	s.mu.Lock()
	if w, ok := s.writers[id]; !ok || w.schema == nil {
		if ok {
			s.unknownIDs-- // a cached unusable answer, counted as such
		}
		s.writers[id] = &writerSchema{schema: s.ours.parsed[kind]}
		// A resolution cached while the id was unknown must not outlive
		// the registration.
		for k := range s.resolved {
			if m := s.resolved[k].Load(); m != nil {
				if r, ok := (*m)[id]; ok && r.schema == nil {
					next := make(map[int]*resolution, len(*m))
					for i, v := range *m {
						if i != id {
							next[i] = v
						}
					}
					s.resolved[k].Store(&next)
				}
			}
		}
	}
	s.mu.Unlock()
	return id, nil
}

// AppendOffer appends the wire form of o (header with schemaID, then the
// Avro body of feedmill's Offer schema) to dst and returns the extended
// slice. On error dst is returned unchanged in length. o is only read. Safe
// for concurrent use; the caller owns dst and the result. The encoding is
// deterministic: attributes are written in key order.
func (s *Serde) AppendOffer(dst []byte, schemaID int, o *Offer) ([]byte, error) {
	n := len(dst)
	dst, err := appendHeader(dst, schemaID)
	if err != nil {
		return dst, fmt.Errorf("encode %s: %w", KindOffer, err)
	}
	out, err := s.MarshalOffer(dst, o)
	if err != nil {
		return dst[:n], err
	}
	return out, nil
}

// AppendSeller is AppendOffer for a Seller.
func (s *Serde) AppendSeller(dst []byte, schemaID int, v *Seller) ([]byte, error) {
	n := len(dst)
	dst, err := appendHeader(dst, schemaID)
	if err != nil {
		return dst, fmt.Errorf("encode %s: %w", KindSeller, err)
	}
	out, err := s.MarshalSeller(dst, v)
	if err != nil {
		return dst[:n], err
	}
	return out, nil
}

// AppendRating is AppendOffer for a Rating.
func (s *Serde) AppendRating(dst []byte, schemaID int, v *Rating) ([]byte, error) {
	dst, err := appendHeader(dst, schemaID)
	if err != nil {
		return dst, fmt.Errorf("encode %s: %w", KindRating, err)
	}
	return appendRating(dst, v), nil
}

// AppendFeedEvent is AppendOffer for a FeedEvent.
func (s *Serde) AppendFeedEvent(dst []byte, schemaID int, v *FeedEvent) ([]byte, error) {
	n := len(dst)
	dst, err := appendHeader(dst, schemaID)
	if err != nil {
		return dst, fmt.Errorf("encode %s: %w", KindFeedEvent, err)
	}
	kp := s.keysPool.Get().(*[]string)
	out, keys, err := appendFeedEvent(dst, v, *kp)
	*kp = keys
	s.keysPool.Put(kp)
	if err != nil {
		return dst[:n], fmt.Errorf("encode %s: %w", KindFeedEvent, err)
	}
	return out, nil
}

func appendHeader(dst []byte, schemaID int) ([]byte, error) {
	if schemaID < 0 || schemaID > math.MaxUint32 {
		return dst, errSchemaIDRange
	}
	return append(dst, 0, byte(schemaID>>24), byte(schemaID>>16), byte(schemaID>>8), byte(schemaID)), nil
}

var errSchemaIDRange = errors.New("schema id out of range")
