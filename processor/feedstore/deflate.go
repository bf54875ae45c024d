package feedstore

import (
	"bytes"
	"encoding/binary"

	"github.com/klauspost/compress/flate"
)

// The stored bytes of a feed are deflate fragments: each 32 KiB of raw
// items compressed on its own (a fresh dictionary) as non-final deflate
// blocks ending in a sync flush, so it ends on a byte boundary. Any
// sequence of fragments followed by a final block is one deflate stream
// (RFC 1951), which is how pigz and zlib's gzjoin build one gzip member
// from pieces compressed apart. The gzip representation of a document is:
//
//	gzipHeader, fragment(header XML), the stored fragments of each piece,
//	final(footer XML), CRC-32 and length of the whole document
//
// one gzip member (RFC 1952) that any client decodes; curl, for one,
// refuses a concatenation of gzip members. The CRC-32 of the document is
// combined from the CRC-32 of each piece's raw bytes (crc32Combine), so
// publication reads no item.

// gzipHeader is a gzip member header: deflate, no flags, no time, OS
// unknown.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// finalBlock is an empty final deflate block (fixed Huffman, end of
// block): it ends a stream of fragments.
var finalBlock = []byte{0x03, 0x00}

// newFragmentWriter returns the deflate compressor of fragments.
func newFragmentWriter(level int) (*flate.Writer, error) {
	return flate.NewWriter(nil, level)
}

// appendFragment appends raw compressed as one fragment to dst, using fw.
func appendFragment(dst *bytes.Buffer, fw *flate.Writer, raw []byte) {
	fw.Reset(dst)
	_, _ = fw.Write(raw) // writes to a bytes.Buffer do not fail
	_ = fw.Flush()
}

// gzipOpening returns the gzip header and header XML as a fragment.
func gzipOpening(header []byte) []byte {
	var b bytes.Buffer
	b.Write(gzipHeader)
	fw, _ := flate.NewWriter(nil, flate.BestCompression) // the level is valid
	appendFragment(&b, fw, header)
	return b.Bytes()
}

// gzipClosing returns the footer XML as the final deflate block and the
// gzip trailer of a document of rawBytes bytes (the footer included)
// with CRC-32 crc.
func gzipClosing(footer []byte, crc uint32, rawBytes int64) []byte {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestCompression) // the level is valid
	_, _ = fw.Write(footer)                             // writes to a bytes.Buffer do not fail
	_ = fw.Close()
	return binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(b.Bytes(), crc), uint32(rawBytes))
}

// crc32Combine returns the CRC-32 (IEEE) of A followed by B from
// crc1 = CRC(A), crc2 = CRC(B) and len2 = len(B) (zlib's crc32_combine:
// crc1 through len2 zero bytes, by squaring the operator of one zero bit
// over GF(2)).
func crc32Combine(crc1, crc2 uint32, len2 int64) uint32 {
	if len2 <= 0 {
		return crc1
	}
	var even, odd [32]uint32
	odd[0] = 0xedb88320 // the IEEE polynomial, reflected
	row := uint32(1)
	for n := 1; n < 32; n++ {
		odd[n] = row
		row <<= 1
	}
	gf2Square(&even, &odd) // two zero bits
	gf2Square(&odd, &even) // four zero bits
	for {
		gf2Square(&even, &odd)
		if len2&1 != 0 {
			crc1 = gf2Times(&even, crc1)
		}
		len2 >>= 1
		if len2 == 0 {
			break
		}
		gf2Square(&odd, &even)
		if len2&1 != 0 {
			crc1 = gf2Times(&odd, crc1)
		}
		len2 >>= 1
		if len2 == 0 {
			break
		}
	}
	return crc1 ^ crc2
}

func gf2Times(mat *[32]uint32, vec uint32) uint32 {
	var sum uint32
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat *[32]uint32) {
	for n := range 32 {
		square[n] = gf2Times(mat, mat[n])
	}
}
