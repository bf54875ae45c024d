// Command feedmill-sink is the demo receiver of the docker-compose stack:
// it accepts feedmill-connector-webhook batches on POST /hook, checks the
// X-Feedmill-Signature HMAC over X-Feedmill-Timestamp and the body with
// the secret in FEEDMILL_SINK_SECRET (at least config.MinSecretBytes),
// refuses requests signed longer ago than FEEDMILL_SINK_TOLERANCE
// (default 5m), keeps the offers it holds in memory, answers every item
// "ok", and serves /healthz and /metrics (item and request counters,
// held offers).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/connectors/webhook"
)

type sink struct {
	secret    []byte
	tolerance time.Duration
	now       func() time.Time

	mu       sync.Mutex
	held     map[string]int64 // offer id -> seq
	requests int
	badSig   int
	upserts  int
	deletes  int
	repeated int
	keys     map[string]bool
}

func (s *sink) hook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	if err := webhook.Verify(s.secret, r.Header, body, s.now(), s.tolerance); err != nil {
		s.mu.Lock()
		s.badSig++
		s.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, "bad payload: "+err.Error(), http.StatusUnprocessableEntity)
		return
	}
	ans := webhook.Answer{Results: make([]webhook.AnswerItem, len(p.Items))}
	s.mu.Lock()
	s.requests++
	key := r.Header.Get(webhook.HeaderIdempotency)
	if s.keys[key] {
		s.repeated++
	}
	s.keys[key] = true
	for i, it := range p.Items {
		ans.Results[i] = webhook.AnswerItem{OfferID: it.OfferID, Status: "ok"}
		if it.Seq <= s.held[it.OfferID] && it.Op == "upsert" {
			continue // an older or repeated state: already applied
		}
		if it.Op == "upsert" {
			s.held[it.OfferID] = it.Seq
			s.upserts++
		} else {
			delete(s.held, it.OfferID)
			s.deletes++
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans) // the connector retries on a failed answer
}

func newSink(secret []byte, tolerance time.Duration, now func() time.Time) *sink {
	return &sink{secret: secret, tolerance: tolerance, now: now, held: map[string]int64{}, keys: map[string]bool{}}
}

func (s *sink) metrics(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "feedmill_sink_requests_total %d\nfeedmill_sink_bad_signatures_total %d\n", s.requests, s.badSig)
	fmt.Fprintf(w, "feedmill_sink_upserts_total %d\nfeedmill_sink_deletes_total %d\n", s.upserts, s.deletes)
	fmt.Fprintf(w, "feedmill_sink_repeated_requests_total %d\nfeedmill_sink_held_offers %d\n", s.repeated, len(s.held))
}

func main() {
	listen := os.Getenv("FEEDMILL_SINK_LISTEN")
	if listen == "" {
		listen = ":8099"
	}
	secret := strings.TrimSpace(os.Getenv("FEEDMILL_SINK_SECRET"))
	if len(secret) < config.MinSecretBytes {
		log.Fatalf("FEEDMILL_SINK_SECRET is %d bytes after trimming whitespace; want at least %d", len(secret), config.MinSecretBytes)
	}
	tolerance := webhook.DefaultTolerance
	if v := os.Getenv("FEEDMILL_SINK_TOLERANCE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			log.Fatalf("FEEDMILL_SINK_TOLERANCE %q: want a positive duration", v)
		}
		tolerance = d
	}
	s := newSink([]byte(secret), tolerance, time.Now)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", s.hook)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx) // exiting anyway
	}()
	log.Printf("feedmill-sink listening on %s", listen)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
