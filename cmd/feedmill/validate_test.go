package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateWarnings(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	risky := write("risky.yaml", `
feeds:
  - id: phones
    filter: |-
      offer.status == "ACTIVE" &&
      seller.status == "ACTIVE"
    template: partner
  - id: sizes
    filter: offer.stock > 0 && int(offer.attributes["size"]) > 40
    template: google-merchant
templates:
  - id: partner
    root: products
    item: product
    fields:
      - {name: id, value: offer.id}
      - {name: image, value: 'offer.images[0]'}
`)
	clean := write("clean.yaml", `
feeds:
  - id: phones
    filter: offer.status == "ACTIVE" && seller?.status == "ACTIVE" && (rating?.average ?? 0) >= 4
    template: google-merchant
`)
	riskyOut := []string{
		risky + ": ok (2 feeds, 1 custom templates)",
		"feeds[0] (phones).filter:2:1: warning: seller.status fails when seller is nil",
		"feeds[1] (sizes).filter:1:20: warning: int(offer.attributes.size) fails",
		"templates[0] (partner).fields[1] (image).value:1:13: warning: offer.images[0] fails when offer.images is empty",
	}
	tests := []struct {
		name string
		args []string
		code int
		want []string // the lines of stdout, by prefix
	}{
		{"warnings do not fail", []string{"validate", "-config", risky}, 0, riskyOut},
		{"strict fails on warnings", []string{"validate", "-strict", "-config", risky}, 1, riskyOut},
		{"strict without warnings", []string{"validate", "-strict", "-config", clean}, 0, []string{clean + ": ok (1 feeds, 0 custom templates)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, &out, &errOut)
			if code != tc.code {
				t.Errorf("exit %d, want %d; output:\n%s%s", code, tc.code, out.String(), errOut.String())
			}
			if errOut.Len() > 0 {
				t.Errorf("stderr: %s", errOut.String())
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(tc.want), out.String())
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("line %d: %q\nwant prefix %q", i, lines[i], w)
				}
			}
		})
	}
}
