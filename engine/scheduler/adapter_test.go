package scheduler

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/engine"
)

var tinyDims = adapters.Dims{Layers: 2, Hidden: 64, QDim: 64, KVDim: 32, FFN: 192}

// makeAdapter writes a random PEFT adapter for the tiny model, converts it
// to GGUF and loads it.
func makeAdapter(t *testing.T, e *Engine, seed uint64, targets ...string) engine.Adapter {
	t.Helper()
	dir := t.TempDir()
	p := adapters.RandomPEFT{Dims: tinyDims, Rank: 8, Alpha: 16, DType: "F16", Seed: seed, Scale: 0.5, Targets: targets}
	if err := p.Write(dir); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "adapter.gguf")
	if _, err := adapters.ConvertPEFT(dir, out); err != nil {
		t.Fatal(err)
	}
	a, err := e.LoadAdapter(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

var all7 = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

func withAdapter(r engine.Request, a engine.Adapter, scale float32) engine.Request {
	r.Adapters = []engine.AdapterUse{{Adapter: a, Scale: scale}}
	return r
}

func TestAdapterChangesOutputScaleZeroIsBase(t *testing.T) {
	e := startEngine(t, nil)
	a := makeAdapter(t, e, 1, all7...)
	prompt := greedy("The quick brown fox", 16)
	base := generate(e, context.Background(), prompt)
	with := generate(e, context.Background(), withAdapter(prompt, a, 1))
	zero := generate(e, context.Background(), withAdapter(prompt, a, 0))
	again := generate(e, context.Background(), prompt)
	for _, o := range []output{base, with, zero, again} {
		if o.err != nil {
			t.Fatal(o.err)
		}
	}
	if equalTokens(base.tokens, with.tokens) {
		t.Fatalf("the adapter did not change the output: %v", base.tokens)
	}
	if !equalTokens(base.tokens, zero.tokens) {
		t.Fatalf("scale 0 differs from the base: %v vs %v", zero.tokens, base.tokens)
	}
	if !equalTokens(base.tokens, again.tokens) {
		t.Fatalf("the adapter leaked into a later base request: %v vs %v", again.tokens, base.tokens)
	}
}

// Requests for different adapters, decoded concurrently (one llama_decode
// per adapter group each step), each give what they give alone.
func TestConcurrentAdaptersMatchAlone(t *testing.T) {
	e := startEngine(t, nil)
	a1 := makeAdapter(t, e, 1, all7...)
	a2 := makeAdapter(t, e, 2, "q_proj", "v_proj")
	reqs := []engine.Request{
		greedy("Alpha beta gamma", 12),
		withAdapter(greedy("Alpha beta gamma", 12), a1, 1),
		withAdapter(greedy("Alpha beta gamma", 12), a2, 1),
		withAdapter(greedy("Delta epsilon", 12), a1, 0.5),
	}
	alone := make([]output, len(reqs))
	for i, r := range reqs {
		alone[i] = generate(e, context.Background(), r)
		if alone[i].err != nil {
			t.Fatal(alone[i].err)
		}
	}
	if equalTokens(alone[1].tokens, alone[2].tokens) {
		t.Fatal("two different adapters gave the same output")
	}
	e2 := startEngine(t, nil)
	b1, b2 := makeAdapter(t, e2, 1, all7...), makeAdapter(t, e2, 2, "q_proj", "v_proj")
	reqs2 := []engine.Request{reqs[0], withAdapter(reqs[0], b1, 1), withAdapter(reqs[0], b2, 1), withAdapter(greedy("Delta epsilon", 12), b1, 0.5)}
	together := make([]output, len(reqs2))
	var wg sync.WaitGroup
	for i := range reqs2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			together[i] = generate(e2, context.Background(), reqs2[i])
		}()
	}
	wg.Wait()
	for i := range reqs2 {
		if together[i].err != nil || !equalTokens(together[i].tokens, alone[i].tokens) {
			t.Errorf("request %d: together %v (%v), alone %v", i, together[i].tokens, together[i].err, alone[i].tokens)
		}
	}
}

func TestIncompatibleAdapterRefused(t *testing.T) {
	e := startEngine(t, nil)
	dir := t.TempDir()
	wrong := adapters.RandomPEFT{Dims: adapters.Dims{Layers: 2, Hidden: 128, QDim: 128, KVDim: 64, FFN: 256}, Rank: 4, Alpha: 8, DType: "F32", Seed: 3, Scale: 0.1, Targets: []string{"q_proj"}}
	if err := wrong.Write(dir); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "wrong.gguf")
	if _, err := adapters.ConvertPEFT(dir, out); err != nil {
		t.Fatal(err)
	}
	if _, err := e.LoadAdapter(out); err == nil {
		t.Fatal("an adapter for another hidden size was accepted")
	}
}
