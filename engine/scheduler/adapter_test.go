package scheduler

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
	"github.com/qwen3-lora/qwen3-server/internal/gguf"
	"github.com/qwen3-lora/qwen3-server/internal/testutil"
	"github.com/qwen3-lora/qwen3-server/tools/merge"
	"github.com/qwen3-lora/qwen3-server/tools/modelgen"
)

var tinyDims = modelgen.Dims{Layers: 2, Hidden: 64, QDim: 64, KVDim: 32, FFN: 192}

// makeAdapter writes a random PEFT adapter for the tiny model, converts it
// to GGUF and loads it.
func makeAdapter(t *testing.T, e *Engine, seed uint64, targets ...string) engine.Adapter {
	t.Helper()
	dir := t.TempDir()
	p := modelgen.RandomPEFT{Dims: tinyDims, Rank: 8, Alpha: 16, DType: "F16", Seed: seed, Scale: 0.5, Targets: targets}
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
// per step for all of them: per-sequence adapters), each give what they
// give alone.
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
	wrong := modelgen.RandomPEFT{Dims: modelgen.Dims{Layers: 2, Hidden: 128, QDim: 128, KVDim: 64, FFN: 256}, Rank: 4, Alpha: 8, DType: "F32", Seed: 3, Scale: 0.1, Targets: []string{"q_proj"}}
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

// An adapter merged into the weights gives the same greedy tokens as the
// same adapter applied at run time (F32 base, so the merge loses nothing).
func TestMergedEqualsRuntimeAdapter(t *testing.T) {
	base, lora, merged := mergedTinyModel(t)
	opts := func(path string) func(*Options) { return func(o *Options) { o.ModelPath = path; o.Parallel = 1 } }
	eBase := startEngine(t, opts(base))
	a, err := eBase.LoadAdapter(lora)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	prompt := greedy("Merge me, please", 16)
	runtimeOut := generate(eBase, context.Background(), withAdapter(prompt, a, 1))
	plain := generate(eBase, context.Background(), prompt)
	mergedOut := generate(startEngine(t, opts(merged)), context.Background(), prompt)
	for _, o := range []output{runtimeOut, plain, mergedOut} {
		if o.err != nil {
			t.Fatal(o.err)
		}
	}
	if equalTokens(plain.tokens, mergedOut.tokens) {
		t.Fatal("merging changed nothing")
	}
	if !equalTokens(runtimeOut.tokens, mergedOut.tokens) {
		t.Fatalf("run-time adapter %v, merged %v", runtimeOut.tokens, mergedOut.tokens)
	}
	// ...and the same logits, within float tolerance, at the prompt's end.
	runtimeLogits, mergedLogits, baseLogits := promptLogits(t, base, lora), promptLogits(t, merged, ""), promptLogits(t, base, "")
	t.Logf("max |logit difference|: run-time vs merged %g, base vs merged %g", maxDiff(runtimeLogits, mergedLogits), maxDiff(baseLogits, mergedLogits))
	if d := maxDiff(runtimeLogits, mergedLogits); d > 1e-3 {
		t.Fatalf("logits differ by up to %g between the run-time adapter and the merged model", d)
	}
	if d := maxDiff(baseLogits, mergedLogits); d < 1e-2 {
		t.Fatalf("the adapter moves the logits by only %g: the comparison proves nothing", d)
	}
	// A quantized base is refused with a hint.
	dir := filepath.Dir(merged)
	q := filepath.Join(dir, "q8.gguf")
	if err := llamacpp.Quantize(base, q, "Q8_0", 2); err != nil {
		t.Fatal(err)
	}
	if err := merge.Merge(q, lora, filepath.Join(dir, "x.gguf"), 1, nil); err == nil || !strings.Contains(err.Error(), "quantize") {
		t.Fatalf("quantized base: %v", err)
	}
}

// promptLogits decodes a fixed prompt on a fresh CPU context of the model,
// with the LoRA file applied at scale 1 when lora is set, and returns the
// logits at the last prompt position.
func promptLogits(t *testing.T, model, lora string) []float32 {
	steps := decodeLogits(t, model, lora, 0, wholePrompt)
	return steps[len(steps)-1]
}

// decodeShape is how decodeLogits feeds the prompt to llama_decode.
type decodeShape int

const (
	wholePrompt decodeShape = iota // one batch; the logits at its end
	oneToken                       // one token per call, the shape of a one-sequence decode; every step's logits
	// The same tokens for two sequences per call, sequence 0's logits: two
	// tokens per llama_decode, which the CUDA backend's fused LoRA path (one
	// token only) leaves to llama.cpp's graph, on the same weights and the
	// same quantization of x.
	twoSequences
)

// decodeLogits decodes a fixed prompt on a fresh context of the model (gpuLayers
// as in ModelParams), with the LoRA file applied at scale 1 when lora is set.
func decodeLogits(t *testing.T, model, lora string, gpuLayers int, shape decodeShape) [][]float32 {
	t.Helper()
	m, err := llamacpp.LoadModel(llamacpp.ModelParams{Path: model, GPULayers: gpuLayers})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	seqs := 1
	if shape == twoSequences {
		seqs = 2
	}
	ctx, err := llamacpp.NewContext(m, llamacpp.ContextParams{NCtx: 128 * seqs, NBatch: 64, NUBatch: 64, NSeqMax: seqs, Threads: 2, FlashAttn: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	if lora != "" {
		a, err := llamacpp.LoadAdapter(m, lora)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		for seq := range seqs {
			if err := ctx.SetSeqAdapters(seq, []llamacpp.AdapterScale{{Adapter: a, Scale: 1}}); err != nil {
				t.Fatal(err)
			}
			defer ctx.SetSeqAdapters(seq, nil)
		}
	}
	toks, err := m.Tokenize("Merge me, please: the logits must agree.", false, true)
	if err != nil {
		t.Fatal(err)
	}
	b := llamacpp.NewBatch(64)
	defer b.Close()
	if shape == wholePrompt {
		for i, tok := range toks {
			b.Add(tok, i, 0, i == len(toks)-1)
		}
		if err := ctx.Decode(b); err != nil {
			t.Fatal(err)
		}
		return [][]float32{append([]float32(nil), ctx.Logits(len(toks)-1)...)}
	}
	var steps [][]float32
	for i, tok := range toks {
		b.Clear()
		for seq := range seqs {
			b.Add(tok, i, seq, true)
		}
		if err := ctx.Decode(b); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, append([]float32(nil), ctx.Logits(0)...))
	}
	return steps
}

// maxDiff is the largest |a[i] - b[i]|.
func maxDiff(a, b []float32) (d float64) {
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// mergedTinyModel writes an F32 tiny base, a random rank-8 PEFT adapter on
// all seven projections converted to GGUF, and the two merged, so that the
// merge loses nothing: base, lora, merged paths.
func mergedTinyModel(t *testing.T) (base, lora, merged string) {
	t.Helper()
	root := testutil.RepoRoot(t)
	vocab, err := modelgen.LoadVocab(filepath.Join(root, "testdata", "cache", "tokenizer"), 151936)
	if err != nil {
		t.Fatal(err)
	}
	shape := modelgen.Shapes["tiny"]
	shape.Type = gguf.F32
	dir := t.TempDir()
	base = filepath.Join(dir, "base-f32.gguf")
	if err := modelgen.Write(base, modelgen.Options{Shape: shape, Vocab: vocab, Seed: 5}, nil); err != nil {
		t.Fatal(err)
	}
	peft := filepath.Join(dir, "peft")
	p := modelgen.RandomPEFT{Dims: tinyDims, Rank: 8, Alpha: 16, DType: "F32", Seed: 7, Scale: 0.5, Targets: all7}
	if err := p.Write(peft); err != nil {
		t.Fatal(err)
	}
	lora = filepath.Join(dir, "lora.gguf")
	if _, err := adapters.ConvertPEFT(peft, lora); err != nil {
		t.Fatal(err)
	}
	merged = filepath.Join(dir, "merged.gguf")
	steps := 0
	if err := merge.Merge(base, lora, merged, 1, func(done, total int) { steps = done }); err != nil {
		t.Fatal(err)
	}
	if steps != 14 {
		t.Fatalf("merged %d tensors, want 14 (7 projections x 2 layers)", steps)
	}
	return base, lora, merged
}

// One token per llama_decode, the shape of a one-sequence decode step: every
// step's logits with the run-time adapter match the merged model's. On a
// CUDA machine this is the fused LoRA path of our ggml-cuda build
// (engine/llamacpp/patches/ggml-cuda-lora-fusion.patch), which
// scripts/gpu-check-lora.sh runs fused and unfused; elsewhere the CPU's.
func TestLoRAStepsMatchMerged(t *testing.T) {
	t.Logf("GPUs: %v", gpusForTest())
	base, lora, merged := mergedTinyModel(t)
	runtime := decodeLogits(t, base, lora, -1, oneToken)
	want := decodeLogits(t, merged, "", -1, oneToken)
	plain := decodeLogits(t, base, "", -1, oneToken)
	worst, moved := 0.0, 0.0
	for i := range want {
		worst = max(worst, maxDiff(runtime[i], want[i]))
		moved = max(moved, maxDiff(plain[i], want[i]))
	}
	t.Logf("%d steps: max |logit difference| run-time vs merged %g, base vs merged %g", len(want), worst, moved)
	if worst > 1e-3 {
		t.Fatalf("one-token steps: logits differ by up to %g between the run-time adapter and the merged model", worst)
	}
	if moved < 1e-2 {
		t.Fatalf("the adapter moves the logits by only %g: the comparison proves nothing", moved)
	}
}

// llama.cpp reuses the last decode's graph for a batch of the same shape
// and sequences, whatever adapters are set since: a one-token prompt in the
// slot a request with other adapters (or another scale) just left decodes
// exactly like that request's last step. Each must still give what it
// gives on a fresh engine.
func TestAdapterSwitchOnSameShapeBatch(t *testing.T) {
	oneToken := func() engine.Request { r := greedy("", 6); r.PromptTokens = []int32{9707}; return r }
	fresh := func(scale float32) []int32 {
		e := startEngine(t, func(o *Options) { o.Parallel = 1 })
		req := oneToken()
		if scale >= 0 {
			req = withAdapter(req, makeAdapter(t, e, 1, all7...), scale)
		}
		out := generate(e, context.Background(), req)
		if out.err != nil {
			t.Fatal(out.err)
		}
		return out.tokens
	}
	want := map[string][]int32{"base": fresh(-1), "scale 1": fresh(1), "scale 0.5": fresh(0.5)}
	if equalTokens(want["base"], want["scale 1"]) || equalTokens(want["scale 1"], want["scale 0.5"]) {
		t.Fatalf("the adapter or its scale changes nothing on this prompt: %v", want)
	}
	// One KV stream (llama.cpp compares no sequence ids) and one per slot.
	for _, parallel := range []int{1, 4} {
		e := startEngine(t, func(o *Options) { o.Parallel = parallel })
		a := makeAdapter(t, e, 1, all7...)
		for _, step := range []string{"base", "scale 1", "base", "scale 1", "scale 0.5", "scale 1"} {
			req := oneToken()
			switch step {
			case "scale 1":
				req = withAdapter(req, a, 1)
			case "scale 0.5":
				req = withAdapter(req, a, 0.5)
			}
			out := generate(e, context.Background(), req)
			if out.err != nil {
				t.Fatal(out.err)
			}
			if !equalTokens(out.tokens, want[step]) {
				t.Fatalf("parallel %d: %s after another adapter set: %v, on a fresh engine %v", parallel, step, out.tokens, want[step])
			}
		}
	}
}

// The fused LoRA path of our ggml-cuda build runs one token per llama_decode
// on F32/F16/BF16 weights (mmvf) and on quantized ones (mmvq). Quantized
// bases cannot be checked against a merged model, so each base type is
// checked against itself: one sequence, one token per step (fused on CUDA),
// against the same tokens decoded for two sequences per step (llama.cpp's
// graph). On the CPU both are the CPU's, and the test checks only that the
// batch shape changes nothing there.
func TestLoRAOneTokenMatchesTwoOnQuantizedBases(t *testing.T) {
	t.Logf("GPUs: %v", gpusForTest())
	base, lora, _ := mergedTinyModel(t)
	dir := t.TempDir()
	for _, typ := range []string{"F32", "Q8_0", "Q4_0"} {
		model := base
		if typ != "F32" {
			model = filepath.Join(dir, typ+".gguf")
			if err := llamacpp.Quantize(base, model, typ, 2); err != nil {
				t.Fatal(err)
			}
		}
		one := decodeLogits(t, model, lora, -1, oneToken)
		two := decodeLogits(t, model, lora, -1, twoSequences)
		plain := decodeLogits(t, model, "", -1, oneToken)
		worst, moved := 0.0, 0.0
		for i := range one {
			worst = max(worst, maxDiff(one[i], two[i]))
			moved = max(moved, maxDiff(plain[i], two[i]))
		}
		t.Logf("%s: %d steps: max |logit difference| one token vs two %.3g, without the adapter %.3g", typ, len(one), worst, moved)
		if moved < 0.1 {
			t.Fatalf("%s: the adapter moves the logits by only %.3g: the comparison proves nothing", typ, moved)
		}
		// The CPU variants (AVX2/AVX-512) compute a quantized product of one
		// row and of several with different kernels (vec_dot against
		// llamafile's tinyBLAS), whose sums round differently: about 3e-3
		// on Q4_0 with AVX-512, against the adapter's effect of 1.6.
		tol := 1e-3
		if len(gpusForTest()) == 0 {
			tol = 1e-2
		}
		if worst > tol {
			t.Fatalf("%s: one token per step differs from two by %.3g (the adapter moves them by %.3g)", typ, worst, moved)
		}
	}
}

// foreignAdapter is an engine.Adapter this engine did not load.
type foreignAdapter struct{}

func (foreignAdapter) Close() {}

// A handle from elsewhere is refused when the request is admitted, and the
// decode loop goes on serving others (it used to panic on the assertion).
func TestForeignAdapterIsRequestError(t *testing.T) {
	e := startEngine(t, nil)
	prompt := greedy("The quick brown fox", 4)
	for _, a := range []engine.Adapter{foreignAdapter{}, nil, (*Adapter)(nil)} {
		o := generate(e, context.Background(), withAdapter(prompt, a, 1))
		var ee *engine.Error
		if !errors.As(o.err, &ee) || ee.Kind != engine.KindInvalid || !strings.Contains(ee.Message, "not an adapter this engine loaded") {
			t.Fatalf("%T: want an invalid-request error, got %v", a, o.err)
		}
	}
	if o := generate(e, context.Background(), prompt); o.err != nil || o.res.CompletionTokens != 4 {
		t.Fatalf("after refusals: %+v", o)
	}
}

// Stacks deeper than MaxStackedAdapters, and a ubatch too large for the
// deepest stack, are refused (the mixed products' grid holds
// MaxAdapterPairs rows); the engine keeps serving.
func TestAdapterStackBounds(t *testing.T) {
	e := startEngine(t, nil)
	a := makeAdapter(t, e, 11, "q_proj")
	prompt := greedy("The quick brown fox", 4)
	deep := prompt
	for range engine.MaxStackedAdapters + 1 {
		deep.Adapters = append(deep.Adapters, engine.AdapterUse{Adapter: a, Scale: 0.1})
	}
	o := generate(e, context.Background(), deep)
	var ee *engine.Error
	if !errors.As(o.err, &ee) || ee.Kind != engine.KindInvalid || ee.Field != engine.FieldAdapters {
		t.Fatalf("a stack of %d: want an invalid Adapters error, got %v", len(deep.Adapters), o.err)
	}
	deep.Adapters = deep.Adapters[:engine.MaxStackedAdapters]
	if o := generate(e, context.Background(), deep); o.err != nil || o.res.CompletionTokens != 4 {
		t.Fatalf("a stack of %d: %+v", len(deep.Adapters), o)
	}
	// llama.cpp's own check, below the engine's: adapters × n_ubatch.
	lctx, err := llamacpp.NewContext(e.model, llamacpp.ContextParams{NCtx: 128, NBatch: 64, NUBatch: 64, NSeqMax: 1, Threads: 2, FlashAttn: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer lctx.Close()
	stack := make([]llamacpp.AdapterScale, llamacpp.MaxAdapterPairs/64+1)
	for i := range stack {
		stack[i] = llamacpp.AdapterScale{Adapter: a.(*Adapter).a, Scale: 0.01}
	}
	var se *llamacpp.SeqAdapterError
	if err := lctx.SetSeqAdapters(0, stack); !errors.As(err, &se) || se.Code != -3 {
		t.Fatalf("%d adapters at n_ubatch 64: want code -3, got %v", len(stack), err)
	}
	if err := lctx.SetSeqAdapters(0, stack[1:]); err != nil {
		t.Fatalf("%d adapters at n_ubatch 64: %v", len(stack)-1, err)
	}
	lctx.SetSeqAdapters(0, nil)
	ub := llamacpp.MaxAdapterPairs/engine.MaxStackedAdapters + 1
	if _, err := NewWithModel(e.model, Options{Parallel: 1, BatchSize: ub, UBatchSize: ub, Threads: 2}, nil); err == nil || !strings.Contains(err.Error(), "ubatch_size") {
		t.Fatalf("ubatch %d: want a ubatch_size error, got %v", ub, err)
	}
}
