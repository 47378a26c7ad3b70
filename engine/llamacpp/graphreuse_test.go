package llamacpp

import "testing"

// A decode step of several sequences, one token each, reuses the previous
// step's graph, in both KV layouts. With one KV stream per sequence (the
// server's layout) llama.cpp's reuse check compared the KQ mask's rows with
// the ubatch's tokens, where the mask has one row per stream's token, so
// no step of more than one sequence reused its graph (our patch to
// llama-graph.cpp, qs_kq_mask_fits).
func TestMultiSequenceDecodeReusesGraph(t *testing.T) {
	m := tinyModelWeights(t)
	const nSeq, steps = 4, 10
	for _, unified := range []bool{false, true} {
		ctx, err := NewContext(m, ContextParams{NCtx: 256 * nSeq, NBatch: 64, NUBatch: 64, NSeqMax: nSeq, Threads: 2, FlashAttn: "off", KVUnified: unified})
		if err != nil {
			t.Fatal(err)
		}
		b := NewBatch(64)
		for s := 0; s < nSeq; s++ { // prompts of different lengths
			for i := 0; i <= s+2; i++ {
				b.Add(int32(100+i), i, s, i == s+2)
			}
		}
		if err := ctx.Decode(b); err != nil {
			t.Fatal(err)
		}
		before := ctx.GraphsReused()
		for step := 0; step < steps; step++ {
			b.Clear()
			for s := 0; s < nSeq; s++ {
				b.Add(int32(200+step), s+3+step, s, true)
			}
			if err := ctx.Decode(b); err != nil {
				t.Fatal(err)
			}
		}
		// The first one-token step builds its graph (the prompt's had
		// another shape); every later one reuses it.
		if got := ctx.GraphsReused() - before; got != steps-1 {
			t.Errorf("kv_unified=%v: %d of %d decode steps of %d sequences reused the graph, want %d", unified, got, steps, nSeq, steps-1)
		}
		b.Close()
		ctx.Close()
	}
}
