package feedstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/flate"
	"go.uber.org/zap"
	"gocloud.dev/blob"

	"github.com/feedmill/feedmill/feeds"
)

// chunkBytes is the raw bytes of one feed a PartWriter compresses into
// one deflate fragment (deflate.go), in pages of pageBytes. 128 KiB:
// against 32 KiB, a pass at 1300 feeds over 1M offers (BenchmarkFullPass)
// stores 91 instead of 103 bytes per item at the same speed (fewer
// blocks, each with its own Huffman tables).
const (
	chunkBytes = chunkPages * pageBytes
	chunkPages = 32
	pageBytes  = 4 << 10
)

// DefaultCompressionLevel is Store.CompressionLevel's default
// (full_pass.compression_level). BenchmarkPartWriter (items of 760
// bytes, bytes stored per item and CPU per item): level 1 165 B, 3.3 µs;
// 5 150 B, 5.3 µs; 6 147 B, 5.6 µs; 7 147 B, 10.6 µs; 9 142 B, 19.2 µs.
// A full pass at 1300 feeds over 1M offers (BenchmarkFullPass, 128 KiB
// fragments) stores 91 B per item at level 1 and 78 B at level 6, and
// runs 25% faster at level 1 (89k against 71k offers/s): the pass's
// speed wins by default.
const DefaultCompressionLevel = 1

const spoolPattern = "part-*.spool"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segment is a run of one feed's fragments in the spool file.
type segment struct{ off, n int64 }

// PartWriter writes one partition's share of every file feed of one run
// (doc.go). Item buffers raw items per feed in pages of a shared arena
// and compresses a feed's pages into the spool file as one fragment when
// they hold chunkBytes, or when the arena is full (the feed holding the
// most pages first); Finish uploads the pack and then the part manifest.
// Not safe for concurrent use: one goroutine per writer (writers of
// different partitions may run at once).
type PartWriter struct {
	s         *Store
	set       *feeds.Set // the feed set of the writer (item indexes are its feeds')
	run       string
	partition int32
	attempt   string

	file     []bool     // per feed index: a file feed
	pages    [][][]byte // per feed: its buffered raw bytes, in pages of pageBytes (the last one filling)
	pos      []int      // per feed: its index in byCount[len(pages[feed])]
	byCount  [chunkPages + 1][]int
	free     [][]byte // released pages
	npages   int      // pages allocated
	maxPages int      // pages allowed

	items, raw, stored []int64
	crc, rawCRC        []uint32 // CRC-32C of the stored bytes, CRC-32 of the raw ones
	segs               [][]segment

	zw    *flate.Writer
	zbuf  bytes.Buffer
	spool *os.File
	sw    *bufio.Writer
	off   int64

	err  error // sticky: the spool failed
	done bool
}

// NewPartWriter starts partition's part of run with a new random attempt
// id. Safe for concurrent use (of the Store).
func (s *Store) NewPartWriter(run string, partition int32) (*PartWriter, error) {
	return s.NewPartWriterSet(run, partition, s.set.Load())
}

// NewPartWriterSet is NewPartWriter for the items of feed set set (item
// indexes are its feeds'): the set the caller scans with.
func (s *Store) NewPartWriterSet(run string, partition int32, set *feeds.Set) (*PartWriter, error) {
	if err := checkRun(run); err != nil {
		return nil, err
	}
	n := len(set.Feeds())
	zw, err := newFragmentWriter(s.CompressionLevel)
	if err != nil {
		return nil, fmt.Errorf("part writer: %w", err)
	}
	w := &PartWriter{s: s, set: set, run: run, partition: partition, attempt: newAttempt(),
		file: make([]bool, n), pages: make([][][]byte, n), pos: make([]int, n),
		maxPages: max(1, s.PartBufferBytes/pageBytes),
		items:    make([]int64, n), raw: make([]int64, n), stored: make([]int64, n),
		crc: make([]uint32, n), rawCRC: make([]uint32, n), segs: make([][]segment, n), zw: zw}
	for i, f := range set.Feeds() {
		w.file[i] = f.File
		w.pos[i] = -1
	}
	return w, nil
}

// Attempt returns the writer's attempt id (its objects' key segment).
func (w *PartWriter) Attempt() string { return w.attempt }

// Items returns the items written so far for feed index feedIndex.
func (w *PartWriter) Items(feedIndex int) int64 { return w.items[feedIndex] }

// Item appends one rendered item of feed index feedIndex (its index in
// the set's Feeds); a feed with File false is ignored. item is copied.
// An error (of the spool file) is sticky: the writer must be aborted.
func (w *PartWriter) Item(feedIndex int, item []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return w.errf("write after Finish or Abort")
	}
	if feedIndex < 0 || feedIndex >= len(w.file) {
		return w.errf("feed index %d out of range", feedIndex)
	}
	if !w.file[feedIndex] {
		return nil
	}
	w.items[feedIndex]++
	w.raw[feedIndex] += int64(len(item))
	for len(item) > 0 {
		ps := w.pages[feedIndex]
		if len(ps) == 0 || len(ps[len(ps)-1]) == pageBytes {
			if len(ps) == chunkPages {
				if err := w.fragment(feedIndex); err != nil {
					return err
				}
				continue
			}
			if err := w.addPage(feedIndex); err != nil {
				return err
			}
			continue
		}
		last := ps[len(ps)-1]
		n := copy(last[len(last):pageBytes], item)
		ps[len(ps)-1] = last[:len(last)+n]
		item = item[n:]
	}
	return nil
}

func (w *PartWriter) errf(format string, args ...any) error {
	return fmt.Errorf("part of run %s partition %d: "+format, append([]any{w.run, w.partition}, args...)...)
}

// addPage gives feed i one more page; when the arena is full, the feed
// holding the most pages (i itself, maybe) is compressed first.
func (w *PartWriter) addPage(i int) error {
	if len(w.free) == 0 && w.npages >= w.maxPages {
		for c := chunkPages; c > 0; c-- {
			if n := len(w.byCount[c]); n > 0 {
				if err := w.fragment(w.byCount[c][n-1]); err != nil {
					return err
				}
				break
			}
		}
	}
	var p []byte
	if n := len(w.free); n > 0 {
		p, w.free = w.free[n-1], w.free[:n-1]
	} else {
		p = make([]byte, 0, pageBytes)
		w.npages++
	}
	w.setPages(i, append(w.pages[i], p))
	return nil
}

// setPages replaces feed i's pages, keeping byCount in step.
func (w *PartWriter) setPages(i int, ps [][]byte) {
	if old := len(w.pages[i]); old > 0 {
		b := w.byCount[old]
		last := b[len(b)-1]
		b[w.pos[i]] = last
		w.pos[last] = w.pos[i]
		w.byCount[old] = b[:len(b)-1]
		w.pos[i] = -1
	}
	w.pages[i] = ps
	if len(ps) > 0 {
		w.pos[i] = len(w.byCount[len(ps)])
		w.byCount[len(ps)] = append(w.byCount[len(ps)], i)
	}
}

// fragment compresses feed i's pages as one deflate fragment into the
// spool and frees them.
func (w *PartWriter) fragment(i int) error {
	ps := w.pages[i]
	if w.spool == nil {
		f, err := os.CreateTemp(w.s.spool, spoolPattern)
		if err != nil {
			w.err = w.errf("spool: %w", err)
			return w.err
		}
		w.spool = f
		w.sw = bufio.NewWriterSize(f, 256<<10)
	}
	w.zbuf.Reset()
	w.zw.Reset(&w.zbuf)
	for _, p := range ps {
		_, _ = w.zw.Write(p) // writes to a bytes.Buffer do not fail
		w.rawCRC[i] = crc32.Update(w.rawCRC[i], crc32.IEEETable, p)
		w.free = append(w.free, p[:0])
	}
	_ = w.zw.Flush()
	clear(ps)
	w.setPages(i, ps[:0])
	m := w.zbuf.Bytes()
	if _, err := w.sw.Write(m); err != nil {
		w.err = w.errf("spool %s: %w", w.spool.Name(), err)
		return w.err
	}
	n := int64(len(m))
	if s := w.segs[i]; len(s) > 0 && s[len(s)-1].off+s[len(s)-1].n == w.off {
		s[len(s)-1].n += n
	} else {
		w.segs[i] = append(s, segment{off: w.off, n: n})
	}
	w.off += n
	w.stored[i] += n
	w.crc[i] = crc32.Update(w.crc[i], castagnoli, m)
	return nil
}

// Finish compresses what is buffered, uploads the pack (the feeds'
// fragments in feed order) and then the part manifest, and returns the manifest:
// once it is in the store, so is its pack. The writer is released, with
// or without an error; a failed Finish leaves what it uploaded to
// DeleteRuns.
func (w *PartWriter) Finish(ctx context.Context) (PartManifest, error) {
	if w.done {
		return PartManifest{}, w.errf("Finish after Finish or Abort")
	}
	defer w.Abort()
	for i, ps := range w.pages {
		if len(ps) > 0 && len(ps[0]) > 0 {
			if err := w.fragment(i); err != nil {
				return PartManifest{}, err
			}
		}
	}
	if w.err != nil {
		return PartManifest{}, w.err
	}
	if w.sw != nil {
		if err := w.sw.Flush(); err != nil {
			return PartManifest{}, w.errf("spool %s: %w", w.spool.Name(), err)
		}
	}
	m := PartManifest{Run: w.run, Partition: w.partition, Attempt: w.attempt, Feeds: []PartFeed{}}
	var segs []segment
	for i, f := range w.set.Feeds() {
		if !w.file[i] {
			continue
		}
		pf := PartFeed{Feed: f.ID, Items: w.items[i], RawBytes: w.raw[i], RawCRC32: w.rawCRC[i], Bytes: w.stored[i], CRC32C: w.crc[i]}
		if pf.Bytes > 0 {
			pf.Offset = m.PackBytes
			m.PackBytes += pf.Bytes
			segs = append(segs, w.segs[i]...)
		}
		m.Feeds = append(m.Feeds, pf)
	}
	dir := partDir(w.run, w.partition, w.attempt)
	var written []string
	if m.PackBytes > 0 {
		r := &segmentReader{f: w.spool, segs: segs}
		// S3 reads up to 16 MiB (its multipart threshold) before it
		// uploads, then parts of BufferSize, MaxConcurrency at once.
		opts := &blob.WriterOptions{ContentType: "application/octet-stream", BufferSize: 8 << 20, MaxConcurrency: 2}
		if err := w.s.bucket.Upload(ctx, dir+packName, r, opts); err != nil {
			return PartManifest{}, w.errf("upload %s%s to %s: %w", dir, packName, w.s.where, err)
		}
		if r.read != m.PackBytes {
			return PartManifest{}, w.errf("uploaded %d bytes of a %d-byte pack", r.read, m.PackBytes)
		}
		written = append(written, dir+packName)
		if err := w.s.syncObjects(written); err != nil {
			return PartManifest{}, w.errf("%w", err)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return PartManifest{}, w.errf("encode manifest: %w", err)
	}
	if err := w.s.bucket.WriteAll(ctx, dir+manifestName, b, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return PartManifest{}, w.errf("upload %s%s to %s: %w", dir, manifestName, w.s.where, err)
	}
	if err := w.s.syncObjects([]string{dir + manifestName}); err != nil {
		return PartManifest{}, w.errf("%w", err)
	}
	return m, nil
}

// Abort releases the writer: buffers dropped, spool file removed. Objects
// already uploaded stay for DeleteRuns. Calling it again, or after Finish,
// does nothing.
func (w *PartWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.pages, w.free, w.segs = nil, nil, nil
	w.byCount = [chunkPages + 1][]int{}
	if w.spool != nil {
		name := w.spool.Name()
		_ = w.spool.Close() // the file is removed next
		if err := os.Remove(name); err != nil {
			w.s.logger.Warn("remove spool file", zap.String("file", name), zap.Error(err))
		}
		w.spool, w.sw = nil, nil
	}
}

// removeSpools removes spool files a previous process left in dir.
func removeSpools(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, spoolPattern))
	if err != nil {
		return fmt.Errorf("feed store spool dir: %w", err)
	}
	for _, n := range names {
		if err := os.Remove(n); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("feed store spool dir: %w", err)
		}
	}
	return nil
}

// segmentReader reads the spool's segments in order.
type segmentReader struct {
	f    *os.File
	segs []segment
	at   int64 // within segs[0]
	read int64
}

func (r *segmentReader) Read(p []byte) (int, error) {
	for len(r.segs) > 0 && r.at == r.segs[0].n {
		r.segs, r.at = r.segs[1:], 0
	}
	if len(r.segs) == 0 {
		return 0, io.EOF
	}
	s := r.segs[0]
	n, err := r.f.ReadAt(p[:min(int64(len(p)), s.n-r.at)], s.off+r.at)
	r.at += int64(n)
	r.read += int64(n)
	if errors.Is(err, io.EOF) {
		if r.at < s.n {
			return n, io.ErrUnexpectedEOF // the spool is shorter than written
		}
		err = nil
	}
	return n, err
}
