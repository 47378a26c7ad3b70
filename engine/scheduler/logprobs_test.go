package scheduler

import (
	"bytes"
	"context"
	"math"
	"slices"
	"sort"
	"testing"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
	"github.com/qwen3-lora/qwen3-server/internal/testutil"
)

// referenceLogprobs decodes tokens in one batch on a fresh context of the
// same model, every row's logits kept, and returns each row's log-softmax.
func referenceLogprobs(t *testing.T, tokens []int32) [][]float64 {
	t.Helper()
	m, err := llamacpp.LoadModel(llamacpp.ModelParams{Path: testutil.Model(t, "tiny-random.gguf")})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	lctx, err := llamacpp.NewContext(m, llamacpp.ContextParams{NCtx: 512, NBatch: 512, NUBatch: 512, NSeqMax: 1, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer lctx.Close()
	b := llamacpp.NewBatch(len(tokens))
	defer b.Close()
	for i, tok := range tokens {
		b.Add(tok, i, 0, true)
	}
	if err := lctx.Decode(b); err != nil {
		t.Fatal(err)
	}
	out := make([][]float64, len(tokens))
	for i := range tokens {
		out[i] = testutil.LogSoftmax(lctx.Logits(i))
	}
	return out
}

// checkPosition compares one reported position with the reference row.
func checkPosition(t *testing.T, what string, got engine.Logprob, ref []float64, top int) {
	t.Helper()
	// The engine decodes generated tokens one row at a time, the reference
	// all rows at once: ggml's CPU matmul takes another kernel for each
	// (gemv against llamafile's sgemm), and the sums come out in another
	// order. On AVX-512 the logprobs agreed to 1e-4; on an AVX2 machine
	// (the haswell variant) they differ by up to 2e-4. A wrong row or token
	// is off by far more than 1e-3 in this random model.
	const tol = 1e-3
	if d := math.Abs(float64(got.Logprob) - ref[got.Token]); d > tol {
		t.Errorf("%s: token %d logprob %g, reference %g", what, got.Token, got.Logprob, ref[got.Token])
	}
	ids := make([]int, len(ref))
	for i := range ids {
		ids[i] = i
	}
	sort.SliceStable(ids, func(a, b int) bool { return ref[ids[a]] > ref[ids[b]] })
	if len(got.Top) != top {
		t.Fatalf("%s: %d alternatives, want %d", what, len(got.Top), top)
	}
	for k, alt := range got.Top {
		if int(alt.Token) != ids[k] || math.Abs(float64(alt.Logprob)-ref[ids[k]]) > tol {
			t.Errorf("%s: alternative %d is %d (%g), reference %d (%g)", what, k, alt.Token, alt.Logprob, ids[k], ref[ids[k]])
		}
		if k > 0 && alt.Logprob > got.Top[k-1].Logprob {
			t.Errorf("%s: alternatives not in descending order: %v", what, got.Top)
		}
	}
}

// The engine's logprobs, prompt and generated, against the log-softmax in
// Go of the raw logits of a separate context for the same tokens. The batch
// of 8 splits the prompt into chunks, so a chunk's last row scores the next
// chunk's first token.
func TestLogprobsMatchRawLogits(t *testing.T) {
	e := startEngine(t, func(o *Options) { o.BatchSize = 8; o.Parallel = 2 })
	const top = 5
	req := engine.Request{
		Prompt: "<|im_start|>user\nThe quick brown fox jumps over the lazy dog<|im_end|>\n<|im_start|>assistant\n", MaxTokens: 12, IgnoreEOS: true,
		Logprobs: true, TopLogprobs: top, PromptLogprobs: true,
	}
	// A cached prefix must not be reused when prompt logprobs are asked.
	if o := generate(e, context.Background(), engine.Request{Prompt: req.Prompt, MaxTokens: 2}); o.err != nil {
		t.Fatal(o.err)
	}
	var gen, prompt []engine.Logprob
	var toks []int32
	var text bytes.Buffer
	res, err := e.Generate(context.Background(), &req, func(c engine.Chunk) error {
		if c.PromptLogprobs != nil {
			if prompt != nil {
				t.Fatal("prompt logprobs on two chunks")
			}
			prompt = c.PromptLogprobs
		}
		toks = append(toks, c.Token)
		gen = append(gen, c.Logprobs...)
		text.WriteString(c.Text)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.CachedTokens != 0 {
		t.Fatalf("%d cached tokens reused with prompt logprobs", res.CachedTokens)
	}
	ptoks, _ := e.Tokenize(req.Prompt, true)
	if len(prompt) != len(ptoks) || !math.IsNaN(float64(prompt[0].Logprob)) || prompt[0].Top != nil {
		t.Fatalf("%d prompt logprobs for %d tokens, first %+v", len(prompt), len(ptoks), prompt[0])
	}
	if len(gen) != len(toks) {
		t.Fatalf("%d logprobs for %d tokens", len(gen), len(toks))
	}
	var pieces []byte
	for i, lp := range gen {
		if lp.Token != toks[i] {
			t.Fatalf("logprob %d is for token %d, generated %d", i, lp.Token, toks[i])
		}
		// Greedy: the chosen token is the best one.
		if lp.Top[0].Token != lp.Token || lp.Top[0].Logprob != lp.Logprob {
			t.Errorf("greedy token %d (%g) is not the top alternative %+v", lp.Token, lp.Logprob, lp.Top[0])
		}
		pieces = append(pieces, e.TokenBytes(lp.Token)...)
	}
	if string(bytes.ToValidUTF8(pieces, []byte("\uFFFD"))) != text.String() {
		t.Fatalf("token bytes %q do not make the text %q", pieces, text.String())
	}
	all := append(slices.Clone(ptoks), toks[:len(toks)-1]...)
	ref := referenceLogprobs(t, all)
	for i := 1; i < len(ptoks); i++ {
		if prompt[i].Token != ptoks[i] {
			t.Fatalf("prompt logprob %d is for token %d, prompt has %d", i, prompt[i].Token, ptoks[i])
		}
		checkPosition(t, "prompt token", prompt[i], ref[i-1], top)
	}
	for j, lp := range gen {
		checkPosition(t, "generated token", lp, ref[len(ptoks)-1+j], top)
	}
}

// PromptOnly scores the prompt and generates nothing.
func TestPromptOnly(t *testing.T) {
	e := startEngine(t, nil)
	var chunks []engine.Chunk
	res, err := e.Generate(context.Background(), &engine.Request{Prompt: "one two three", PromptOnly: true, PromptLogprobs: true}, func(c engine.Chunk) error {
		chunks = append(chunks, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) != 1 || chunks[0].Token != -1 || chunks[0].Text != "" || len(chunks[0].PromptLogprobs) != res.PromptTokens {
		t.Fatalf("chunks %+v", chunks)
	}
	if res.FinishReason != engine.FinishLength || res.CompletionTokens != 0 || res.PromptTokens != 3 {
		t.Fatalf("result %+v", res)
	}
	for _, lp := range chunks[0].PromptLogprobs[1:] {
		if lp.Logprob > 0 || len(lp.Top) != 0 {
			t.Fatalf("prompt logprob %+v", lp)
		}
	}
}

// A stop string cut from the middle of a token: that token is reported,
// those inside the stop string are not; a stop string starting on a token
// boundary leaves exactly the tokens before it, whose bytes are the text.
func TestLogprobsStopString(t *testing.T) {
	e := startEngine(t, nil)
	prompt := "The quick brown fox jumps over the lazy dog, and then"
	base := generate(e, context.Background(), engine.Request{Prompt: prompt, MaxTokens: 24, IgnoreEOS: true})
	if base.err != nil {
		t.Fatal(base.err)
	}
	var full []byte
	starts := make([]int, len(base.tokens)+1)
	for i, tok := range base.tokens {
		starts[i] = len(full)
		full = append(full, e.TokenBytes(tok)...)
	}
	starts[len(base.tokens)] = len(full)
	tested, cuts := 0, 0
	for k := 4; k < len(base.tokens)-2 && tested < 3; k++ {
		for _, cut := range []int{0, 1} {
			from := starts[k] + cut
			if cut == 1 && starts[k+1]-starts[k] < 2 {
				continue
			}
			stop := full[from : from+4]
			if !utf8Valid(stop) {
				continue
			}
			at := bytes.Index(full, stop) // the first occurrence is where it stops
			var want []int32
			for i, tok := range base.tokens {
				if starts[i] < at {
					want = append(want, tok)
				}
			}
			var got []int32
			var text string
			_, err := e.Generate(context.Background(), &engine.Request{Prompt: prompt, MaxTokens: 24, IgnoreEOS: true, Stop: []string{string(stop)}, Logprobs: true}, func(c engine.Chunk) error {
				for _, lp := range c.Logprobs {
					got = append(got, lp.Token)
				}
				text += c.Text
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("stop %q at byte %d: logprob tokens %v, want %v", stop, at, got, want)
			}
			if wantText := string(bytes.ToValidUTF8(full[:at], []byte("\uFFFD"))); text != wantText {
				t.Errorf("stop %q: text %q, want %q", stop, text, wantText)
			}
			tested++
			cuts += cut
		}
	}
	if tested == 0 || cuts == 0 {
		t.Fatalf("no usable stop string (%d, %d cutting a token) in %q", tested, cuts, full)
	}
}

func utf8Valid(b []byte) bool {
	return bytes.Equal(bytes.ToValidUTF8(b, nil), b) && !bytes.ContainsAny(b, "\x00")
}
