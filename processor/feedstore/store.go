package feedstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// URLs
	_ "gocloud.dev/blob/gcsblob"  // gs:// URLs
	_ "gocloud.dev/blob/s3blob"   // s3:// URLs
	"gocloud.dev/gcerrors"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/feedmill/feedmill/feeds"
)

// DefaultChunkWriteTimeout is Store.ChunkWriteTimeout's default.
const DefaultChunkWriteTimeout = 30 * time.Second

// DefaultPartBufferBytes is Store.PartBufferBytes's default.
// 32 MiB holds 25 KiB for each of 1300 feeds filling at once, where the
// fragments are as small as with fewer feeds (BenchmarkPartWriter: 148
// bytes/item; 154 with 16 MiB, 177 with 8 MiB).
const DefaultPartBufferBytes = 32 << 20

// storeConcurrency bounds the store requests one call makes at once
// (part manifests read, feed manifests written or read).
const storeConcurrency = 16

// openTimeout bounds the access check of Open.
const openTimeout = 30 * time.Second

// Errors callers may branch on (errors.Is).
var (
	// ErrPartMissing: Publish found no part manifest (or no pack of the
	// recorded size) for a PartRef.
	ErrPartMissing = errors.New("feed store: part missing")
	// ErrNotPublished: the feed has no manifest yet.
	ErrNotPublished = errors.New("feed store: feed not published")
)

// Store keeps the feed documents in one blob bucket (doc.go has the
// layout). Safe for concurrent use; set the exported fields before use.
type Store struct {
	// ChunkWriteTimeout bounds the write of each chunk (64 KiB) of a
	// served document, so a client that stops reading releases its
	// handler while a slow but steady one still gets a feed of any size
	// (the server's WriteTimeout stays 0). Open sets
	// DefaultChunkWriteTimeout; change it before Register only.
	ChunkWriteTimeout time.Duration
	// PartBufferBytes bounds the raw item memory of one PartWriter (all
	// its feeds together, in 4 KiB pages; at least one page): a feed is
	// compressed when it holds 32 KiB, or earlier, the largest first,
	// when the pages run out (smaller fragments: a little more stored).
	// Open sets DefaultPartBufferBytes; change it before NewPartWriter
	// only.
	PartBufferBytes int
	// CompressionLevel of the stored deflate fragments, 1 (fastest) to 9
	// (smallest): DefaultCompressionLevel unless set before writing.
	CompressionLevel int

	bucket  *blob.Bucket
	where   string // the URL, redacted, for messages
	fileDir string // the directory of a file:// store, else ""
	spool   string
	set     atomic.Pointer[feeds.Set] // the feed set in force (SetFeeds)
	logger  *zap.Logger

	publishMu sync.Mutex     // one Publish at a time in this process
	serveLog  rate.Sometimes // store errors while serving: at most one log line per interval
}

// Open opens the store at rawURL:
//
//   - file:///abs/dir: a local directory, created if missing;
//   - s3://bucket?region=R&endpoint=E&use_path_style=true: S3 or any
//     S3-compatible store; credentials the usual AWS way (AWS_ACCESS_KEY_ID
//     and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role);
//   - gs://bucket: Google Cloud Storage; credentials the usual Google way
//     (GOOGLE_APPLICATION_CREDENTIALS, workload identity).
//
// Buckets are never created; Open lists the bucket once so a wrong URL,
// bucket or credential fails here with a message saying what to check.
// spoolDir holds the writers' temporary files (created if missing; spool
// files a previous process left are removed). set gives the file feeds.
func Open(ctx context.Context, rawURL, spoolDir string, set *feeds.Set, logger *zap.Logger) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil || rawURL == "" {
		return nil, fmt.Errorf("feed store URL %q: want file:///abs/dir, s3://bucket?region=... or gs://bucket", rawURL)
	}
	where := u.Redacted()
	s := &Store{
		ChunkWriteTimeout: DefaultChunkWriteTimeout,
		PartBufferBytes:   DefaultPartBufferBytes,
		CompressionLevel:  DefaultCompressionLevel,
		where:             where,
		spool:             spoolDir,
		logger:            logger.Named("feedstore"),
		serveLog:          rate.Sometimes{Interval: 10 * time.Second},
	}
	s.set.Store(set)
	hint := ""
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" || !filepath.IsAbs(u.Path) {
			return nil, fmt.Errorf("feed store %s: a file URL needs an absolute path: file:///abs/dir", where)
		}
		s.fileDir = filepath.Clean(u.Path)
		if err := os.MkdirAll(s.fileDir, 0o755); err != nil {
			return nil, fmt.Errorf("feed store %s: %w", where, err)
		}
		q := u.Query()
		// Temporary files beside the objects (the state dir is often
		// another file system than os.TempDir, and rename does not cross
		// file systems); no attribute side files (serving sets its own
		// headers).
		if !q.Has("no_tmp_dir") {
			q.Set("no_tmp_dir", "true")
		}
		if !q.Has("metadata") {
			q.Set("metadata", "skip")
		}
		u.RawQuery = q.Encode()
	case "s3":
		hint = "check the bucket name, region and endpoint (an S3-compatible store such as MinIO needs endpoint=http://host:port&use_path_style=true) " +
			"and that the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role) may list, read, write and delete objects in it; buckets are not created"
	case "gs":
		hint = "check the bucket name and that the Google credentials (GOOGLE_APPLICATION_CREDENTIALS or the workload identity) may list, read, write and delete objects in it; buckets are not created"
	default:
		return nil, fmt.Errorf("feed store %s: unsupported scheme %q: want file:///abs/dir, s3://bucket?region=... or gs://bucket", where, u.Scheme)
	}
	if err := os.MkdirAll(spoolDir, 0o755); err != nil {
		return nil, fmt.Errorf("feed store spool dir: %w", err)
	}
	if err := removeSpools(spoolDir); err != nil {
		return nil, err
	}
	octx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	b, err := blob.OpenBucket(octx, u.String())
	if err != nil {
		return nil, fmt.Errorf("feed store %s: %w", where, withHint(err, hint))
	}
	if _, _, err := b.ListPage(octx, blob.FirstPageToken, 1, &blob.ListOptions{Prefix: feedsPrefix}); err != nil {
		_ = b.Close() // the open already failed
		return nil, fmt.Errorf("feed store %s: list objects: %w", where, withHint(err, hint))
	}
	s.bucket = b
	return s, nil
}

func withHint(err error, hint string) error {
	if hint == "" {
		return err
	}
	return fmt.Errorf("%w (%s)", err, hint)
}

// Close closes the bucket. Writers and requests must be done.
func (s *Store) Close() error {
	if err := s.bucket.Close(); err != nil {
		return fmt.Errorf("close feed store %s: %w", s.where, err)
	}
	return nil
}

const (
	runsPrefix   = "runs/"
	feedsPrefix  = "feeds/"
	packName     = "pack.deflate"
	manifestName = "manifest.json"
)

func partDir(run string, partition int32, attempt string) string {
	p := strconv.FormatUint(uint64(uint32(partition)), 10)
	return runsPrefix + run + "/p-" + strings.Repeat("0", max(0, 6-len(p))) + p + "/" + attempt + "/"
}

func feedKey(feedID string) string { return feedsPrefix + feedID + ".json" }

// checkRun refuses a run id that cannot be one path segment of a key.
func checkRun(run string) error {
	if run == "" || strings.HasPrefix(run, ".") || strings.ContainsFunc(run, func(r rune) bool { return r == '/' || r == '\\' || r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("feed store: invalid run id %q", run)
	}
	return nil
}

func newAttempt() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// PartRef names one finished part: the partition and the attempt that
// wrote it (PartWriter.Attempt, PartManifest.Attempt).
type PartRef struct {
	Partition int32
	Attempt   string
}

// PartManifest describes one finished part (manifest.json).
type PartManifest struct {
	Run       string `json:"run"`
	Partition int32  `json:"partition"`
	Attempt   string `json:"attempt"`
	// PackBytes is the size of the pack object (0: no item, no pack).
	PackBytes int64 `json:"pack_bytes"`
	// Feeds has one entry per file feed of the writer's set, in set order,
	// items or not.
	Feeds []PartFeed `json:"feeds"`
}

// PartFeed is one feed's share of a part.
type PartFeed struct {
	Feed     string `json:"feed"`
	Items    int64  `json:"items"`
	RawBytes int64  `json:"raw_bytes"`
	// RawCRC32 is the CRC-32 (IEEE, as gzip's) of the raw items.
	RawCRC32 uint32 `json:"raw_crc32"`
	// Offset and Bytes locate the feed's deflate fragments in the pack;
	// CRC32C is the CRC-32C of those bytes.
	Offset int64  `json:"offset"`
	Bytes  int64  `json:"bytes"`
	CRC32C uint32 `json:"crc32c"`
}

// Ref returns the PartRef of m.
func (m PartManifest) Ref() PartRef { return PartRef{Partition: m.Partition, Attempt: m.Attempt} }

// Items returns the item count of feedID in m (0 when absent).
func (m PartManifest) Items(feedID string) int64 {
	for _, f := range m.Feeds {
		if f.Feed == feedID {
			return f.Items
		}
	}
	return 0
}

// FeedManifest is what a feed serves (feeds/<feed>.json).
type FeedManifest struct {
	Feed      string    `json:"feed"`
	Run       string    `json:"run"`
	Generated time.Time `json:"generated"`
	Items     int64     `json:"items"`
	// Bytes and RawBytes are the whole document's sizes, gzip and plain;
	// RawCRC32 is the CRC-32 of the plain one.
	Bytes    int64  `json:"bytes"`
	RawBytes int64  `json:"raw_bytes"`
	RawCRC32 uint32 `json:"raw_crc32"`
	Header   []byte `json:"header"` // raw
	// HeaderGz is the gzip header and Header as a deflate fragment.
	HeaderGz []byte `json:"header_gz"`
	Footer   []byte `json:"footer"`
	// FooterGz is Footer as the final deflate block and the gzip trailer.
	FooterGz []byte `json:"footer_gz"`
	// Pieces are the feed's stored bytes in partition order; partitions
	// without an item of the feed have none.
	Pieces []Piece `json:"pieces"`
}

// Piece is one feed's deflate fragments in one pack.
type Piece struct {
	Partition int32  `json:"partition"`
	Object    string `json:"object"`
	Offset    int64  `json:"offset"`
	Bytes     int64  `json:"bytes"`
	CRC32C    uint32 `json:"crc32c"`
	RawBytes  int64  `json:"raw_bytes"`
	RawCRC32  uint32 `json:"raw_crc32"`
	Items     int64  `json:"items"`
}

// Manifest returns the published manifest of feedID; ErrNotPublished
// when there is none.
func (s *Store) Manifest(ctx context.Context, feedID string) (FeedManifest, error) {
	var m FeedManifest
	b, err := s.bucket.ReadAll(ctx, feedKey(feedID))
	if gcerrors.Code(err) == gcerrors.NotFound {
		return m, fmt.Errorf("feed %q: %w", feedID, ErrNotPublished)
	}
	if err != nil {
		return m, fmt.Errorf("read manifest of feed %q from %s: %w", feedID, s.where, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decode manifest of feed %q from %s: %w", feedID, s.where, err)
	}
	return m, nil
}

// PublishedRun returns the run feedID's manifest names, "" if none.
func (s *Store) PublishedRun(ctx context.Context, feedID string) (string, error) {
	m, err := s.Manifest(ctx, feedID)
	if errors.Is(err, ErrNotPublished) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return m.Run, nil
}

// readPart reads and checks the part manifest and pack of ref.
func (s *Store) readPart(ctx context.Context, run string, ref PartRef) (PartManifest, error) {
	var m PartManifest
	dir := partDir(run, ref.Partition, ref.Attempt)
	b, err := s.bucket.ReadAll(ctx, dir+manifestName)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return m, fmt.Errorf("run %s partition %d attempt %s: no %s%s in %s: %w", run, ref.Partition, ref.Attempt, dir, manifestName, s.where, ErrPartMissing)
	}
	if err != nil {
		return m, fmt.Errorf("read %s%s from %s: %w", dir, manifestName, s.where, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decode %s%s from %s: %w", dir, manifestName, s.where, err)
	}
	if m.Run != run || m.Partition != ref.Partition || m.Attempt != ref.Attempt {
		return m, fmt.Errorf("%s%s in %s is of run %s partition %d attempt %s", dir, manifestName, s.where, m.Run, m.Partition, m.Attempt)
	}
	if m.PackBytes == 0 {
		return m, nil
	}
	a, err := s.bucket.Attributes(ctx, dir+packName)
	switch {
	case gcerrors.Code(err) == gcerrors.NotFound:
		return m, fmt.Errorf("run %s partition %d attempt %s: no %s%s in %s: %w", run, ref.Partition, ref.Attempt, dir, packName, s.where, ErrPartMissing)
	case err != nil:
		return m, fmt.Errorf("attributes of %s%s in %s: %w", dir, packName, s.where, err)
	case a.Size != m.PackBytes:
		return m, fmt.Errorf("run %s partition %d attempt %s: %s%s in %s has %d bytes, its manifest says %d: %w",
			run, ref.Partition, ref.Attempt, dir, packName, s.where, a.Size, m.PackBytes, ErrPartMissing)
	}
	return m, nil
}

// Publish makes run the served version of every file feed of the set. It
// reads the part manifest of each ref (one per partition; the caller
// passes every partition of the topic), checks each pack exists with its
// recorded size, renders each feed's header and footer with generated as
// the generation time, and writes one feed manifest per file feed: that
// write is the feed's switch. Nothing is written unless every part is
// there and records every file feed (a part written under another feed
// set is refused). A feed already at run is left as it is (publishing
// twice is fine) and a feed at a newer run is never moved back. Safe for
// concurrent use; concurrent Publish calls of one Store are serialised,
// those of several instances are not (one instance publishes).
// Errors wrap ErrPartMissing when a part is not there.
func (s *Store) Publish(ctx context.Context, run string, generated time.Time, parts []PartRef) error {
	if err := checkRun(run); err != nil {
		return err
	}
	if len(parts) == 0 {
		return fmt.Errorf("publish run %s: no parts", run)
	}
	parts = slices.Clone(parts)
	slices.SortFunc(parts, func(a, b PartRef) int { return int(a.Partition) - int(b.Partition) })
	for i := 1; i < len(parts); i++ {
		if parts[i].Partition == parts[i-1].Partition {
			return fmt.Errorf("publish run %s: partition %d given twice", run, parts[i].Partition)
		}
	}
	s.publishMu.Lock()
	defer s.publishMu.Unlock()

	pms := make([]PartManifest, len(parts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(storeConcurrency)
	for i, ref := range parts {
		g.Go(func() error {
			m, err := s.readPart(gctx, run, ref)
			pms[i] = m
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("publish run %s: %w", run, err)
	}
	// Per part: feed id → index in its Feeds. Every file feed must be in
	// every part, in the pack, before anything is written.
	idx := make([]map[string]int, len(pms))
	objects := make([]string, len(pms))
	for i, m := range pms {
		objects[i] = partDir(run, m.Partition, m.Attempt) + packName
		idx[i] = make(map[string]int, len(m.Feeds))
		for j, f := range m.Feeds {
			idx[i][f.Feed] = j
		}
	}
	var files []*feeds.Feed
	for _, f := range s.set.Load().Feeds() {
		if !f.File {
			continue
		}
		files = append(files, f)
		for i, m := range pms {
			j, ok := idx[i][f.ID]
			if !ok {
				return fmt.Errorf("publish run %s: part of partition %d attempt %s has no feed %q (written with another feed set)", run, m.Partition, m.Attempt, f.ID)
			}
			if pf := m.Feeds[j]; pf.Bytes < 0 || pf.Offset < 0 || pf.Offset+pf.Bytes > m.PackBytes {
				return fmt.Errorf("publish run %s: part of partition %d attempt %s: feed %q outside the pack", run, m.Partition, m.Attempt, f.ID)
			}
		}
	}
	var mu sync.Mutex
	var written []string
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(storeConcurrency)
	for _, f := range files {
		g.Go(func() error {
			cur, err := s.PublishedRun(gctx, f.ID)
			if err != nil {
				return fmt.Errorf("publish run %s: %w", run, err)
			}
			if cur >= run && cur != "" {
				if cur > run {
					s.logger.Info("feed already at a newer run; not moved back", zap.String("feed", f.ID), zap.String("run", run), zap.String("published", cur))
				}
				return nil
			}
			fm := feedManifest(f, run, generated, pms, idx, objects)
			b, err := json.Marshal(fm)
			if err != nil {
				return fmt.Errorf("publish run %s: encode manifest of feed %q: %w", run, f.ID, err)
			}
			if err := s.bucket.WriteAll(gctx, feedKey(f.ID), b, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
				return fmt.Errorf("publish run %s: write %s to %s: %w", run, feedKey(f.ID), s.where, err)
			}
			mu.Lock()
			written = append(written, feedKey(f.ID))
			mu.Unlock()
			return nil
		})
	}
	err := g.Wait()
	if serr := s.syncObjects(written); err == nil {
		err = serr
	}
	return err
}

// feedManifest builds f's manifest of run from the part manifests pms
// (idx: per part, feed id → index in its Feeds; objects: per part, its
// pack's key).
func feedManifest(f *feeds.Feed, run string, generated time.Time, pms []PartManifest, idx []map[string]int, objects []string) FeedManifest {
	fm := FeedManifest{Feed: f.ID, Run: run, Generated: generated.UTC(), Pieces: []Piece{}}
	fm.Header = f.Template.AppendHeader(nil, f, generated)
	fm.Footer = f.Template.AppendFooter(nil)
	fm.HeaderGz = gzipOpening(fm.Header)
	fm.RawBytes = int64(len(fm.Header))
	fm.RawCRC32 = crc32.ChecksumIEEE(fm.Header)
	for i, m := range pms {
		pf := m.Feeds[idx[i][f.ID]]
		fm.Items += pf.Items
		if pf.Bytes == 0 {
			continue
		}
		fm.Pieces = append(fm.Pieces, Piece{Partition: m.Partition, Object: objects[i],
			Offset: pf.Offset, Bytes: pf.Bytes, CRC32C: pf.CRC32C, RawBytes: pf.RawBytes, RawCRC32: pf.RawCRC32, Items: pf.Items})
		fm.Bytes += pf.Bytes
		fm.RawBytes += pf.RawBytes
		fm.RawCRC32 = crc32Combine(fm.RawCRC32, pf.RawCRC32, pf.RawBytes)
	}
	fm.RawCRC32 = crc32Combine(fm.RawCRC32, crc32.ChecksumIEEE(fm.Footer), int64(len(fm.Footer)))
	fm.RawBytes += int64(len(fm.Footer))
	fm.FooterGz = gzipClosing(fm.Footer, fm.RawCRC32, fm.RawBytes)
	fm.Bytes += int64(len(fm.HeaderGz) + len(fm.FooterGz))
	return fm
}

// Runs lists the run ids that have objects in the store, sorted.
func (s *Store) Runs(ctx context.Context) ([]string, error) {
	var runs []string
	it := s.bucket.List(&blob.ListOptions{Prefix: runsPrefix, Delimiter: "/"})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %s in %s: %w", runsPrefix, s.where, err)
		}
		if !o.IsDir {
			continue
		}
		runs = append(runs, strings.TrimSuffix(strings.TrimPrefix(o.Key, runsPrefix), "/"))
	}
	slices.Sort(runs)
	return runs, nil
}

// pinnedRuns returns the runs the feed manifests in the store name (of
// any feed, in the set or not).
func (s *Store) pinnedRuns(ctx context.Context) (map[string]bool, error) {
	var ids []string
	it := s.bucket.List(&blob.ListOptions{Prefix: feedsPrefix})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %s in %s: %w", feedsPrefix, s.where, err)
		}
		if id, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, feedsPrefix), ".json"); ok && !o.IsDir && !strings.Contains(id, "/") {
			ids = append(ids, id)
		}
	}
	runs := make([]string, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(storeConcurrency)
	for i, id := range ids {
		g.Go(func() error {
			m, err := s.Manifest(gctx, id)
			if errors.Is(err, ErrNotPublished) {
				return nil // removed since the listing
			}
			runs[i] = m.Run
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	pinned := map[string]bool{}
	for _, r := range runs {
		if r != "" {
			pinned[r] = true
		}
	}
	return pinned, nil
}

// DeleteRuns removes the objects of every run in the store for which
// keep(run) is false, except the runs a feed manifest names (whatever
// keep says). The caller's keep should hold the runs still being written
// or held and the previous published run, so a download of it finishes.
// Errors of single deletions are joined; the others are still tried.
func (s *Store) DeleteRuns(ctx context.Context, keep func(run string) bool) error {
	runs, err := s.Runs(ctx)
	if err != nil {
		return err
	}
	pinned, err := s.pinnedRuns(ctx)
	if err != nil {
		return fmt.Errorf("delete runs: %w", err)
	}
	var errs []error
	for _, run := range runs {
		if pinned[run] || keep(run) {
			continue
		}
		if err := s.deleteRun(ctx, run); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Store) deleteRun(ctx context.Context, run string) error {
	prefix := runsPrefix + run + "/"
	var keys []string
	it := s.bucket.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("delete run %s: list %s in %s: %w", run, prefix, s.where, err)
		}
		keys = append(keys, o.Key)
	}
	// Part manifests first: a part whose manifest is gone is no part,
	// even if deleting its pack then fails.
	slices.SortStableFunc(keys, func(a, b string) int {
		return boolInt(!strings.HasSuffix(a, "/"+manifestName)) - boolInt(!strings.HasSuffix(b, "/"+manifestName))
	})
	for _, k := range keys {
		if err := s.bucket.Delete(ctx, k); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("delete run %s: delete %s in %s: %w", run, k, s.where, err)
		}
	}
	if s.fileDir != "" {
		// fileblob leaves the empty directories behind.
		if err := os.RemoveAll(filepath.Join(s.fileDir, filepath.FromSlash(prefix))); err != nil {
			return fmt.Errorf("delete run %s: %w", run, err)
		}
	}
	s.logger.Info("deleted run objects", zap.String("run", run), zap.Int("objects", len(keys)))
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// syncObjects makes the objects written durable for a file:// store; a
// cloud store has made them durable when the write returned.
func (s *Store) syncObjects(keys []string) error {
	if s.fileDir == "" || len(keys) == 0 {
		return nil
	}
	paths := make([]string, len(keys))
	for i, k := range keys {
		paths[i] = filepath.Join(s.fileDir, filepath.FromSlash(k))
	}
	return syncFiles(s.fileDir, paths)
}

// SetFeeds puts set in force (live feed changes): writers created from
// now on, publications and requests use it.
func (s *Store) SetFeeds(set *feeds.Set) { s.set.Store(set) }
