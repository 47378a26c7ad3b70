package llamacpp

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/qwen3-lora/qwen3-server/internal/testutil"
)

// The C log-softmax and top-N selection against float64 Go, on rows with
// ties, with and without sampling, one row and many; and the samplers
// leave the logits alone (logprobs are those of the raw logits).
func TestLogprobsMatchGo(t *testing.T) {
	m := tinyModel(t)
	r := rand.New(rand.NewPCG(3, 4))
	rows := make([][]float32, 6)
	for i := range rows {
		rows[i] = make([]float32, m.NVocab())
		for k := range rows[i] {
			rows[i][k] = float32(r.NormFloat64()) * 4
		}
	}
	rows[1][10], rows[1][7], rows[1][12] = 30, 30, 29 // a tie: lower id first
	check := func(what string, row []float32, lp Logprobs, top int) {
		t.Helper()
		lse := float64(row[0]) - testutil.LogSoftmax(row)[0]
		if math.Abs(float64(lp.LSE)-lse) > 1e-4 {
			t.Errorf("%s: lse %g, want %g", what, lp.LSE, lse)
		}
		ids := make([]int32, len(row))
		for i := range ids {
			ids[i] = int32(i)
		}
		sort.SliceStable(ids, func(a, b int) bool { return row[ids[a]] > row[ids[b]] })
		if !slices.Equal(lp.IDs, ids[:top]) {
			t.Errorf("%s: top %v, want %v", what, lp.IDs, ids[:top])
		}
		for k, id := range lp.IDs {
			if math.Abs(float64(lp.Values[k])-(float64(row[id])-lse)) > 1e-4 {
				t.Errorf("%s: logprob of %d %g, want %g", what, id, lp.Values[k], float64(row[id])-lse)
			}
		}
	}
	for _, top := range []int{0, 1, 5, MaxLogprobs} {
		for i, lp := range LogprobsMany(rows, top, m.NVocab(), 3) {
			check("LogprobsMany", rows[i], lp, top)
		}
	}
	if rows1 := LogprobsMany(rows[1:2], 3, m.NVocab(), 1)[0]; !slices.Equal(rows1.IDs, []int32{7, 10, 12}) {
		t.Fatalf("tie order %v", rows1.IDs)
	}
	// Sampling with logprobs: greedy alone and a full chain (penalties,
	// top-k, temperature) over several rows at once.
	before := make([][]float32, len(rows))
	for i := range rows {
		before[i] = slices.Clone(rows[i])
	}
	g, _ := NewSampler(m, SamplerParams{Temperature: 0})
	defer g.Close()
	g.SetLogprobs(4)
	tok := g.Sample(rows[0])
	check("greedy", rows[0], g.Logprobs(), 4)
	if tok != g.Logprobs().IDs[0] {
		t.Fatalf("greedy %d is not the best %v", tok, g.Logprobs().IDs)
	}
	var ss []*Sampler
	for i := range rows {
		s, _ := NewSampler(m, SamplerParams{Temperature: 1.5, TopK: 40, RepeatPenalty: 1.3, PresencePenalty: 0.5, HasSeed: true, Seed: uint32(i)})
		defer s.Close()
		s.Accept(int32(i)) // a penalised token
		s.SetLogprobs(i % 3)
		ss = append(ss, s)
	}
	out := make([]int32, len(rows))
	SampleMany(ss, rows, out, 3)
	for i, s := range ss {
		check("SampleMany", rows[i], s.Logprobs(), i%3)
		if !slices.Equal(rows[i], before[i]) {
			t.Fatalf("row %d: sampling changed the logits", i)
		}
	}
}
