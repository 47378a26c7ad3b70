package scheduler

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/internal/testutil"
)

func startEngine(t *testing.T, mutate func(*Options)) *Engine {
	t.Helper()
	opts := Options{
		ModelPath: testutil.Model(t, "tiny-random.gguf"), GPULayers: testGPULayers(), ContextSize: 512,
		Parallel: 4, BatchSize: 64, QueueSize: 8, Threads: 2,
	}
	if mutate != nil {
		mutate(&opts)
	}
	e, err := New(opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

type output struct {
	tokens []int32
	text   string
	res    *engine.Result
	err    error
}

func generate(e *Engine, ctx context.Context, req engine.Request) output {
	var o output
	var b strings.Builder
	o.res, o.err = e.Generate(ctx, &req, func(c engine.Chunk) error {
		o.tokens = append(o.tokens, c.Token)
		b.WriteString(c.Text)
		return nil
	})
	o.text = b.String()
	return o
}

func greedy(prompt string, n int) engine.Request {
	return engine.Request{Prompt: prompt, MaxTokens: n, IgnoreEOS: true}
}

func TestBatchedGreedyEqualsAlone(t *testing.T) {
	e := startEngine(t, nil)
	prompts := []string{
		"<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
		"The quick brown fox jumps over the lazy dog, and then",
		"def fibonacci(n):\n    ",
		"你好，世界！今天天气怎么样？",
	}
	alone := make([]output, len(prompts))
	for i, p := range prompts {
		alone[i] = generate(e, context.Background(), greedy(p, 24))
		if alone[i].err != nil {
			t.Fatal(alone[i].err)
		}
		if alone[i].res.CompletionTokens != 24 || alone[i].res.FinishReason != engine.FinishLength {
			t.Fatalf("prompt %d: %+v", i, alone[i].res)
		}
	}
	// A fresh engine so that no prompt cache is involved, then all four at once.
	e2 := startEngine(t, nil)
	together := make([]output, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			together[i] = generate(e2, context.Background(), greedy(p, 24))
		}()
	}
	wg.Wait()
	for i := range prompts {
		if together[i].err != nil {
			t.Fatal(together[i].err)
		}
		if !equalTokens(alone[i].tokens, together[i].tokens) {
			t.Errorf("prompt %d: alone %v, batched %v", i, alone[i].tokens, together[i].tokens)
		}
	}
}

func equalTokens(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCancelFreesSlot(t *testing.T) {
	e := startEngine(t, func(o *Options) { o.Parallel = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	got := 0
	start := time.Now()
	_, err := e.Generate(ctx, &engine.Request{Prompt: "Tell me a long story", MaxTokens: 400, IgnoreEOS: true}, func(engine.Chunk) error {
		got++
		if got == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	waitFor(t, func() bool { return e.Stats().BusySlots == 0 }, "slot freed after cancel")
	if time.Since(start) > 20*time.Second {
		t.Fatalf("cancellation took %v", time.Since(start))
	}
	// The slot's KV cells were freed too: the same prompt reuses nothing.
	o := generate(e, context.Background(), greedy("Tell me a long story", 2))
	if o.err != nil || o.res.CachedTokens != 0 {
		t.Fatalf("after cancel: err %v cached %d, want 0 cached", o.err, o.res.CachedTokens)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStopStringAcrossTokens(t *testing.T) {
	e := startEngine(t, nil)
	prompt := "Once upon a time"
	base := generate(e, context.Background(), greedy(prompt, 40))
	if base.err != nil {
		t.Fatal(base.err)
	}
	// Find a token boundary inside the text and build a stop string that
	// straddles it: the end of one token's piece and the start of the next.
	pieces := make([]string, len(base.tokens))
	for i, tok := range base.tokens {
		pieces[i] = e.Detokenize([]int32{tok})
	}
	var stop, want string
	offset := 0
	for i := 5; i+1 < len(pieces); i++ {
		offset = len(strings.Join(pieces[:i], ""))
		a, b := pieces[i], pieces[i+1]
		if len(a) >= 2 && len(b) >= 1 && strings.ToValidUTF8(a+b, "") == a+b {
			stop = a[len(a)-2:] + b[:1]
			start := offset + len(a) - 2
			if first := strings.Index(base.text, stop); first >= 0 && first <= start {
				want = base.text[:first]
				break
			}
		}
	}
	if stop == "" {
		t.Fatalf("no usable token boundary in %q", base.text)
	}
	o := generate(e, context.Background(), engine.Request{Prompt: prompt, MaxTokens: 40, IgnoreEOS: true, Stop: []string{stop}})
	if o.err != nil {
		t.Fatal(o.err)
	}
	if o.res.FinishReason != engine.FinishStop || o.text != want || strings.Contains(o.text, stop) {
		t.Fatalf("stop %q: finish %s text %q, want %q", stop, o.res.FinishReason, o.text, want)
	}
}

func TestMaxTokensAndFullContext(t *testing.T) {
	e := startEngine(t, func(o *Options) { o.ContextSize = 48 })
	o := generate(e, context.Background(), greedy("Hello there", 5))
	if o.err != nil || o.res.FinishReason != engine.FinishLength || o.res.CompletionTokens != 5 {
		t.Fatalf("max tokens: %+v %v", o.res, o.err)
	}
	toks, _ := e.Tokenize("one two three four five six seven eight nine ten", false)
	o = generate(e, context.Background(), engine.Request{PromptTokens: toks, IgnoreEOS: true})
	if o.err != nil || o.res.FinishReason != engine.FinishLength {
		t.Fatalf("full context: %+v %v", o.res, o.err)
	}
	if got, want := o.res.CompletionTokens, 48-len(toks)+1; got != want {
		t.Fatalf("full context: generated %d tokens, want %d (context 48, prompt %d)", got, want, len(toks))
	}
	long := make([]int32, 48)
	for i := range long {
		long[i] = 100 + int32(i)
	}
	_, err := e.Generate(context.Background(), &engine.Request{PromptTokens: long}, func(engine.Chunk) error { return nil })
	var ee *engine.Error
	if !errors.As(err, &ee) || ee.Kind != engine.KindInvalid || !strings.Contains(err.Error(), "48 tokens") {
		t.Fatalf("prompt as long as the context: want invalid error naming the counts, got %v", err)
	}
}

func TestFullQueueOverloaded(t *testing.T) {
	e := startEngine(t, func(o *Options) { o.Parallel = 1; o.QueueSize = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Generate(ctx, &engine.Request{Prompt: "busy", IgnoreEOS: true, MaxTokens: 10000}, func(engine.Chunk) error {
				select {
				case started <- struct{}{}:
				default:
				}
				return nil
			})
		}()
	}
	waitFor(t, func() bool { s := e.Stats(); return s.BusySlots == 1 && s.QueueDepth == 1 }, "one running, one queued")
	_, err := e.Generate(context.Background(), &engine.Request{Prompt: "one too many"}, func(engine.Chunk) error { return nil })
	if !errors.Is(err, engine.ErrOverloaded) {
		t.Fatalf("want ErrOverloaded, got %v", err)
	}
	cancel()
	wg.Wait()
	waitFor(t, func() bool { s := e.Stats(); return s.BusySlots == 0 && s.QueueDepth == 0 }, "drained")
}

func TestPromptCacheReuse(t *testing.T) {
	e := startEngine(t, nil)
	system := "<|im_start|>system\n" + strings.Repeat("You are a careful assistant who answers briefly. ", 8) + "<|im_end|>\n"
	first := generate(e, context.Background(), greedy(system+"<|im_start|>user\nHi<|im_end|>\n", 4))
	if first.err != nil {
		t.Fatal(first.err)
	}
	if first.res.CachedTokens != 0 {
		t.Fatalf("first request reused %d tokens", first.res.CachedTokens)
	}
	prefix, _ := e.Tokenize(system, true)
	second := generate(e, context.Background(), greedy(system+"<|im_start|>user\nWhat is 2+2?<|im_end|>\n", 4))
	if second.err != nil {
		t.Fatal(second.err)
	}
	if second.res.CachedTokens < len(prefix) {
		t.Fatalf("second request reused %d tokens, want at least the %d of the shared system prompt", second.res.CachedTokens, len(prefix))
	}
	// Reuse must not change the output: same request on a fresh engine.
	fresh := generate(startEngine(t, nil), context.Background(), greedy(system+"<|im_start|>user\nWhat is 2+2?<|im_end|>\n", 4))
	if !equalTokens(fresh.tokens, second.tokens) {
		t.Fatalf("cached %v != fresh %v", second.tokens, fresh.tokens)
	}
}

func TestTokenizerMatchesReference(t *testing.T) {
	e := startEngine(t, func(o *Options) { o.Parallel = 1 })
	f, err := os.Open(filepath.Join(testutil.RepoRoot(t), "testdata", "qwen3_tokenizer.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var c struct {
			Text string  `json:"text"`
			IDs  []int32 `json:"ids"`
		}
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		got, err := e.Tokenize(c.Text, true)
		if err != nil {
			t.Fatal(err)
		}
		if !equalTokens(got, c.IDs) {
			t.Errorf("%q: got %v, want %v", c.Text, got, c.IDs)
		}
		if back := e.Detokenize(got); back != c.Text {
			t.Errorf("detokenize %q: got %q", c.Text, back)
		}
		n++
	}
	if n < 8 {
		t.Fatalf("only %d tokenizer cases read", n)
	}
}

func TestBadModelFiles(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.gguf")
	os.WriteFile(corrupt, []byte("GGUF\x03\x00\x00\x00garbage that is not a model"), 0o644)
	notGGUF := filepath.Join(dir, "weights.bin")
	os.WriteFile(notGGUF, []byte("PK\x03\x04 not gguf"), 0o644)
	for path, want := range map[string]string{
		filepath.Join(dir, "missing.gguf"): "no such file",
		corrupt:                            "could not load",
		notGGUF:                            "not a GGUF file",
	} {
		_, err := New(Options{ModelPath: path, GPULayers: 0, ContextSize: 64, Parallel: 1}, zaptest.NewLogger(t))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want error containing %q, got %v", filepath.Base(path), want, err)
		}
	}
}

func TestGPULayersWithoutGPU(t *testing.T) {
	if len(gpusForTest()) > 0 {
		t.Skip("a GPU backend is loaded")
	}
	_, err := New(Options{ModelPath: testutil.Model(t, "tiny-random.gguf"), GPULayers: -1, ContextSize: 64, Parallel: 1}, zaptest.NewLogger(t))
	if err == nil || !strings.Contains(err.Error(), "no GPU backend") {
		t.Fatalf("want a clear no-GPU error, got %v", err)
	}
	e, err := New(Options{ModelPath: testutil.Model(t, "tiny-random.gguf"), GPULayers: -1, AllowCPUFallback: true, ContextSize: 64, Parallel: 1}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("fallback allowed: %v", err)
	}
	e.Close()
	e.Close() // idempotent
}

// The profile tells decode-only steps from steps with a prompt chunk, which
// bench reports per generated token.
func TestProfileCountsDecodeOnlySteps(t *testing.T) {
	e := startEngine(t, func(o *Options) { o.Parallel = 1 })
	req := greedy("", 8)
	req.PromptTokens = make([]int32, 100) // two chunks at batch 64
	for i := range req.PromptTokens {
		req.PromptTokens[i] = 9707
	}
	if out := generate(e, context.Background(), req); out.err != nil || len(out.tokens) != 8 {
		t.Fatalf("generate: %v, %d tokens", out.err, len(out.tokens))
	}
	// The loop books a step after handing its token off.
	deadline := time.Now().Add(5 * time.Second)
	p := e.Profile()
	for p.Steps < 9 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		p = e.Profile()
	}
	if p.Steps != 9 || p.DecodeSteps != 7 {
		t.Fatalf("steps %d, decode-only %d; want 9 (2 prompt chunks, the first token from the second) and 7", p.Steps, p.DecodeSteps)
	}
	if p.DecodeLaunch <= 0 || p.DecodeWait < 0 || p.DecodeLaunch > p.Launch {
		t.Fatalf("decode-only times %v / %v against all steps' %v", p.DecodeLaunch, p.DecodeWait, p.Launch)
	}
}

// The thinking budget on the random model: with budget N exactly N sampled
// tokens are reasoning (the same N the model writes without a budget), then
// the engine's "\n</think>\n\n", which is not counted; a first token equal
// to ReasoningStartToken (the model's own <think>) is not counted either.
func TestThinkingBudgetCountsReasoningTokens(t *testing.T) {
	e := startEngine(t, func(o *Options) { o.Parallel = 1 })
	prompt := "<|im_start|>user\nWhy is the sky blue?<|im_end|>\n<|im_start|>assistant\n"
	tags, err := e.Tokenize("<think>\n</think>\n\n", true)
	if err != nil || len(tags) != 4 {
		t.Fatalf("tags %v %v", tags, err)
	}
	free := generate(e, context.Background(), greedy(prompt, 24))
	if free.err != nil {
		t.Fatal(free.err)
	}
	for _, tok := range free.tokens {
		if e.model.IsEOG(tok) || tok == tags[0] || tok == tags[2] {
			t.Fatalf("the random model wrote a tag or end token %d: pick another prompt (%v)", tok, free.tokens)
		}
	}
	for _, opened := range []bool{false, true} {
		for _, n := range []int{0, 1, 2, 7} {
			req := greedy(prompt, 24)
			req.ReasoningBudget, req.ReasoningStartToken, req.ReasoningEnd, req.ReasoningEndToken = n, tags[0], tags[1:], tags[2]
			skip := 0
			if opened {
				// Pretend the model's first token is its <think>.
				req.ReasoningStartToken, skip = free.tokens[0], 1
			}
			o := generate(e, context.Background(), req)
			if o.err != nil {
				t.Fatal(o.err)
			}
			k := skip + n
			if !equalTokens(o.tokens[:k], free.tokens[:k]) || !equalTokens(o.tokens[k:k+3], tags[1:]) {
				t.Fatalf("opened=%v budget %d: %v, want %v then %v", opened, n, o.tokens, free.tokens[:k], tags[1:])
			}
			if o.res.ReasoningTokens != n || !o.res.ReasoningForced {
				t.Fatalf("opened=%v budget %d: %d reasoning tokens, forced %v", opened, n, o.res.ReasoningTokens, o.res.ReasoningForced)
			}
		}
	}
	// Without a budget the engine still counts: all of it is reasoning when
	// the model never closes it.
	req := greedy(prompt, 24)
	req.ReasoningBudget, req.ReasoningStartToken, req.ReasoningEnd, req.ReasoningEndToken = -1, tags[0], tags[1:], tags[2]
	if o := generate(e, context.Background(), req); o.err != nil || o.res.ReasoningTokens != 24 || o.res.ReasoningForced || !equalTokens(o.tokens, free.tokens) {
		t.Fatalf("no budget: %+v %v", o.res, o.err)
	}
}

// A shared KV cache too full for a new prompt: the prompt waits (its chunk
// is dropped from the steps) while the running sequence goes on, then runs
// once the cache has room, after the idle slot's cached cells are dropped.
// Neither fails, and both equal their output alone.
func TestFullKVCachePostponesPrefill(t *testing.T) {
	e := startEngine(t, func(o *Options) { o.Parallel, o.ContextSize, o.KVCacheSize, o.BatchSize = 2, 256, 256, 512 })
	a := greedy("Once upon a time", 240)
	b := engine.Request{MaxTokens: 8, IgnoreEOS: true}
	for i := range 120 {
		b.PromptTokens = append(b.PromptTokens, int32(1000+i))
	}
	aloneA, aloneB := generate(e, context.Background(), a), generate(e, context.Background(), b)
	if aloneA.err != nil || aloneB.err != nil {
		t.Fatal(aloneA.err, aloneB.err)
	}
	far := make(chan struct{})
	gotA := make(chan output, 1)
	aStart := time.Now()
	go func() {
		var o output
		o.res, o.err = e.Generate(context.Background(), &a, func(c engine.Chunk) error {
			if o.tokens = append(o.tokens, c.Token); len(o.tokens) == 150 {
				close(far) // 154 cells used: 120 more do not fit
			}
			return nil
		})
		gotA <- o
	}()
	<-far
	bStart := time.Now()
	ob := generate(e, context.Background(), b)
	oa := <-gotA
	if oa.err != nil || ob.err != nil || !equalTokens(oa.tokens, aloneA.tokens) || !equalTokens(ob.tokens, aloneB.tokens) {
		t.Fatalf("a: %v equal %v; b: %v equal %v", oa.err, equalTokens(oa.tokens, aloneA.tokens), ob.err, equalTokens(ob.tokens, aloneB.tokens))
	}
	// b's prompt waited for a to finish (both times as the decode loop
	// took them).
	if aEnd, bFirst := aStart.Add(oa.res.Duration), bStart.Add(ob.res.TimeToFirstToken); !bFirst.After(aEnd) {
		t.Fatalf("b's first token %v before a ended", aEnd.Sub(bFirst))
	}
}
