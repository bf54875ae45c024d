package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `
feeds:
  - id: phones
    filter: offer.status == "ACTIVE" && offer.price < 100.0
    template: google-merchant
    destinations: [gmc]
`)
	bad := write("bad.yaml", `
kafka: {brokers: []}
full_pass: {guard: {max_drop: 2}}
feeds:
  - id: phones
    filter: offer.status == "ACTIVE" && sellr.status == "x"
    template: google-merchant
  - id: Bad_ID
    filter: offer.stock
    template: nope
`)
	tests := []struct {
		name string
		args []string
		code int
		want []string // substrings of the output
	}{
		{"valid config", []string{"validate", "-config", good}, 0, []string{"ok (1 feeds"}},
		{"every problem at once", []string{"validate", "-config", bad}, 1, []string{
			"kafka.brokers", "full_pass.guard.max_drop", "feeds[0] (phones).filter", "column", "sellr",
			"feeds[1]", "Bad_ID", "unknown template \"nope\"",
		}},
		{"missing file", []string{"validate", "-config", filepath.Join(dir, "none.yaml")}, 1, []string{"none.yaml"}},
		{"unknown command", []string{"frobnicate"}, 2, []string{"unknown command"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, &out, &errOut)
			all := out.String() + errOut.String()
			if code != tc.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			seen := map[string]bool{}
			for _, l := range strings.Split(strings.TrimSpace(errOut.String()), "\n") {
				if l != "" && seen[l] {
					t.Errorf("problem printed twice: %q", l)
				}
				seen[l] = true
			}
		})
	}
}
