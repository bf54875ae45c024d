package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the repository root seen from this package's directory.
const repoRoot = "../../.."

// TestGeneratedUpToDate fails when a committed generated file differs from
// what modelgen writes now: run `go generate ./internal/records`.
func TestGeneratedUpToDate(t *testing.T) {
	files, err := generate(model, filepath.Join(repoRoot, schemaDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("%d files generated", len(files))
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(repoRoot, name))
		if err != nil {
			t.Fatalf("%v (run go generate ./internal/records)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go generate ./internal/records", name)
		}
	}
}

// TestRunWrites regenerates into a temporary tree and compares it with the
// committed files, as go generate would write them.
func TestRunWrites(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"internal/records/schemas", "feeds", "processor"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	avscs, err := filepath.Glob(filepath.Join(repoRoot, schemaDir, "*.avsc"))
	if err != nil || len(avscs) == 0 {
		t.Fatalf("schemas: %v %v", avscs, err)
	}
	for _, f := range avscs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, schemaDir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{recordsFile, feedsFile, processorFile} {
		got, err1 := os.ReadFile(filepath.Join(dir, name))
		want, err2 := os.ReadFile(filepath.Join(repoRoot, name))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: regenerated file differs from the committed one", name)
		}
		if !bytes.HasPrefix(got, []byte("// Code generated ")) || !bytes.Contains(got, []byte("DO NOT EDIT.")) {
			t.Errorf("%s: no generated-code header", name)
		}
	}
}

// TestOrderAppendOnly pins the start of the field order: FieldMask bits and
// stored hashes are persisted, so these names must keep their positions.
// Only appending is allowed.
func TestOrderAppendOnly(t *testing.T) {
	pinned := []string{
		"offer.id", "offer.seller_id", "offer.product_id", "offer.title", "offer.description",
		"offer.category", "offer.price_minor", "offer.currency", "offer.stock", "offer.condition",
		"offer.status", "offer.url", "offer.images", "offer.brand", "offer.gtin",
		"offer.attributes", "offer.updated_at", "offer.version", "offer.price",
		"seller.id", "seller.name", "seller.country", "seller.status", "seller.super_seller",
		"seller.updated_at", "seller.version",
		"rating.seller_id", "rating.average", "rating.count", "rating.positive_pct",
		"rating.updated_at", "rating.version",
		"now",
	}
	if len(model.order) < len(pinned) || !slices.Equal(model.order[:len(pinned)], pinned) {
		t.Fatalf("order changed before position %d: it is append only", len(pinned))
	}
}

func TestResolveRejects(t *testing.T) {
	schemas := filepath.Join(repoRoot, schemaDir)
	with := func(edit func(d *description)) description {
		d := model
		d.order = slices.Clone(model.order)
		d.joined = slices.Clone(model.joined)
		edit(&d)
		return d
	}
	tests := []struct {
		name string
		d    description
		want string
	}{
		{"missing field", with(func(d *description) {
			d.order = slices.DeleteFunc(d.order, func(s string) bool { return s == "rating.count" })
		}), "rating.count missing"},
		{"twice", with(func(d *description) { d.order = append(d.order, "offer.id") }), "listed twice"},
		{"unknown", with(func(d *description) { d.order = append(d.order, "offer.nope") }), "no such field"},
		{"no now", with(func(d *description) { d.order = slices.DeleteFunc(d.order, func(s string) bool { return s == "now" }) }), "now missing"},
		{"bad join", with(func(d *description) { d.joined[0].joinOn = "nope" }), "joinOn"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := generate(tc.d, schemas)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// TestGoName pins the Go names of Avro names.
func TestGoName(t *testing.T) {
	for in, want := range map[string]string{
		"id": "ID", "seller_id": "SellerID", "url": "URL", "gtin": "GTIN",
		"positive_pct": "PositivePct", "super_seller": "SuperSeller", "price_minor": "PriceMinor",
	} {
		if got := goName(in); got != want {
			t.Errorf("goName(%q) = %q, want %q", in, got, want)
		}
	}
}
