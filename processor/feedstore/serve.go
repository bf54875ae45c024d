package feedstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/flate"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/processor/api"
)

// Register adds GET (and HEAD) /feeds/{file} to mux.
func (s *Store) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /feeds/{file}", s.serve)
}

// copyChunk is the unit of a served document's writes, each with its own
// write deadline (ChunkWriteTimeout).
const copyChunk = 64 << 10

// part is one piece of a representation: in memory (header, footer) or
// stored (a feed's fragments in a pack).
type part struct {
	n      int64  // length in the representation
	mem    []byte // set for header and footer
	stored *Piece
}

func parts(m *FeedManifest, gz bool) []part {
	ps := make([]part, 0, len(m.Pieces)+2)
	head, foot := m.Header, m.Footer
	if gz {
		head, foot = m.HeaderGz, m.FooterGz
	}
	ps = append(ps, part{n: int64(len(head)), mem: head})
	for i := range m.Pieces {
		p := &m.Pieces[i]
		n := p.RawBytes
		if gz {
			n = p.Bytes
		}
		if n > 0 {
			ps = append(ps, part{n: n, stored: p})
		}
	}
	return append(ps, part{n: int64(len(foot)), mem: foot})
}

// serve streams the published document of one feed, gzip (the stored
// fragments as they are) or plain (decompressed on the fly), whole or one
// byte range, reading the pieces the manifest names one after the other.
func (s *Store) serve(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutSuffix(r.PathValue("file"), ".xml")
	f, known := s.set.Load().Feed(id)
	if !ok || !known || !f.File {
		api.WriteError(w, http.StatusNotFound, "no file feed "+strconv.Quote(id))
		return
	}
	m, err := s.Manifest(r.Context(), id)
	if errors.Is(err, ErrNotPublished) {
		w.Header().Set("Retry-After", "60")
		api.WriteError(w, http.StatusServiceUnavailable, "feed "+strconv.Quote(id)+" has not been published yet")
		return
	}
	if err != nil {
		s.storeError("read feed manifest", id, "", err)
		api.WriteError(w, http.StatusBadGateway, "feed "+strconv.Quote(id)+": the feed store is unavailable; try again later")
		return
	}
	gz := acceptsGzip(r.Header.Get("Accept-Encoding"))
	etag := `"` + m.Run + "." + id
	if gz {
		etag += ".gz"
	}
	etag += `"`
	modified := m.Generated.UTC().Truncate(time.Second)
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Vary", "Accept-Encoding")
	h.Set("Cache-Control", "no-cache")
	h.Set("Accept-Ranges", "bytes")
	if !modified.IsZero() {
		h.Set("Last-Modified", modified.Format(http.TimeFormat))
	}
	if notModified(r, etag, modified) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	ps := parts(&m, gz)
	var size int64
	for _, p := range ps {
		size += p.n
	}
	start, end, status := int64(0), size, http.StatusOK
	if rh := r.Header.Get("Range"); rh != "" && rangeApplies(r.Header.Get("If-Range"), etag, modified) {
		rs, re, ok, err := parseRange(rh, size)
		if err != nil {
			h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
			api.WriteError(w, http.StatusRequestedRangeNotSatisfiable, "range "+strconv.Quote(rh)+": "+err.Error())
			return
		}
		if ok {
			start, end, status = rs, re, http.StatusPartialContent
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end-1, size))
		}
	}
	st := &stream{s: s, ctx: r.Context(), feed: id, run: m.Run, gz: gz}
	// Open the first stored piece before answering, so a store that
	// cannot be read gives a 502 rather than a cut 200.
	var first io.ReadCloser
	if r.Method != http.MethodHead {
		at := int64(0)
		for i := range ps {
			p := &ps[i]
			if at+p.n > start && at < end && p.stored != nil {
				skip := max(0, start-at)
				first, err = st.open(p, skip, min(end, at+p.n)-at-skip)
				if err != nil {
					s.storeError("open feed piece", id, m.Run, err)
					for _, k := range []string{"ETag", "Last-Modified", "Accept-Ranges", "Content-Range"} {
						h.Del(k)
					}
					api.WriteError(w, http.StatusBadGateway, "feed "+strconv.Quote(id)+": the feed store is unavailable; try again later")
					return
				}
				break
			}
			at += p.n
		}
	}
	defer func() {
		if first != nil {
			_ = first.Close() // read only
		}
	}()
	h.Set("Content-Type", "application/xml; charset=utf-8")
	if gz {
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.FormatInt(end-start, 10))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	st.rc = http.NewResponseController(w)
	st.w = w
	st.timeout = s.ChunkWriteTimeout
	st.buf = make([]byte, copyChunk)
	at := int64(0)
	for i := range ps {
		p := &ps[i]
		if at+p.n <= start || at >= end {
			at += p.n
			continue
		}
		skip := max(0, start-at)
		n := min(end, at+p.n) - at - skip
		at += p.n
		var pre io.ReadCloser
		if p.stored != nil {
			pre, first = first, nil // copy closes it
		}
		if !st.copy(p, skip, n, pre) {
			return // the response is cut; Content-Length tells the client
		}
	}
	// The last deadline also bounds the server's final flush; the server
	// clears it before reusing the connection.
	st.deadline()
}

// stream writes one response.
type stream struct {
	s       *Store
	ctx     context.Context
	feed    string
	run     string
	gz      bool
	w       io.Writer
	rc      *http.ResponseController
	timeout time.Duration
	buf     []byte
	zr      io.ReadCloser // a flate reader, reused (flate.Resetter)
}

func (st *stream) deadline() {
	if st.timeout > 0 {
		_ = st.rc.SetWriteDeadline(time.Now().Add(st.timeout)) // a writer without deadlines: no bound
	}
}

func (st *stream) write(b []byte) bool {
	st.deadline()
	_, err := st.w.Write(b)
	return err == nil // a failed write: the client went away or stalled
}

// open opens n bytes of stored piece p from skip in the representation.
// For gzip the reader is exactly those stored bytes; for plain it
// decompresses the piece from its start (copy skips the first skip bytes).
func (st *stream) open(p *part, skip, n int64) (io.ReadCloser, error) {
	sp := p.stored
	if st.gz {
		return st.s.bucket.NewRangeReader(st.ctx, sp.Object, sp.Offset+skip, n, nil)
	}
	return st.s.bucket.NewRangeReader(st.ctx, sp.Object, sp.Offset, sp.Bytes, nil)
}

// copy writes n bytes of p from skip. pre is p's reader when already
// opened (the first stored piece). It reports whether the response may
// go on.
func (st *stream) copy(p *part, skip, n int64, pre io.ReadCloser) bool {
	if p.mem != nil {
		b := p.mem[skip : skip+n]
		for len(b) > 0 {
			c := b[:min(len(b), copyChunk)]
			if !st.write(c) {
				return false
			}
			b = b[len(c):]
		}
		return true
	}
	sp := p.stored
	rd := pre
	if rd == nil {
		var err error
		if rd, err = st.open(p, skip, n); err != nil {
			st.s.storeError("open feed piece", st.feed, st.run, err)
			return false
		}
	}
	defer rd.Close() //nolint:errcheck // read only
	// Whole stored bytes read: check them against the manifest.
	whole := skip == 0 && n == p.n
	cr := &crcReader{r: rd, tab: castagnoli}
	var src io.Reader = cr
	var raw *crcReader
	if !st.gz {
		// The fragments and a final block: one deflate stream.
		in := io.MultiReader(cr, bytes.NewReader(finalBlock))
		if st.zr == nil {
			st.zr = flate.NewReader(in)
		} else if err := st.zr.(flate.Resetter).Reset(in, nil); err != nil {
			st.s.storeError("read feed piece "+sp.Object, st.feed, st.run, err)
			return false
		}
		raw = &crcReader{r: st.zr, tab: crc32.IEEETable}
		if skip > 0 {
			if _, err := io.CopyN(io.Discard, raw, skip); err != nil {
				st.s.storeError("read feed piece "+sp.Object, st.feed, st.run, err)
				return false
			}
		}
		src = raw
		// Decompressing reads the piece's stored bytes from the start.
		whole = skip+n == p.n
	}
	left := n
	for left > 0 {
		k, err := src.Read(st.buf[:min(int64(len(st.buf)), left)])
		if k > 0 {
			left -= int64(k)
			if !st.write(st.buf[:k]) {
				return false
			}
		}
		if err != nil && (left > 0 || !errors.Is(err, io.EOF)) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			st.s.storeError("read feed piece "+sp.Object, st.feed, st.run, err)
			return false
		}
		if err != nil {
			break
		}
	}
	if !whole {
		return true
	}
	// Read to the end: the rest must be empty, and the bytes must be those
	// the part recorded.
	if k, err := src.Read(st.buf[:1]); k != 0 || !errors.Is(err, io.EOF) {
		if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("longer than its manifest says")
		}
		st.s.storeError("read feed piece "+sp.Object, st.feed, st.run, err)
		return false
	}
	if cr.n != sp.Bytes || cr.crc != sp.CRC32C {
		st.s.storeError("check feed piece "+sp.Object, st.feed, st.run,
			fmt.Errorf("%d bytes with CRC-32C %08x, the manifest says %d bytes %08x", cr.n, cr.crc, sp.Bytes, sp.CRC32C))
		return false
	}
	if raw != nil && (raw.n != sp.RawBytes || raw.crc != sp.RawCRC32) {
		st.s.storeError("check feed piece "+sp.Object, st.feed, st.run,
			fmt.Errorf("decompressed to %d bytes with CRC-32 %08x, the manifest says %d bytes %08x", raw.n, raw.crc, sp.RawBytes, sp.RawCRC32))
		return false
	}
	return true
}

// crcReader computes a CRC of what it reads.
type crcReader struct {
	r   io.Reader
	tab *crc32.Table
	crc uint32
	n   int64
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc = crc32.Update(c.crc, c.tab, p[:n])
	c.n += int64(n)
	return n, err
}

// storeError logs a store failure met while serving, at most once per
// interval (partners poll; a store outage would flood the log).
func (s *Store) storeError(what, feed, run string, err error) {
	if errors.Is(err, context.Canceled) {
		return // the client went away
	}
	s.serveLog.Do(func() {
		s.logger.Error("serve feed: "+what, zap.String("feed", feed), zap.String("run", run), zap.String("store", s.where), zap.Error(err))
	})
}

func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		enc = strings.TrimSpace(enc)
		if !strings.EqualFold(enc, "gzip") && !strings.EqualFold(enc, "x-gzip") {
			continue
		}
		for param := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(param), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && q == 0 {
					return false
				}
			}
		}
		return true
	}
	return false
}

// notModified applies If-None-Match, or when absent If-Modified-Since
// (RFC 9110, 13.2.2).
func notModified(r *http.Request, etag string, modified time.Time) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		for part := range strings.SplitSeq(inm, ",") {
			p := strings.TrimSpace(part)
			if p == "*" || strings.TrimPrefix(p, "W/") == etag {
				return true
			}
		}
		return false
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" && !modified.IsZero() {
		t, err := http.ParseTime(ims)
		return err == nil && !modified.After(t)
	}
	return false
}

// rangeApplies applies If-Range: a strong ETag equal to etag, or the
// Last-Modified date exactly.
func rangeApplies(ifRange, etag string, modified time.Time) bool {
	if ifRange == "" {
		return true
	}
	if strings.HasPrefix(ifRange, `"`) || strings.HasPrefix(ifRange, "W/") {
		return ifRange == etag
	}
	t, err := http.ParseTime(ifRange)
	return err == nil && !modified.IsZero() && t.Equal(modified)
}

var errUnsatisfiable = errors.New("not satisfiable")

// parseRange reads a Range header of one byte range over size bytes and
// returns [start, end). ok is false when the header is to be ignored (not
// bytes, or several ranges: the whole document is sent); an error means
// 416.
func parseRange(h string, size int64) (start, end int64, ok bool, err error) {
	spec, isBytes := strings.CutPrefix(h, "bytes=")
	if !isBytes || strings.Contains(spec, ",") {
		return 0, 0, false, nil
	}
	a, b, dash := strings.Cut(strings.TrimSpace(spec), "-")
	if !dash {
		return 0, 0, false, errUnsatisfiable
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 || size == 0 {
			return 0, 0, false, errUnsatisfiable
		}
		return max(0, size-n), size, true, nil
	}
	start, err = strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false, errUnsatisfiable
	}
	if b == "" {
		return start, size, true, nil
	}
	last, err := strconv.ParseInt(b, 10, 64)
	if err != nil || last < start {
		return 0, 0, false, errUnsatisfiable
	}
	return start, min(last+1, size), true, nil
}
