package gguf

import (
	"math"
	"testing"
)

func TestF16RoundTripEveryHalf(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := F16ToFloat32(uint16(h))
		if math.IsNaN(float64(f)) {
			if g := F16ToFloat32(Float32ToF16(f)); !math.IsNaN(float64(g)) {
				t.Fatalf("NaN %#x did not stay NaN", h)
			}
			continue
		}
		if got := Float32ToF16(f); got != uint16(h) {
			t.Fatalf("half %#04x -> %v -> %#04x", h, f, got)
		}
	}
}

func TestF16Rounding(t *testing.T) {
	cases := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {1e6, 0x7c00},
		{1 + 1.0/2048, 0x3c00},          // tie rounds to even (down)
		{1 + 3.0/2048, 0x3c02},          // tie rounds to even (up)
		{5.9604645e-08, 0x0001},         // smallest subnormal
		{float32(math.Inf(-1)), 0xfc00}, // -inf
	}
	for _, c := range cases {
		if got := Float32ToF16(c.in); got != c.want {
			t.Errorf("Float32ToF16(%v) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
}

func TestBF16(t *testing.T) {
	for _, f := range []float32{0, 1, -1.5, 3.140625, 65536, -0.0078125} {
		if got := BF16ToFloat32(Float32ToBF16(f)); got != f {
			t.Errorf("bf16 round trip %v -> %v", f, got)
		}
	}
}
