package feeds

import (
	"testing"
	"unicode/utf8"
)

// refEscaped and refCDATA are the plain per-rune forms of appendEscaped
// and appendCDATA (no fast path), the reference of FuzzXMLText.
func refEscaped(s string, maxRunes int) []byte {
	var dst []byte
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !xmlChar(r) {
			i += size
			continue
		}
		if maxRunes > 0 && n == maxRunes {
			break
		}
		n++
		switch r {
		case '"':
			dst = append(dst, "&#34;"...)
		case '\'':
			dst = append(dst, "&#39;"...)
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '\t':
			dst = append(dst, "&#x9;"...)
		case '\n':
			dst = append(dst, "&#xA;"...)
		case '\r':
			dst = append(dst, "&#xD;"...)
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

func refCDATA(s string, maxRunes int) []byte {
	dst := []byte("<![CDATA[")
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !xmlChar(r) {
			i += size
			continue
		}
		if maxRunes > 0 && n == maxRunes {
			break
		}
		n++
		if r == '>' && len(dst) >= 2 && dst[len(dst)-1] == ']' && dst[len(dst)-2] == ']' {
			dst = append(dst, "]]><![CDATA["...)
		}
		dst = append(dst, s[i:i+size]...)
		i += size
	}
	return append(dst, "]]>"...)
}

// FuzzXMLText checks the run-copying fast paths of appendEscaped and
// appendCDATA against the per-rune reference, with and without a rune
// limit.
func FuzzXMLText(f *testing.F) {
	for _, s := range []string{"", "plain text", `a<b>"c"&'d'`, "x]]>y]]]>z", "tab\tnl\ncr\r", "żółw 🐢\x00\xff", "\x7f\x1fok"} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, s string, limit uint8) {
		m := int(limit % 16)
		if got, want := appendEscaped(nil, s, m), refEscaped(s, m); string(got) != string(want) {
			t.Errorf("appendEscaped(%q, %d) = %q, want %q", s, m, got, want)
		}
		if got, want := appendEscaped(nil, []byte(s), m), refEscaped(s, m); string(got) != string(want) {
			t.Errorf("appendEscaped([]byte %q, %d) = %q, want %q", s, m, got, want)
		}
		if got, want := appendCDATA(nil, s, m), refCDATA(s, m); string(got) != string(want) {
			t.Errorf("appendCDATA(%q, %d) = %q, want %q", s, m, got, want)
		}
	})
}

// TestXMLTextWordPaths puts every byte value at every position of strings
// long enough for the word-at-a-time paths, in plain ASCII and after a
// multi-byte rune (so words start at every alignment), and compares
// appendEscaped and appendCDATA with the per-rune reference.
func TestXMLTextWordPaths(t *testing.T) {
	for _, lead := range []string{"", "ż", "ab"} {
		for n := 1; n <= 26; n++ {
			for p := range n {
				for c := range 256 {
					b := []byte(lead + "Text with spaces, #1 $%()*+-./09:;=?@AZ[\\]^_`az{|}~"[:n])
					b[len(lead)+p] = byte(c)
					s := string(b)
					for _, m := range []int{0, 7} {
						if got, want := appendEscaped(nil, s, m), refEscaped(s, m); string(got) != string(want) {
							t.Fatalf("appendEscaped(%q, %d) = %q, want %q", s, m, got, want)
						}
						if got, want := appendCDATA(nil, b, m), refCDATA(s, m); string(got) != string(want) {
							t.Fatalf("appendCDATA(%q, %d) = %q, want %q", s, m, got, want)
						}
					}
				}
			}
		}
	}
}
