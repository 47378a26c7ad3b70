package llamacpp

import (
	"math"
	"testing"
)

// The opt-in persistent CPU thread pool (QWEN3_CPU_THREADPOOL=1): a context
// made with it decodes the same logits as one with ggml's per-graph
// threads, and its Close frees the pool once (a second Close is a no-op).
func TestCPUThreadPoolSameLogits(t *testing.T) {
	m := tinyModelWeights(t)
	prompt, err := m.Tokenize("The pool keeps its threads between graphs.", true, false)
	if err != nil {
		t.Fatal(err)
	}
	decode := func(pool bool) []float32 {
		if pool {
			t.Setenv("QWEN3_CPU_THREADPOOL", "1")
		} else {
			t.Setenv("QWEN3_CPU_THREADPOOL", "0")
		}
		ctx, err := NewContext(m, ContextParams{NCtx: 256, NBatch: 64, NUBatch: 64, NSeqMax: 1, Threads: 2, FlashAttn: "off"})
		if err != nil {
			t.Fatal(err)
		}
		defer ctx.Close()
		if pool != (ctx.tp != nil) {
			t.Fatalf("pool %v but context thread pool %v", pool, ctx.tp)
		}
		b := NewBatch(64)
		defer b.Close()
		var out []float32
		for i, tok := range prompt { // the prompt, then one token at a time
			b.Add(tok, i, 0, true)
		}
		for step := 0; step < 4; step++ {
			if err := ctx.Decode(b); err != nil {
				t.Fatal(err)
			}
			row := ctx.Logits(b.Len() - 1)
			out = append(out, row...)
			best := 0
			for k := range row {
				if row[k] > row[best] {
					best = k
				}
			}
			pos := len(prompt) + step
			b.Clear()
			b.Add(int32(best), pos, 0, true)
		}
		ctx.Close()
		if ctx.tp != nil || ctx.c != nil {
			t.Fatal("Close left the context or its pool")
		}
		return out
	}
	want, got := decode(false), decode(true)
	if len(want) != len(got) {
		t.Fatalf("%d logits against %d", len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-5 {
			t.Fatalf("logit %d: %g with the pool, %g without", i, got[i], want[i])
		}
	}
}

// The automatic thread count: every core and no pool below 8 cores, three
// quarters of them with a pool from 8.
func TestAutoThreads(t *testing.T) {
	for _, c := range []struct {
		cores, threads int
		pool           bool
	}{{1, 1, false}, {2, 2, false}, {7, 7, false}, {8, 6, true}, {16, 12, true}, {64, 48, true}} {
		if n, pool := autoThreads(c.cores); n != c.threads || pool != c.pool {
			t.Errorf("%d cores: %d threads, pool %v; want %d, %v", c.cores, n, pool, c.threads, c.pool)
		}
	}
}
