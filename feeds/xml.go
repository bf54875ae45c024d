package feeds

import (
	"encoding/binary"
	"unicode/utf8"
)

// xmlChar reports whether XML 1.0 allows r in a document.
func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) ||
		(r >= 0xE000 && r <= 0xFFFD) ||
		(r >= 0x10000 && r <= 0x10FFFF)
}

// decodeRune decodes the rune at s[i:]; size 1 with utf8.RuneError means
// invalid UTF-8.
func decodeRune[T string | []byte](s T, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	end := min(i+utf8.UTFMax, len(s))
	return utf8.DecodeRuneInString(string(s[i:end]))
}

// appendEscaped appends s as XML character data, usable in element text and
// in double- or single-quoted attribute values. It drops invalid UTF-8 and
// characters XML 1.0 forbids, keeps at most maxRunes of the remaining runes
// (0: no limit), and escapes exactly as encoding/xml.EscapeText does.
func appendEscaped[T string | []byte](dst []byte, s T, maxRunes int) []byte {
	n := 0
	for i := 0; i < len(s); {
		// Runs of ASCII that need no escaping are copied whole.
		if escPlain[s[i]] {
			j := i + 1
			for j+8 <= len(s) && escPlain8(load8(s, j)) {
				j += 8
			}
			for j < len(s) && escPlain[s[j]] {
				j++
			}
			k := j - i
			if maxRunes > 0 && n+k >= maxRunes {
				return append(dst, s[i:i+maxRunes-n]...)
			}
			dst = append(dst, s[i:j]...)
			n += k
			i = j
			continue
		}
		r, size := decodeRune(s, i)
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

// escPlain and cdataPlain mark the bytes appendEscaped and appendCDATA
// copy unchanged: ASCII that XML allows, less what they escape or watch.
var escPlain, cdataPlain = func() (e, c [256]bool) {
	for b := 0x20; b < 0x80; b++ {
		e[b], c[b] = true, true
	}
	for _, b := range `"'&<>` {
		e[b] = false
	}
	c['>'] = false
	for _, b := range "\t\n\r" {
		c[b] = true
	}
	return e, c
}()

// appendCDATA appends s as one or more CDATA sections, with the same
// sanitising and truncation as appendEscaped; "]]>" in s is split across two
// sections. An empty value yields an empty section.
func appendCDATA[T string | []byte](dst []byte, s T, maxRunes int) []byte {
	dst = append(dst, "<![CDATA["...)
	n := 0
	for i := 0; i < len(s); {
		if cdataPlain[s[i]] {
			j := i + 1
			for j+8 <= len(s) && cdataPlain8(load8(s, j)) {
				j += 8
			}
			for j < len(s) && cdataPlain[s[j]] {
				j++
			}
			k := j - i
			if maxRunes > 0 && n+k >= maxRunes {
				dst = append(dst, s[i:i+maxRunes-n]...)
				break
			}
			dst = append(dst, s[i:j]...)
			n += k
			i = j
			continue
		}
		r, size := decodeRune(s, i)
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

// Word-at-a-time forms of escPlain and cdataPlain: 8 bytes of s as one
// little-endian uint64 (the byte order does not matter to the tests).
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

func load8[T string | []byte](s T, i int) uint64 {
	return binary.LittleEndian.Uint64([]byte(s[i : i+8]))
}

// escPlain8 reports whether all 8 bytes of w are escPlain: ASCII from
// 0x20, none of " ' & < >. When no byte has its high bit set, x-ones has
// a high bit set exactly when a byte of x is zero (a borrow needs a zero
// byte below it); w&0x60 per byte is zero for the bytes below 0x20, and
// w^c per byte for the bytes equal to c.
func escPlain8(w uint64) bool {
	return (w|(w&(ones*0x60)-ones)|(w^(ones*'"')-ones)|(w^(ones*'\'')-ones)|
		(w^(ones*'&')-ones)|(w^(ones*'<')-ones)|(w^(ones*'>')-ones))&highs == 0
}

// cdataPlain8 reports whether all 8 bytes of w are cdataPlain ASCII from
// 0x20 other than '>' (tabs and line breaks take the byte loop).
func cdataPlain8(w uint64) bool {
	return (w|(w&(ones*0x60)-ones)|(w^(ones*'>')-ones))&highs == 0
}
