package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/feedmill/feedmill/processor/api"
)

func TestAdminAuthBearerScheme(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h := api.AdminAuth("s3cret", ok)
	tests := []struct {
		name   string
		path   string
		header string
		want   int
	}{
		{"canonical", "/api/runs", "Bearer s3cret", http.StatusNoContent},
		{"lower case scheme", "/api/runs", "bearer s3cret", http.StatusNoContent},
		{"upper case scheme", "/api/runs", "BEARER s3cret", http.StatusNoContent},
		{"mixed case scheme", "/api/feeds", "bEaReR s3cret", http.StatusNoContent},
		{"extra spaces", "/api/runs", "  Bearer   s3cret ", http.StatusNoContent},
		{"token case matters", "/api/runs", "Bearer S3CRET", http.StatusUnauthorized},
		{"wrong token", "/api/runs", "Bearer nope", http.StatusUnauthorized},
		{"token prefix", "/api/runs", "Bearer s3cre", http.StatusUnauthorized},
		{"other scheme", "/api/runs", "Basic s3cret", http.StatusUnauthorized},
		{"scheme only", "/api/runs", "Bearer", http.StatusUnauthorized},
		{"no space", "/api/runs", "Bearers3cret", http.StatusUnauthorized},
		{"missing", "/api", "", http.StatusUnauthorized},
		{"not api", "/feeds/x.xml", "", http.StatusNoContent},
		{"healthz", "/healthz", "bearer wrong", http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.path, nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d (body %s)", w.Code, tt.want, w.Body)
			}
			if tt.want == http.StatusUnauthorized && !strings.Contains(w.Body.String(), `"error"`) {
				t.Fatalf("body %s, want a JSON error", w.Body)
			}
		})
	}
}

func TestLimitBodies(t *testing.T) {
	type doc struct {
		Name string `json:"name"`
	}
	var got doc
	h := api.LimitBodies(64, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = doc{}
		if !api.ReadJSON(w, r, &got) {
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	big := `{"name": "` + strings.Repeat("x", 100) + `"}`
	tests := []struct {
		name    string
		body    string
		chunked bool // no Content-Length: the bound is hit while reading
		want    int
	}{
		{"small", `{"name": "a"}`, false, http.StatusNoContent},
		{"small chunked", `{"name": "a"}`, true, http.StatusNoContent},
		{"content length over the bound", big, false, http.StatusRequestEntityTooLarge},
		{"chunked over the bound", big, true, http.StatusRequestEntityTooLarge},
		{"malformed", `{"name": `, false, http.StatusBadRequest},
		{"unknown field", `{"nom": "a"}`, false, http.StatusBadRequest},
		{"two documents", `{"name": "a"} {}`, false, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // unknown length: chunked
			}
			resp, err := http.Post(srv.URL, "application/json", body)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body) // the status is what is checked
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.want, b)
			}
			if tt.want != http.StatusNoContent {
				var e map[string]string
				if err := json.Unmarshal(b, &e); err != nil || e["error"] == "" {
					t.Fatalf("body %q, want a JSON error", b)
				}
			}
			if tt.want == http.StatusNoContent && got.Name != "a" {
				t.Fatalf("decoded %+v", got)
			}
		})
	}
}
