package feeds

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/feedmill/feedmill/config"
	"github.com/feedmill/feedmill/internal/records"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func partnerX() config.Template {
	return config.Template{ID: "partner-x", Root: "products", Item: "product", Fields: []config.TemplateField{
		{Name: "id", Value: "offer.id"},
		{Name: "name", Value: "offer.title"},
		{Name: "price", Value: "offer.price"},
		{Name: "price_minor", Value: "offer.price_minor"},
		{Name: "seller", Value: "seller?.name"},
		{Name: "rating", Value: "rating?.average"},
		{Name: "brand", Value: "offer.brand"},
		{Name: "colour", Value: `offer.attributes["colour"]`},
		{Name: "in_stock", Value: `offer.stock > 0`},
		{Name: "images", Value: `len(offer.images)`},
		{Name: "category", Value: `replace(offer.category, "/", " > ")`},
		{Name: "launched", Value: `date("2025-01-02T03:04:05+01:00")`},
	}}
}

// allTemplates compiles one feed per built-in template plus partner-x.
func allTemplates(t testing.TB) *Set {
	t.Helper()
	var fs []config.Feed
	for _, name := range append(BuiltinTemplates(), "partner-x") {
		fs = append(fs, config.Feed{ID: "feed-" + name, Filter: "true", Template: name, File: true})
	}
	return mustCompile(t, fs, []config.Template{partnerX()})
}

// hostileOffer carries everything that could break a document.
func hostileOffer() *records.Offer {
	o := testOffer()
	o.ID = "id-<&>\"'-" + strings.Repeat("x", 60)
	o.Title = strings.Repeat("Żółw 🐢 עברית ", 300)[:0] + strings.Repeat("ż🐢ע", 1334)[:0] + hostileTitle()
	o.Description = "ctl:\x00\x01\x08\x0b\x0c\x1f tab:\t nl:\n cr:\r ]]> & <script>alert(1)</script> \uFFFE\uFFFF bad:\xff\xfe\xed\xa0\x80 rtl:\u202eעברית\u202c emoji:👩‍👩‍👧"
	o.Category = "Home & Garden/<Tools>/]]>"
	o.URL = "https://shop.example/o?a=1&b=\"2\""
	o.Images = []string{"https://img.example/1.jpg?x=1&y=2", "", "https://img.example/3.jpg"}
	o.Brand = strp("Brand \"&\" <Co>")
	o.GTIN = nil
	o.Attributes = map[string]string{"zeta": "]]>", "alpha": "<b>", "mid\x01dle": "a\x00b"}
	o.Condition = "REFURBISHED"
	return o
}

// hostileTitle is 4000 characters of mixed scripts and emoji with hostile
// markup near the start.
func hostileTitle() string {
	var b strings.Builder
	b.WriteString("<script>&amp;]]>\x07")
	for utf8.RuneCountInString(b.String()) < 4000 {
		b.WriteString("ż🐢ע")
	}
	s := b.String()
	for utf8.RuneCountInString(s) > 4000 {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

func minimalOffer() *records.Offer {
	o := &records.Offer{ID: "jp-1", Title: "Minimal", Category: "", PriceMinor: 12999, Currency: "JPY", Status: "ENDED", Condition: "USED"}
	records.DerivePrice(o)
	return o
}

func goldenViews() []*View {
	return []*View{
		{Offer: testOffer(), Seller: testSeller(), Rating: testRating()},
		{Offer: hostileOffer(), Seller: &records.Seller{Name: "Sklep <Ala> & \x02Kot"}},
		{Offer: minimalOffer()},
		{Offer: func() *records.Offer {
			o := minimalOffer()
			o.Currency = "KWD"
			o.PriceMinor = 5
			records.DerivePrice(o)
			return o
		}(), Seller: testSeller()},
	}
}

func renderDocument(e *Evaluator, f *Feed, views []*View) []byte {
	doc := f.Template.AppendHeader(nil, f, testNow)
	for _, v := range views {
		doc = e.AppendItem(doc, f.Template, v, testNow)
	}
	return f.Template.AppendFooter(doc)
}

// checkWellFormed parses doc with a strict decoder.
func checkWellFormed(t testing.TB, doc []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, doc)
		}
	}
}

func TestGolden(t *testing.T) {
	s := allTemplates(t)
	e := s.NewEvaluator()
	for _, f := range s.Feeds() {
		t.Run(f.Template.ID, func(t *testing.T) {
			doc := renderDocument(e, f, goldenViews())
			checkWellFormed(t, doc)
			path := filepath.Join("testdata", f.Template.ID+".xml")
			if *update {
				if err := os.WriteFile(path, doc, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(doc, want) {
				t.Errorf("%s differs from the golden file (run with -update and review the diff)\n%s", path, doc)
			}
		})
	}
	for i, n := range e.RenderErrors() {
		if n != 0 {
			t.Errorf("template %d: %d render errors", i, n)
		}
	}
}

func TestEscapeMatchesEncodingXML(t *testing.T) {
	tests := []string{
		"", "plain", `<a href="x">&'</a>`, "tab\tnl\nCR\r", "żółw 🐢 עברית", "]]>", "a\u2028b", "\uFFFD",
	}
	for _, s := range tests {
		var want bytes.Buffer
		if err := xml.EscapeText(&want, []byte(s)); err != nil {
			t.Fatal(err)
		}
		if got := appendEscaped(nil, s, 0); string(got) != want.String() {
			t.Errorf("appendEscaped(%q) = %q, encoding/xml %q", s, got, want.String())
		}
		if got := appendEscaped(nil, []byte(s), 0); string(got) != want.String() {
			t.Errorf("appendEscaped([]byte %q) = %q, encoding/xml %q", s, got, want.String())
		}
	}
}

func TestSanitiseAndTruncate(t *testing.T) {
	tests := []struct {
		in       string
		maxRunes int
		want     string
	}{
		{"a\x00b\x1fc\x7fd", 0, "ab" + "c\x7fd"},
		{"bad\xffutf8\xed\xa0\x80!", 0, "badutf8!"},
		{"\uFFFE\uFFFFok", 0, "ok"},
		{"żółw", 2, "żó"},
		{"🐢🐢🐢", 2, "🐢🐢"},
		{"\x01\x02abc", 2, "ab"},
		{"a&b", 2, "a&amp;"},
	}
	for _, tc := range tests {
		if got := string(appendEscaped(nil, tc.in, tc.maxRunes)); got != tc.want {
			t.Errorf("appendEscaped(%q, %d) = %q, want %q", tc.in, tc.maxRunes, got, tc.want)
		}
	}
	cdata := []struct{ in, want string }{
		{"", "<![CDATA[]]>"},
		{"a]]>b", "<![CDATA[a]]]]><![CDATA[>b]]>"},
		{"]]]>>", "<![CDATA[]]]]]><![CDATA[>>]]>"},
		{"x\x00y", "<![CDATA[xy]]>"},
	}
	for _, tc := range cdata {
		if got := string(appendCDATA(nil, tc.in, 0)); got != tc.want {
			t.Errorf("appendCDATA(%q) = %q, want %q", tc.in, got, tc.want)
		}
		var v struct {
			Text string `xml:",chardata"`
		}
		if err := xml.Unmarshal([]byte("<x>"+string(appendCDATA(nil, tc.in, 0))+"</x>"), &v); err != nil {
			t.Errorf("appendCDATA(%q): %v", tc.in, err)
		}
	}
}

// randomString mixes ASCII, markup, controls, multi-byte runes and raw
// invalid bytes.
func randomString(r *rand.Rand, maxLen int) string {
	pieces := []string{"a", "Z", " ", "&", "<", ">", "\"", "'", "]]>", "]", "\x00", "\x01", "\x1f", "\t", "\n", "\r",
		"ż", "🐢", "ע", "\u202e", "\uFFFE", "\uFFFF", "\xff", "\xed\xa0\x80", "\xe2\x82", "<script>", "&amp;", "\x7f"}
	var b strings.Builder
	for n := r.IntN(maxLen + 1); n > 0; n-- {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

func randomView(r *rand.Rand) *View {
	o := &records.Offer{
		ID: randomString(r, 80), Title: randomString(r, 400), Description: randomString(r, 60),
		Category: randomString(r, 10), PriceMinor: r.IntN(1_000_000), Currency: []string{"PLN", "JPY", "KWD", ""}[r.IntN(4)],
		Stock: r.IntN(3), Condition: []string{"NEW", "USED", "REFURBISHED", ""}[r.IntN(4)],
		Status: []string{"ACTIVE", "ENDED"}[r.IntN(2)], URL: randomString(r, 10),
	}
	for n := r.IntN(14); n > 0; n-- {
		o.Images = append(o.Images, randomString(r, 5))
	}
	if r.IntN(2) == 0 {
		o.Brand = strp(randomString(r, 5))
	}
	if r.IntN(2) == 0 {
		o.GTIN = strp(randomString(r, 5))
	}
	if r.IntN(2) == 0 {
		o.Attributes = map[string]string{}
		for n := r.IntN(5); n > 0; n-- {
			o.Attributes[randomString(r, 4)] = randomString(r, 6)
		}
	}
	records.DerivePrice(o)
	v := &View{Offer: o}
	if r.IntN(2) == 0 {
		v.Seller = &records.Seller{Name: randomString(r, 8)}
	}
	return v
}

// TestRenderProperty: every rendered item, in its document, parses with a
// strict decoder, and every text stays valid UTF-8 within its limit.
func TestRenderProperty(t *testing.T) {
	s := allTemplates(t)
	e := s.NewEvaluator()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		v := randomView(r)
		for _, f := range s.Feeds() {
			item := e.AppendItem(nil, f.Template, v, testNow)
			if !utf8.Valid(item) {
				t.Fatalf("view %d, %s: invalid UTF-8 in %q", i, f.Template.ID, item)
			}
			checkWellFormed(t, renderDocument(e, f, []*View{v}))
		}
	}
}

func FuzzRenderItem(f *testing.F) {
	f.Add("id", "title", "desc", "cat/a", "colour", "red")
	f.Add("<&>", "]]>", "\x00\xff", "\u202e", "]]", ">")
	f.Add(strings.Repeat("🐢", 60), hostileTitle(), "x", "a/b/c", "", "")
	s := allTemplates(f)
	f.Fuzz(func(t *testing.T, id, title, desc, cat, key, val string) {
		o := &records.Offer{ID: id, Title: title, Description: desc, Category: cat, Currency: "PLN", Status: "ACTIVE",
			Images: []string{title, desc}, Brand: &key, Attributes: map[string]string{key: val, val: key}}
		v := &View{Offer: o, Seller: &records.Seller{Name: val}}
		e := s.NewEvaluator()
		for _, fd := range s.Feeds() {
			doc := renderDocument(e, fd, []*View{v})
			if !utf8.Valid(doc) {
				t.Fatalf("%s: invalid UTF-8", fd.ID)
			}
			checkWellFormed(t, doc)
		}
	})
}

func TestTruncation(t *testing.T) {
	s := allTemplates(t)
	e := s.NewEvaluator()
	f, _ := s.Feed("feed-google-merchant")
	v := &View{Offer: hostileOffer()}
	doc := renderDocument(e, f, []*View{v})
	var rss struct {
		Items []struct {
			ID    string `xml:"http://base.google.com/ns/1.0 id"`
			Title string `xml:"title"`
		} `xml:"channel>item"`
	}
	if err := xml.Unmarshal(doc, &rss); err != nil {
		t.Fatal(err)
	}
	if len(rss.Items) != 1 {
		t.Fatalf("%d items", len(rss.Items))
	}
	if n := utf8.RuneCountInString(rss.Items[0].Title); n != 150 {
		t.Errorf("title has %d characters, want 150", n)
	}
	if n := utf8.RuneCountInString(rss.Items[0].ID); n != 50 {
		t.Errorf("g:id has %d characters, want 50", n)
	}
	if !strings.HasPrefix(rss.Items[0].Title, "<script>&amp;]]>ż🐢ע") {
		t.Errorf("title %q", rss.Items[0].Title[:40])
	}
}

func TestFingerprint(t *testing.T) {
	s := allTemplates(t)
	e := s.NewEvaluator()
	base := &View{Offer: testOffer(), Seller: testSeller(), Rating: testRating()}
	// Pinned: a change here changes every stored fingerprint, so every
	// offer would be re-sent as UPDATE after a deploy. Change deliberately.
	pinned := map[string]uint64{
		"google-merchant": 0x32b3b1c2eb4cbd4d,
		"meta-catalog":    0x47980beac5277555,
		"ceneo":           0xecae3f8ec1ae6207,
		"partner-x":       0x86f414f3c9a096f,
	}
	for _, tmpl := range s.Templates() {
		t.Run(tmpl.ID, func(t *testing.T) {
			fp := e.Fingerprint(tmpl, base, testNow)
			if fp != pinned[tmpl.ID] {
				t.Errorf("fingerprint %#x, pinned %#x", fp, pinned[tmpl.ID])
			}
			bumped := *base
			o := *base.Offer
			o.Version++
			o.UpdatedAt = o.UpdatedAt.Add(time.Hour)
			bumped.Offer = &o
			if got := e.Fingerprint(tmpl, &bumped, testNow); got != fp {
				t.Errorf("version/updated_at-only change: %#x != %#x", got, fp)
			}
			sellerBumped := *base
			sl := *base.Seller
			sl.Version++
			sl.UpdatedAt = sl.UpdatedAt.Add(time.Hour)
			sellerBumped.Seller = &sl
			if got := e.Fingerprint(tmpl, &sellerBumped, testNow); got != fp {
				t.Errorf("seller version-only change: %#x != %#x", got, fp)
			}
			priced := *base
			p := *base.Offer
			p.PriceMinor++
			records.DerivePrice(&p)
			priced.Offer = &p
			if got := e.Fingerprint(tmpl, &priced, testNow); got == fp {
				t.Errorf("price change kept fingerprint %#x", fp)
			}
			if got := s.NewEvaluator().Fingerprint(tmpl, base, testNow); got != fp {
				t.Errorf("fresh evaluator: %#x != %#x", got, fp)
			}
			if n := testing.AllocsPerRun(20, func() { e.Fingerprint(tmpl, base, testNow) }); tmpl.Builtin && n != 0 {
				t.Errorf("built-in fingerprint allocates %v times", n)
			}
		})
	}
}
