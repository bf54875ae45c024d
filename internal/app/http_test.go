package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/feeds"
	"github.com/feedmill/feedmill/processor/api"
	"github.com/feedmill/feedmill/processor/feedstore"
)

// guard is how long a test waits for an event that must happen (a
// closed connection, a returned handler) before calling it a failure.
const guard = 30 * time.Second

// testFeed is a file feed; publishFeed writes a version of it.
var testFeed = config.Feed{ID: "big", Filter: "true", Template: config.TemplateCeneo, File: true}

// publishFeed publishes a document of feed testFeed with items items of
// itemBytes bytes each in the file store at dir, like a full pass does.
func publishFeed(t *testing.T, dir string, items, itemBytes int) (*feeds.Set, *feedstore.Store) {
	t.Helper()
	set, err := feeds.Compile([]config.Feed{testFeed}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := feedstore.Open(ctx, "file://"+filepath.ToSlash(dir), t.TempDir(), set, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	w, err := st.NewPartWriter("run-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	item := []byte("<o>" + strings.Repeat("x", itemBytes-len("<o></o>")) + "</o>")
	f, _ := set.Feed(testFeed.ID)
	for range items {
		if err := w.Item(f.Index, item); err != nil {
			t.Fatal(err)
		}
	}
	m, err := w.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Publish(ctx, "run-1", time.Unix(1_700_000_000, 0), []feedstore.PartRef{m.Ref()}); err != nil {
		t.Fatal(err)
	}
	return set, st
}

// smallBuffers shrinks the send buffer of accepted connections so a
// client that stops reading blocks the server's writes early.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(16 << 10) // best effort: the feed is far larger anyway
	}
	return c, err
}

// serveTest serves mux through the processor's server (newServer) with
// limits l on loopback and returns its address.
func serveTest(t *testing.T, l HTTPLimits, mux http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(config.HTTP{Listen: ln.Addr().String(), AdminToken: "tok"}, l.withDefaults(), mux)
	if srv.WriteTimeout != 0 {
		t.Fatalf("server WriteTimeout %s: big feeds would be cut", srv.WriteTimeout)
	}
	go func() { _ = srv.Serve(smallBuffers{ln}) }() // ends with Close
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func healthMux() *http.ServeMux {
	mux := http.NewServeMux()
	(&api.API{Registry: prometheus.NewRegistry(), Logger: zap.NewNop()}).Register(mux)
	return mux
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitClosed reads c until the server closes it; it fails the test if
// the connection is still open after guard.
func waitClosed(t *testing.T, c net.Conn, r io.Reader) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(guard))
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s", guard)
	}
}

func TestIdleKeepAliveClosed(t *testing.T) {
	// Read and header timeouts far above the guard: only IdleTimeout can
	// close the connection in time.
	addr := serveTest(t, HTTPLimits{Idle: 50 * time.Millisecond, Read: time.Hour, ReadHeader: time.Hour}, healthMux())
	c := dial(t, addr)
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: feedmill\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body) // drained to reach the idle state
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("status %d close %v, want a kept-alive 200", resp.StatusCode, resp.Close)
	}
	waitClosed(t, c, br)
}

func TestTrickledBodyCut(t *testing.T) {
	mux := healthMux()
	readErr := make(chan error, 1)
	mux.HandleFunc("POST /api/echo", func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
		if err != nil {
			api.WriteError(w, http.StatusRequestTimeout, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	addr := serveTest(t, HTTPLimits{Read: 100 * time.Millisecond, Idle: time.Hour, ReadHeader: time.Hour}, mux)
	c := dial(t, addr)
	// Headers promise 1000 bytes; 10 come, then nothing.
	if _, err := io.WriteString(c, "POST /api/echo HTTP/1.1\r\nHost: feedmill\r\nAuthorization: Bearer tok\r\n"+
		"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\": \""); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-readErr:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("handler read %v, want a timeout", err)
		}
	case <-time.After(guard):
		t.Fatalf("trickled body still held the handler after %s", guard)
	}
	waitClosed(t, c, c)
}

func TestBodyLimitThroughServer(t *testing.T) {
	mux := healthMux()
	mux.HandleFunc("POST /api/echo", func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if api.ReadJSON(w, r, &v) {
			w.WriteHeader(http.StatusNoContent)
		}
	})
	addr := serveTest(t, HTTPLimits{MaxBodyBytes: 1 << 10}, mux)
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			var body io.Reader = strings.NewReader(`{"name": "` + strings.Repeat("x", 4<<10) + `"}`)
			if chunked {
				body = io.MultiReader(body)
			}
			req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/echo", body) // valid request
			req.Header.Set("Authorization", "Bearer tok")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body) // the status is what is checked
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"error"`) {
				t.Fatalf("status %d body %s, want 413 with a JSON error", resp.StatusCode, b)
			}
		})
	}
}

func TestStalledFeedReaderReleasesHandler(t *testing.T) {
	_, ff := publishFeed(t, t.TempDir(), 1024, 8<<10) // 8 MiB
	ff.ChunkWriteTimeout = 50 * time.Millisecond
	mux := http.NewServeMux()
	ff.Register(mux)
	returned := make(chan struct{}, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		returned <- struct{}{}
	})
	addr := serveTest(t, HTTPLimits{Read: time.Hour, Idle: time.Hour, ReadHeader: time.Hour}, h)

	// A steady reader gets the whole document: the bound is per chunk.
	resp, err := http.Get("http://" + addr + "/feeds/big.xml")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || n < 8<<20 {
		t.Fatalf("steady reader: status %d, %d bytes, %v", resp.StatusCode, n, err)
	}
	<-returned

	// A client that reads the headers and stops.
	c := dial(t, addr)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10) // best effort: the feed is far larger anyway
	}
	if _, err := io.WriteString(c, "GET /feeds/big.xml HTTP/1.1\r\nHost: feedmill\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-returned:
	case <-time.After(guard):
		t.Fatalf("handler still writing to a stalled client after %s", guard)
	}
}
