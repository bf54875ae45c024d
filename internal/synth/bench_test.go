package synth

import "testing"

func BenchmarkNext(b *testing.B) {
	g, err := New(1, Options{Offers: 50000, Now: fixedNow})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_ = g.Next()
	}
}

func BenchmarkNew50k(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(1, Options{Offers: 50000, Now: fixedNow}); err != nil {
			b.Fatal(err)
		}
	}
}
