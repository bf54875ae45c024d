package apptest

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 is an in-process S3-compatible store (gofakes3) on loopback with one
// bucket, for tests of the s3:// feed store. FailWrites makes it answer
// every write with 503 (an unreachable or failing store) while reads go
// on.
type S3 struct {
	URL    string // the full_pass.store URL of the bucket
	failed atomic.Bool
}

// FailWrites turns the write failures on or off.
func (s *S3) FailWrites(on bool) { s.failed.Store(on) }

// StartS3 starts the store with bucket until the test ends and sets the
// AWS credentials in the environment (child processes inherit them).
func StartS3(t testing.TB, bucket string) *S3 {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatalf("apptest: create bucket: %v", err)
	}
	s := &S3{}
	faker := gofakes3.New(backend).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.failed.Load() && r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "<Error><Code>ServiceUnavailable</Code><Message>injected write failure</Message></Error>", http.StatusServiceUnavailable)
			return
		}
		faker.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	q := url.Values{"endpoint": {srv.URL}, "region": {"us-east-1"}, "use_path_style": {"true"}}
	s.URL = "s3://" + bucket + "?" + q.Encode()
	return s
}
