package main

import (
	"strings"
	"testing"
)

func TestSpread(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want string
	}{
		{[]float64{0.8}, "0.80"},
		{[]float64{0.9, 0.7, 0.8}, "median 0.80 (0.70–0.90)"},
		{[]float64{1.0, 0.6, 0.7, 0.9}, "median 0.80 (0.60–1.00)"},
	} {
		in := append([]float64(nil), c.in...)
		if got := spread(c.in); got != c.want {
			t.Errorf("spread(%v) = %q, want %q", in, got, c.want)
		}
		for i := range in { // the caller's slice is left as it was
			if c.in[i] != in[i] {
				t.Fatalf("spread sorted its argument: %v", c.in)
			}
		}
	}
}

func TestBenchRejectsZeroRounds(t *testing.T) {
	err := runBench([]string{"--model", "x.gguf", "--http", "--rounds", "0"})
	if err == nil || !strings.Contains(err.Error(), "--rounds") {
		t.Fatalf("runBench --rounds 0: %v, want an error naming --rounds", err)
	}
}

func TestBenchRejectsUnknownMixRow(t *testing.T) {
	// Checked before the model loads: x.gguf does not exist.
	err := runBench([]string{"--model", "x.gguf", "--adapters", "4", "--mix-rows", "base,mixd"})
	if err == nil || !strings.Contains(err.Error(), `unknown row "mixd"`) {
		t.Fatalf("runBench --mix-rows base,mixd: %v, want an error naming the unknown row", err)
	}
}
