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
	"slices"

	"github.com/klauspost/compress/flate"
	"go.uber.org/zap"
	"gocloud.dev/blob"
)

// chunkBytes is the raw buffer of one feed in a PartWriter: a full buffer
// becomes one deflate fragment (deflate.go).
const chunkBytes = 32 << 10

// compressLevel of the stored fragments (klauspost/compress's deflate,
// standard deflate). Chosen with BenchmarkPartWriter.
const compressLevel = 6

const spoolPattern = "part-*.spool"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segment is a run of one feed's fragments in the spool file.
type segment struct{ off, n int64 }

// PartWriter writes one partition's share of every file feed of one run
// (doc.go). Item buffers raw items per feed and compresses full buffers
// into a spool file; Finish uploads the pack and then the part manifest.
// Not safe for concurrent use: one goroutine per writer (writers of
// different partitions may run at once).
type PartWriter struct {
	s         *Store
	run       string
	partition int32
	attempt   string

	file    []bool   // per feed index: a file feed
	bufs    [][]byte // per feed: its raw buffer, nil when it holds none
	pos     []int    // per feed: its index in active, -1 if none
	active  []int    // feeds holding a buffer
	free    [][]byte // released buffers
	nbufs   int      // buffers allocated
	maxBufs int      // buffers allowed

	items, raw, stored []int64
	crc, rawCRC        []uint32 // CRC-32C of the stored bytes, CRC-32 of the raw ones
	segs               [][]segment

	zw    *flate.Writer
	zbuf  bytes.Buffer
	spool *os.File
	sw    *bufio.Writer
	off   int64

	scratch []int
	err     error // sticky: the spool failed
	done    bool
}

// NewPartWriter starts partition's part of run with a new random attempt
// id. Safe for concurrent use (of the Store).
func (s *Store) NewPartWriter(run string, partition int32) (*PartWriter, error) {
	if err := checkRun(run); err != nil {
		return nil, err
	}
	n := len(s.set.Feeds())
	zw, err := newFragmentWriter(s.level)
	if err != nil {
		return nil, fmt.Errorf("part writer: %w", err)
	}
	w := &PartWriter{s: s, run: run, partition: partition, attempt: newAttempt(),
		file: make([]bool, n), bufs: make([][]byte, n), pos: make([]int, n),
		maxBufs: max(1, s.PartBufferBytes/chunkBytes),
		items:   make([]int64, n), raw: make([]int64, n), stored: make([]int64, n),
		crc: make([]uint32, n), rawCRC: make([]uint32, n), segs: make([][]segment, n), zw: zw}
	for i, f := range s.set.Feeds() {
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
	b := w.bufs[feedIndex]
	if b == nil {
		if len(item) >= chunkBytes {
			return w.fragment(feedIndex, item)
		}
		var err error
		if b, err = w.take(feedIndex); err != nil {
			return err
		}
	}
	if len(b)+len(item) > cap(b) {
		if err := w.fragment(feedIndex, b); err != nil {
			return err
		}
		b = b[:0]
		if len(item) > cap(b) {
			w.bufs[feedIndex] = b
			return w.fragment(feedIndex, item)
		}
	}
	w.bufs[feedIndex] = append(b, item...)
	return nil
}

func (w *PartWriter) errf(format string, args ...any) error {
	return fmt.Errorf("part of run %s partition %d: "+format, append([]any{w.run, w.partition}, args...)...)
}

// take gives feed i a buffer, evicting others' when the budget is spent.
func (w *PartWriter) take(i int) ([]byte, error) {
	if len(w.free) == 0 && w.nbufs >= w.maxBufs {
		if err := w.evict(); err != nil {
			return nil, err
		}
	}
	var b []byte
	if n := len(w.free); n > 0 {
		b, w.free = w.free[n-1], w.free[:n-1]
	} else {
		b = make([]byte, 0, chunkBytes)
		w.nbufs++
	}
	w.pos[i] = len(w.active)
	w.active = append(w.active, i)
	w.bufs[i] = b
	return b, nil
}

// evict releases a quarter of the buffers: empty ones first, then the
// fullest (the largest fragments).
func (w *PartWriter) evict() error {
	w.scratch = append(w.scratch[:0], w.active...)
	slices.SortFunc(w.scratch, func(a, b int) int {
		la, lb := len(w.bufs[a]), len(w.bufs[b])
		if (la == 0) != (lb == 0) {
			if la == 0 {
				return -1
			}
			return 1
		}
		return lb - la
	})
	for _, i := range w.scratch[:max(1, len(w.scratch)/4)] {
		if err := w.release(i); err != nil {
			return err
		}
	}
	return nil
}

// release compresses feed i's buffer and returns it to the free list.
func (w *PartWriter) release(i int) error {
	b := w.bufs[i]
	if len(b) > 0 {
		if err := w.fragment(i, b); err != nil {
			return err
		}
	}
	w.free = append(w.free, b[:0])
	w.bufs[i] = nil
	last := w.active[len(w.active)-1]
	w.active[w.pos[i]] = last
	w.pos[last] = w.pos[i]
	w.active = w.active[:len(w.active)-1]
	w.pos[i] = -1
	return nil
}

// fragment compresses raw as one deflate fragment of feed i into the
// spool.
func (w *PartWriter) fragment(i int, raw []byte) error {
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
	appendFragment(&w.zbuf, w.zw, raw)
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
	w.rawCRC[i] = crc32.Update(w.rawCRC[i], crc32.IEEETable, raw)
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
	for _, i := range w.active {
		if len(w.bufs[i]) > 0 {
			if err := w.fragment(i, w.bufs[i]); err != nil {
				return PartManifest{}, err
			}
			w.bufs[i] = w.bufs[i][:0]
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
	for i, f := range w.s.set.Feeds() {
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
	w.bufs, w.free, w.active, w.segs = nil, nil, nil, nil
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
