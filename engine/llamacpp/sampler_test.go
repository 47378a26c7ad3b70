package llamacpp

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// tinyModel is the tiny test model's vocabulary, tinyModelWeights the
// whole model on the CPU; both are closed when the test ends.
func tinyModel(t testing.TB) *Model { return loadTinyModel(t, ModelParams{VocabOnly: true}) }

func tinyModelWeights(t testing.TB) *Model { return loadTinyModel(t, ModelParams{GPULayers: 0}) }

func loadTinyModel(t testing.TB, p ModelParams) *Model {
	t.Helper()
	path, _ := filepath.Abs("../../testdata/models/tiny-random.gguf")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s missing: run make testdata", path)
	}
	SetLogger(nil)
	Init("")
	p.Path = path
	m, err := LoadModel(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// The one-pass top-k path must pick exactly what the full chain picks from
// the same seed: same candidates, same order, same random draw.
func TestFastTopKMatchesFullChain(t *testing.T) {
	m := tinyModel(t)
	r := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, m.NVocab())
	for trial := 0; trial < 200; trial++ {
		for i := range logits {
			logits[i] = float32(r.NormFloat64()) * 3
		}
		if trial%3 == 0 { // two dominant tokens (exact ties may order either way)
			logits[r.IntN(len(logits))] = 40
			logits[r.IntN(len(logits))] = 39.5
		}
		for _, k := range []int{1, 20, 40} {
			p := SamplerParams{Temperature: 0.6, TopK: k, TopP: 0.95, HasSeed: true, Seed: uint32(trial)}
			fast, err := NewSampler(m, p)
			if err != nil {
				t.Fatal(err)
			}
			if fast.fastK != k {
				t.Fatalf("fast path not taken for top_k %d", k)
			}
			full, _ := NewSampler(m, p)
			full.fastK = 0 // force the whole-vocabulary path
			full.resizeForFull(m)
			a, b := fast.Sample(logits), full.Sample(logits)
			if a != b {
				t.Fatalf("trial %d top_k %d: fast %d, full %d", trial, k, a, b)
			}
			fast.Close()
			full.Close()
		}
	}
}

func TestGreedyIsArgmax(t *testing.T) {
	m := tinyModel(t)
	s, _ := NewSampler(m, SamplerParams{Temperature: 0})
	defer s.Close()
	s.Close() // idempotent
	s, _ = NewSampler(m, SamplerParams{Temperature: 0})
	defer s.Close()
	logits := make([]float32, m.NVocab())
	for _, at := range []int{0, 5, 15, 16, 17, 100000, len(logits) - 1} {
		for i := range logits {
			logits[i] = -1
		}
		logits[at] = 2
		if got := s.Sample(logits); got != int32(at) {
			t.Fatalf("argmax at %d: got %d", at, got)
		}
	}
}

// BenchmarkSampleTopK is the per-token sampling cost of the thinking preset
// (top_k 20, top_p 0.95, temperature 0.6) over Qwen3's 151,936 logits.
func BenchmarkSampleTopK(b *testing.B) {
	m := tinyModel(b)
	logits := make([]float32, m.NVocab())
	r := rand.New(rand.NewPCG(3, 4))
	for i := range logits {
		logits[i] = float32(r.NormFloat64())
	}
	s, _ := NewSampler(m, SamplerParams{Temperature: 0.6, TopK: 20, TopP: 0.95})
	defer s.Close()
	b.ResetTimer()
	for range b.N {
		s.Sample(logits)
	}
}

// BenchmarkSampleFullVocabulary is the same chain without the one-pass
// top-k selection.
func BenchmarkSampleFullVocabulary(b *testing.B) {
	m := tinyModel(b)
	logits := make([]float32, m.NVocab())
	r := rand.New(rand.NewPCG(3, 4))
	for i := range logits {
		logits[i] = float32(r.NormFloat64())
	}
	s, _ := NewSampler(m, SamplerParams{Temperature: 0.6, TopK: 20, TopP: 0.95})
	defer s.Close()
	s.fastK = 0
	s.resizeForFull(m)
	b.ResetTimer()
	for range b.N {
		s.Sample(logits)
	}
}

// The C thread pool must give exactly what sampling one by one gives.
func TestSampleManyMatchesSequential(t *testing.T) {
	m := tinyModel(t)
	r := rand.New(rand.NewPCG(5, 6))
	const n = 24
	logits := make([][]float32, n)
	for i := range logits {
		logits[i] = make([]float32, m.NVocab())
		for j := range logits[i] {
			logits[i][j] = float32(r.NormFloat64()) * 2
		}
	}
	mk := func() []*Sampler {
		ss := make([]*Sampler, n)
		for i := range ss {
			p := SamplerParams{Temperature: 0.7, TopK: 20, TopP: 0.9, HasSeed: true, Seed: uint32(i)}
			if i%5 == 0 {
				p = SamplerParams{Temperature: 0}
			}
			if i%7 == 0 {
				p.PresencePenalty = 0.5 // full-vocabulary path
			}
			ss[i], _ = NewSampler(m, p)
		}
		return ss
	}
	a, b := mk(), mk()
	want := make([]int32, n)
	for i := range a {
		want[i] = a[i].Sample(logits[i])
	}
	for round := 0; round < 3; round++ {
		got := make([]int32, n)
		SampleMany(b, logits, got, 4)
		if round == 0 {
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("row %d: pool %d, sequential %d", i, got[i], want[i])
				}
			}
		}
	}
	for i := range a {
		a[i].Close()
		b[i].Close()
	}
}
