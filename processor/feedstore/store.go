package feedstore

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/feedmill/feedmill/feeds"

	"github.com/feedmill/feedmill/processor/api"
)

// FeedFiles owns the published XML documents under dir:
//
//	<dir>/<feed>/<run>/header.xml, part-<partition>.xml..., footer.xml, manifest.json
//	<dir>/<feed>/current          the id of the published run (switched by rename)
//
// A run writes its version beside the published one; Publish switches the
// `current` pointer of each feed atomically (write, fsync, rename, fsync
// the directory), so a crash at any point serves either the old or the new
// document, never a mix. Old versions are removed, keeping the last two.
// Safe for concurrent use.
type FeedFiles struct {
	// ChunkWriteTimeout bounds the write of each chunk (64 KiB) of a
	// served document, so a client that stops reading releases its
	// handler while a slow but steady one still gets a feed of any size
	// (the server's WriteTimeout stays 0). NewFeedFiles sets
	// DefaultChunkWriteTimeout; change it before Register only.
	ChunkWriteTimeout time.Duration

	dir    string
	set    *feeds.Set
	logger *zap.Logger

	mu      sync.RWMutex
	current map[string]string // feed id → published run id
}

// manifest describes one feed version.
type manifest struct {
	Run   string   `json:"run"`
	Feed  string   `json:"feed"`
	Items int64    `json:"items"`
	Parts []string `json:"parts"`
}

const currentFile = "current"

// DefaultChunkWriteTimeout is FeedFiles.ChunkWriteTimeout's default.
const DefaultChunkWriteTimeout = 30 * time.Second

// NewFeedFiles loads the published pointers from dir (creating it).
func NewFeedFiles(dir string, set *feeds.Set, logger *zap.Logger) (*FeedFiles, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("feed files dir: %w", err)
	}
	ff := &FeedFiles{ChunkWriteTimeout: DefaultChunkWriteTimeout, dir: dir, set: set, logger: logger.Named("files"), current: map[string]string{}}
	for _, f := range set.Feeds() {
		b, err := os.ReadFile(filepath.Join(dir, f.ID, currentFile))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read published version of feed %q: %w", f.ID, err)
		}
		ff.current[f.ID] = strings.TrimSpace(string(b))
	}
	return ff, nil
}

// Current returns the run id published for feedID, or "".
func (ff *FeedFiles) Current(feedID string) string {
	ff.mu.RLock()
	defer ff.mu.RUnlock()
	return ff.current[feedID]
}

func (ff *FeedFiles) versionDir(feedID, runID string) string {
	return filepath.Join(ff.dir, feedID, runID)
}

// FeedWriter streams one run's documents to part files: one file per
// (feed, partition), kept open while its partition is scanned. It holds at
// most flushBytes per feed in memory. Not safe for concurrent use.
type FeedWriter struct {
	ff    *FeedFiles
	run   string
	now   time.Time
	files []*feeds.Feed // indexed by feed index; nil for file: false
	bufs  [][]byte
	parts [][]string // per feed: part file names in partition order
	items []int64
	fds   []*os.File // the feed's part file of the current partition
	dirty []int      // feeds written in the current partition
	part  int32
	dirs  []string
}

const flushBytes = 32 << 10

// NewWriter starts the documents of run runID, generated at now.
func (ff *FeedFiles) NewWriter(runID string, now time.Time) (*FeedWriter, error) {
	n := len(ff.set.Feeds())
	w := &FeedWriter{ff: ff, run: runID, now: now, files: make([]*feeds.Feed, n), bufs: make([][]byte, n),
		parts: make([][]string, n), items: make([]int64, n), fds: make([]*os.File, n), part: -1}
	for _, f := range ff.set.Feeds() {
		if !f.File {
			continue
		}
		w.files[f.Index] = f
		dir := ff.versionDir(f.ID, runID)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("feed %q version dir: %w", f.ID, err)
		}
		w.dirs = append(w.dirs, dir)
	}
	return w, nil
}

// Item appends one rendered item (AppendItem output) of feed index i for
// an offer of partition p. Partitions must come in increasing order.
func (w *FeedWriter) Item(i int, p int32, item []byte) error {
	if p != w.part {
		if err := w.EndPartition(); err != nil {
			return err
		}
		w.part = p
	}
	if w.files[i] == nil {
		return nil
	}
	if w.fds[i] == nil && len(w.bufs[i]) == 0 {
		w.dirty = append(w.dirty, i)
	}
	w.bufs[i] = append(w.bufs[i], item...)
	w.items[i]++
	if len(w.bufs[i]) >= flushBytes {
		return w.flush(i)
	}
	return nil
}

func (w *FeedWriter) partName() string {
	s := strconv.FormatUint(uint64(uint32(w.part)), 10)
	return "part-" + strings.Repeat("0", max(0, 6-len(s))) + s + ".xml"
}

func (w *FeedWriter) flush(i int) error {
	f := w.files[i]
	if w.fds[i] == nil {
		name := w.partName()
		fl, err := os.OpenFile(filepath.Join(w.ff.versionDir(f.ID, w.run), name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("feed %q part: %w", f.ID, err)
		}
		w.fds[i] = fl
		w.parts[i] = append(w.parts[i], name)
	}
	if _, err := w.fds[i].Write(w.bufs[i]); err != nil {
		return fmt.Errorf("feed %q part of partition %d: %w", f.ID, w.part, err)
	}
	w.bufs[i] = w.bufs[i][:0]
	return nil
}

// EndPartition writes and closes the current partition's parts.
func (w *FeedWriter) EndPartition() error {
	for _, i := range w.dirty {
		if err := w.flush(i); err != nil {
			return err
		}
		err := w.fds[i].Close()
		w.fds[i] = nil
		if err != nil {
			return fmt.Errorf("feed %q part of partition %d: %w", w.files[i].ID, w.part, err)
		}
	}
	w.dirty = w.dirty[:0]
	return nil
}

// Close releases any open part file (after an error); a finished writer
// has none.
func (w *FeedWriter) Close() {
	for i, fl := range w.fds {
		if fl != nil {
			_ = fl.Close() // the version is abandoned
			w.fds[i] = nil
		}
	}
}

// Items returns the item count written for feed index i.
func (w *FeedWriter) Items(i int) int64 { return w.items[i] }

// Finish writes headers, footers and manifests and makes the whole version
// durable (syncFiles). The version is complete but not published.
func (w *FeedWriter) Finish() error {
	if err := w.EndPartition(); err != nil {
		return err
	}
	var buf []byte
	for i, f := range w.files {
		if f == nil {
			continue
		}
		dir := w.ff.versionDir(f.ID, w.run)
		buf = f.Template.AppendHeader(buf[:0], f, w.now)
		if err := os.WriteFile(filepath.Join(dir, "header.xml"), buf, 0o644); err != nil {
			return fmt.Errorf("feed %q header: %w", f.ID, err)
		}
		buf = f.Template.AppendFooter(buf[:0])
		if err := os.WriteFile(filepath.Join(dir, "footer.xml"), buf, 0o644); err != nil {
			return fmt.Errorf("feed %q footer: %w", f.ID, err)
		}
		m := manifest{Run: w.run, Feed: f.ID, Items: w.items[i], Parts: w.parts[i]}
		if m.Parts == nil {
			m.Parts = []string{}
		}
		mb, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("feed %q manifest: %w", f.ID, err)
		}
		if err := os.WriteFile(filepath.Join(dir, "manifest.json"), mb, 0o644); err != nil {
			return fmt.Errorf("feed %q manifest: %w", f.ID, err)
		}
	}
	return syncFiles(w.ff.dir, w.dirs)
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// Publish switches every file feed to run runID's version (written by a
// finished FeedWriter) and removes versions other than the new one, the
// one it replaces and those in keep (held runs).
func (ff *FeedFiles) Publish(runID string, keep []string) error {
	for _, f := range ff.set.Feeds() {
		if !f.File {
			continue
		}
		if _, err := os.Stat(filepath.Join(ff.versionDir(f.ID, runID), "manifest.json")); err != nil {
			return fmt.Errorf("publish feed %q of %s: %w", f.ID, runID, err)
		}
		dir := filepath.Join(ff.dir, f.ID)
		tmp := filepath.Join(dir, currentFile+".tmp")
		if err := writeSynced(tmp, []byte(runID+"\n")); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, currentFile)); err != nil {
			return fmt.Errorf("publish feed %q: %w", f.ID, err)
		}
		if err := syncDir(dir); err != nil {
			return err
		}
		ff.mu.Lock()
		prev := ff.current[f.ID]
		ff.current[f.ID] = runID
		ff.mu.Unlock()
		ff.gc(f.ID, append([]string{runID, prev}, keep...))
	}
	return nil
}

// gc removes the versions of feedID not in keep. Readers that already
// opened a removed version's files finish from the open descriptors.
func (ff *FeedFiles) gc(feedID string, keep []string) {
	entries, err := os.ReadDir(filepath.Join(ff.dir, feedID))
	if err != nil {
		ff.logger.Warn("list feed versions", zap.String("feed", feedID), zap.Error(err))
		return
	}
	for _, e := range entries {
		if !e.IsDir() || slices.Contains(keep, e.Name()) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(ff.dir, feedID, e.Name())); err != nil {
			ff.logger.Warn("remove old feed version", zap.String("feed", feedID), zap.String("run", e.Name()), zap.Error(err))
		}
	}
}

// Discard removes run runID's unpublished versions.
func (ff *FeedFiles) Discard(runID string) {
	for _, f := range ff.set.Feeds() {
		if ff.Current(f.ID) == runID {
			continue
		}
		if err := os.RemoveAll(ff.versionDir(f.ID, runID)); err != nil {
			ff.logger.Warn("remove feed version", zap.String("feed", f.ID), zap.String("run", runID), zap.Error(err))
		}
	}
}

// Register adds GET /feeds/{file} to mux.
func (ff *FeedFiles) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /feeds/{file}", ff.serve)
}

// serve streams the published document of one feed: header, parts in
// partition order, footer, opened up front so a concurrent publish and
// removal of the version cannot cut it short.
func (ff *FeedFiles) serve(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	id, ok := strings.CutSuffix(name, ".xml")
	f, known := ff.set.Feed(id)
	if !ok || !known || !f.File {
		api.WriteError(w, http.StatusNotFound, "no file feed "+strconv.Quote(id))
		return
	}
	run := ff.Current(id)
	if run == "" {
		w.Header().Set("Retry-After", "60")
		api.WriteError(w, http.StatusServiceUnavailable, "feed "+strconv.Quote(id)+" has not been published yet")
		return
	}
	gz := acceptsGzip(r.Header.Get("Accept-Encoding"))
	etag := `"` + run + "." + id
	if gz {
		etag += ".gz"
	}
	etag += `"`
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Vary", "Accept-Encoding")
	h.Set("Cache-Control", "no-cache")
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	files, size, err := ff.open(id, run)
	defer func() {
		for _, fl := range files {
			_ = fl.Close() // read-only
		}
	}()
	if err != nil {
		ff.logger.Error("open published feed", zap.String("feed", id), zap.String("run", run), zap.Error(err))
		api.WriteError(w, http.StatusInternalServerError, "open feed "+strconv.Quote(id)+": "+err.Error())
		return
	}
	h.Set("Content-Type", "application/xml; charset=utf-8")
	if r.Method == http.MethodHead {
		return
	}
	var out io.Writer = w
	var zw *gzip.Writer
	if gz {
		h.Set("Content-Encoding", "gzip")
		zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed) // the level is valid
		out = zw
	} else {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	// Each chunk gets its own write deadline: a stalled client fails the
	// write after ChunkWriteTimeout instead of holding the handler.
	rc := http.NewResponseController(w)
	deadline := func() {
		if ff.ChunkWriteTimeout > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(ff.ChunkWriteTimeout)) // unsupported writer: no bound, as before
		}
	}
	buf := make([]byte, 64<<10)
	for _, fl := range files {
		for {
			n, rerr := fl.Read(buf)
			if n > 0 {
				deadline()
				if _, err := out.Write(buf[:n]); err != nil {
					return // client went away or stalled: the response is cut
				}
			}
			if errors.Is(rerr, io.EOF) {
				break
			}
			if rerr != nil {
				ff.logger.Error("read published feed", zap.String("feed", id), zap.String("run", run), zap.Error(rerr))
				return // the response is cut
			}
		}
	}
	// The last deadline also bounds the server's final flush; the server
	// clears it before reusing the connection.
	deadline()
	if zw != nil {
		_ = zw.Close() // a failed write means the client went away
	}
}

// open opens header, parts and footer of a version.
func (ff *FeedFiles) open(feedID, run string) ([]*os.File, int64, error) {
	dir := ff.versionDir(feedID, run)
	mb, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, 0, err
	}
	var m manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, 0, fmt.Errorf("manifest: %w", err)
	}
	names := append(append([]string{"header.xml"}, m.Parts...), "footer.xml")
	files := make([]*os.File, 0, len(names))
	var size int64
	for _, n := range names {
		fl, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return files, 0, err
		}
		files = append(files, fl)
		st, err := fl.Stat()
		if err != nil {
			return files, 0, err
		}
		size += st.Size()
	}
	return files, size, nil
}

func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		params = strings.ReplaceAll(params, " ", "")
		if q, ok := strings.CutPrefix(params, "q="); ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v == 0 {
				return false
			}
		}
		return true
	}
	return false
}

func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for part := range strings.SplitSeq(header, ",") {
		p := strings.TrimSpace(part)
		if p == "*" || p == etag || strings.TrimPrefix(p, "W/") == etag {
			return true
		}
	}
	return false
}
