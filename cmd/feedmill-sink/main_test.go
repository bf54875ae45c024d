package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/feedmill/feedmill/connectors/webhook"
)

func TestSinkVerifiesTimestampedSignature(t *testing.T) {
	secret := []byte("sink-secret-0123456789")
	now := time.Unix(1_760_000_000, 0)
	s := newSink(secret, time.Minute, func() time.Time { return now })
	body := []byte(`{"destinations":["d"],"items":[{"offer_id":"o-1","op":"upsert","seq":1}]}`)
	for _, tc := range []struct {
		name   string
		signed time.Time
		key    []byte
		want   int
	}{
		{"fresh", now.Add(-30 * time.Second), secret, http.StatusOK},
		{"replayed after the tolerance", now.Add(-2 * time.Minute), secret, http.StatusUnauthorized},
		{"wrong key", now, []byte("other-secret-0123456789"), http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
			ts := tc.signed.Unix()
			req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts, 10))
			req.Header.Set(webhook.HeaderSignature, webhook.Sign(tc.key, ts, body))
			rec := httptest.NewRecorder()
			s.hook(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tc.want)
			}
		})
	}
}
